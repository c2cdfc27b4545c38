package refund_test

import (
	"testing"

	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
)

var allStates = []refund.State{
	refund.Issued, refund.Verified, refund.Rejected, refund.Refunded,
	refund.Voided, refund.Expired, refund.Settled,
}

func TestCanMove(t *testing.T) {
	// The moves of DOMAIN.md §5; every other pair is refused.
	allowed := map[[2]refund.State]bool{
		{refund.Issued, refund.Verified}:   true,
		{refund.Issued, refund.Rejected}:   true,
		{refund.Issued, refund.Voided}:     true,
		{refund.Issued, refund.Expired}:    true,
		{refund.Verified, refund.Refunded}: true,
		{refund.Refunded, refund.Settled}:  true,
	}
	for _, from := range allStates {
		for _, to := range allStates {
			want := allowed[[2]refund.State{from, to}]
			if got := refund.CanMove(from, to); got != want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	// The refusals the brief names, spelled out.
	for _, m := range [][2]refund.State{
		{refund.Voided, refund.Issued}, {refund.Voided, refund.Verified}, {refund.Voided, refund.Refunded},
		{refund.Refunded, refund.Verified}, {refund.Issued, refund.Refunded}, {refund.Issued, refund.Issued},
		{refund.Rejected, refund.Verified}, {refund.Expired, refund.Verified}, {refund.Settled, refund.Refunded},
		{"", refund.Issued}, {refund.Issued, ""}, {"issued", refund.Verified},
	} {
		if refund.CanMove(m[0], m[1]) {
			t.Errorf("CanMove(%q, %q) = true, want false", m[0], m[1])
		}
	}
}

func TestRequireState(t *testing.T) {
	if err := refund.RequireState("TR0000000000000000", refund.Issued, refund.Issued, "voided"); err != nil {
		t.Errorf("RequireState(ISSUED, want ISSUED) = %v, want nil", err)
	}
	for _, tt := range []struct {
		state, want refund.State
	}{
		{refund.Verified, refund.Issued},
		{refund.Voided, refund.Issued},
		{refund.Issued, refund.Verified},
		{refund.Refunded, refund.Verified},
	} {
		err := refund.RequireState("TR0000000000000000", tt.state, tt.want, "paid")
		wantFault(t, err, fault.Precondition, "FORM_STATE", "")
		if fe, ok := fault.As(err); ok && fe.Metadata["state"] != string(tt.state) {
			t.Errorf("RequireState(%s, want %s) metadata state = %q, want %q", tt.state, tt.want, fe.Metadata["state"], tt.state)
		}
	}
}
