package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/registry"
	"taxrefund/internal/server"
)

// newStore is a valid registration of store S-NEW in block CXL with a seed credit code
// that dbtest.Registry does not use.
func newStore() registry.NewStore {
	return registry.NewStore{
		Code: "S-NEW", CreditCode: "91510104HN2J1K6FM5", Name: "Taikoo Li Fashion", BlockCode: "CXL",
		CreditGrade: "B", ImmediateRefund: true,
	}
}

func TestRegisterStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	k := key("register S-NEW")
	before := time.Now()
	st, err := e.svc.RegisterStore(e.ctx, k, newStore())
	if err != nil {
		t.Fatal(err)
	}
	want := registry.Store{
		Code: "S-NEW", CreditCode: "91510104HN2J1K6FM5", Name: "Taikoo Li Fashion", BlockCode: "CXL",
		CreditGrade: "B", ImmediateRefund: true, Status: registry.Active, CreatedAt: octNoon,
	}
	if !st.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("registered at %s, want the clock's %s", st.CreatedAt, want.CreatedAt)
	}
	st.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if st != want {
		t.Errorf("registered %+v, want %+v", st, want)
	}
	got, err := e.svc.GetStore(e.ctx, "S-NEW")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != registry.Active || got.CreditCode != "91510104HN2J1K6FM5" || !got.CreatedAt.Equal(octNoon) {
		t.Errorf("GetStore: %+v", got)
	}
	list, err := e.svc.ListStores(e.ctx, "CXL", "")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, s := range list {
		codes = append(codes, s.Code)
	}
	if fmt.Sprint(codes) != "[S-CXL-1 S-NEW]" {
		t.Errorf("stores of CXL: %v, want [S-CXL-1 S-NEW]", codes)
	}
	list, err = e.svc.ListStores(e.ctx, "", registry.Suspended)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Code != "S-SUSP" {
		t.Errorf("suspended stores: %+v, want only S-SUSP", list)
	}

	// The audit event names the official, the action, the store and the request.
	ev := e.audit("S-NEW")
	if len(ev) != 1 {
		t.Fatalf("audit events for S-NEW: %+v, want 1", ev)
	}
	a := ev[0]
	if a.Actor != official || a.Action != "STORE_REGISTERED" || a.RequestID == nil || *a.RequestID != k.RequestID {
		t.Errorf("audit event %+v, want actor %s, action STORE_REGISTERED, request %s", a, official, k.RequestID)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(a.Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail["block"] != "CXL" || detail["grade"] != "B" {
		t.Errorf("audit detail %s, want block CXL and grade B", a.Detail)
	}
	if a.At.Before(before.Add(-time.Minute)) || a.At.After(time.Now().Add(time.Minute)) {
		t.Errorf("audit event at %s, want about now", a.At)
	}

	// A retry with the same request_id returns the first answer and writes nothing.
	c := e.counts()
	again, err := e.svc.RegisterStore(e.ctx, k, newStore())
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.Code != "S-NEW" || !again.CreatedAt.Equal(octNoon) || again.Status != registry.Active {
		t.Errorf("retry answered %+v", again)
	}
	sameCounts(t, "retry", c, e.counts())

	// The same request_id for another store is refused.
	other := newStore()
	other.Code, other.CreditCode = "S-NEW-2", "91510104HDQAEJXEB6"
	reused := key("register S-NEW-2")
	reused.RequestID = k.RequestID
	_, err = e.svc.RegisterStore(e.ctx, reused, other)
	wantFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	sameCounts(t, "reused request_id", c, e.counts())
	if n := e.count(`SELECT count(*) FROM stores WHERE code = 'S-NEW-2'`); n != 0 {
		t.Errorf("S-NEW-2 registered under a reused request_id")
	}
}

func TestRegisterStoreRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	with := func(f func(*registry.NewStore)) registry.NewStore {
		s := newStore()
		f(&s)
		return s
	}
	cases := []struct {
		name   string
		in     registry.NewStore
		kind   fault.Kind
		reason string
		fields []string
	}{
		{"wrong check character", with(func(s *registry.NewStore) { s.CreditCode = "91510104HN2J1K6FM6" }),
			fault.Invalid, "INVALID_REQUEST", []string{"credit_code"}},
		{"17-character credit code", with(func(s *registry.NewStore) { s.CreditCode = "91510104HN2J1K6FM" }),
			fault.Invalid, "INVALID_REQUEST", []string{"credit_code"}},
		{"lowercase credit code", with(func(s *registry.NewStore) { s.CreditCode = "91510104hn2j1k6fm5" }),
			fault.Invalid, "INVALID_REQUEST", []string{"credit_code"}},
		{"every field wrong", registry.NewStore{Code: "S NEW", CreditCode: "ABC", Name: "", BlockCode: "CXL", CreditGrade: "C"},
			fault.Invalid, "INVALID_REQUEST", []string{"code", "credit_code", "name", "credit_grade"}},
		{"code too long", with(func(s *registry.NewStore) { s.Code = fmt.Sprintf("%065d", 1) }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a slash (it becomes a URI segment)", with(func(s *registry.NewStore) { s.Code = "S/NEW" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with ..", with(func(s *registry.NewStore) { s.Code = "S..NEW" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code that is ..", with(func(s *registry.NewStore) { s.Code = ".." }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a leading dash", with(func(s *registry.NewStore) { s.Code = "-SNEW" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a trailing dot", with(func(s *registry.NewStore) { s.Code = "SNEW." }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a Cyrillic А (looks like A)", with(func(s *registry.NewStore) { s.Code = "S-NEW-\u0410" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a fullwidth Ａ", with(func(s *registry.NewStore) { s.Code = "S-NEW-\uff21" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"code with a space", with(func(s *registry.NewStore) { s.Code = "S NEW" }),
			fault.Invalid, "INVALID_REQUEST", []string{"code"}},
		{"grade lowercase", with(func(s *registry.NewStore) { s.CreditGrade = "a" }),
			fault.Invalid, "INVALID_REQUEST", []string{"credit_grade"}},
		{"unknown block", with(func(s *registry.NewStore) { s.BlockCode = "XYZ" }),
			fault.Precondition, "UNKNOWN_BLOCK", []string{"block_code"}},
		// A malformed block code is refused with the other fields; a well-formed one that
		// names no block, against the registry.
		{"empty block", with(func(s *registry.NewStore) { s.BlockCode = "" }),
			fault.Invalid, "INVALID_REQUEST", []string{"block_code"}},
		{"block code with a space", with(func(s *registry.NewStore) { s.BlockCode = "J FB" }),
			fault.Invalid, "INVALID_REQUEST", []string{"block_code"}},
		{"code of an existing store", with(func(s *registry.NewStore) { s.Code = "S-JFB-1" }),
			fault.Precondition, "STORE_EXISTS", []string{"code"}},
		{"code of an exited store (codes are never reused)", with(func(s *registry.NewStore) { s.Code = "S-EXIT" }),
			fault.Precondition, "STORE_EXISTS", []string{"code"}},
		{"credit code of an existing store", with(func(s *registry.NewStore) { s.CreditCode = "91500103AY4CL12THR" }),
			fault.Precondition, "CREDIT_CODE_TAKEN", []string{"credit_code"}},
	}
	for _, c := range cases {
		before := e.counts()
		_, err := e.svc.RegisterStore(e.ctx, key(c.name), c.in)
		t.Run(c.name, func(t *testing.T) {
			wantFault(t, err, c.kind, c.reason, c.fields...)
			sameCounts(t, c.name, before, e.counts())
		})
	}
	if n := e.count(`SELECT count(*) FROM stores WHERE code NOT IN ('S-JFB-1', 'S-JFB-2', 'S-CXL-1', 'S-SUSP', 'S-EXIT')`); n != 0 {
		t.Errorf("%d stores registered by refused requests", n)
	}
	// The registration that every refusal was a variant of goes through.
	if _, err := e.svc.RegisterStore(e.ctx, key("ok"), newStore()); err != nil {
		t.Fatalf("the valid registration: %v", err)
	}
}

func TestStoreStatusTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	if _, err := e.svc.RegisterStore(e.ctx, key("register"), newStore()); err != nil {
		t.Fatal(err)
	}
	type step struct {
		to, reason string
		// want is the status after the step; refusal, if set, is the STORE_STATUS refusal
		// expected instead, with the status it names.
		want    string
		refusal string
	}
	steps := []step{
		{to: registry.Active, reason: "already active", refusal: registry.Active},
		{to: registry.Suspended, reason: "invoices not matching sales", want: registry.Suspended},
		{to: registry.Suspended, reason: "twice", refusal: registry.Suspended},
		{to: registry.Active, reason: "corrected", want: registry.Active},
		{to: registry.Suspended, reason: "again", want: registry.Suspended},
		{to: registry.Exited, reason: "closed its business", want: registry.Exited},
		{to: registry.Exited, reason: "twice", refusal: registry.Exited},
		{to: registry.Active, reason: "come back", refusal: registry.Exited},
		{to: registry.Suspended, reason: "suspend an exited store", refusal: registry.Exited},
	}
	wantActions := []string{"STORE_REGISTERED"}
	for i, s := range steps {
		before := e.counts()
		k := key(fmt.Sprint(i, s.to))
		st, err := e.svc.SetStatus(e.ctx, k, "S-NEW", s.to, s.reason)
		if s.refusal != "" {
			fe := wantFault(t, err, fault.Precondition, "STORE_STATUS", "code")
			if fe.Metadata["status"] != s.refusal {
				t.Errorf("step %d (%s → %s): refusal names status %q, want %q", i, s.refusal, s.to, fe.Metadata["status"], s.refusal)
			}
			sameCounts(t, fmt.Sprintf("step %d", i), before, e.counts())
			continue
		}
		if err != nil {
			t.Fatalf("step %d (→ %s): %v", i, s.to, err)
		}
		if st.Status != s.want {
			t.Errorf("step %d: status %s, want %s", i, st.Status, s.want)
		}
		got, err := e.svc.GetStore(e.ctx, "S-NEW")
		if err != nil || got.Status != s.want {
			t.Errorf("step %d: stored status %s (%v), want %s", i, got.Status, err, s.want)
		}
		wantActions = append(wantActions, "STORE_"+s.want)
		ev := e.audit("S-NEW")
		last := ev[len(ev)-1]
		if last.Actor != official || last.RequestID == nil || *last.RequestID != k.RequestID ||
			last.Detail != fmt.Sprintf(`{"reason": %q}`, s.reason) {
			t.Errorf("step %d: audit event %+v", i, last)
		}
	}
	var actions []string
	for _, a := range e.audit("S-NEW") {
		actions = append(actions, a.Action)
	}
	if fmt.Sprint(actions) != fmt.Sprint(wantActions) {
		t.Errorf("audit trail %v, want %v", actions, wantActions)
	}

	// An active store may exit directly; an unknown one is not found.
	st, err := e.svc.SetStatus(e.ctx, key("exit S-JFB-2"), "S-JFB-2", registry.Exited, "moved away")
	if err != nil || st.Status != registry.Exited {
		t.Errorf("exit of active S-JFB-2: %+v, %v", st, err)
	}
	before := e.counts()
	_, err = e.svc.SetStatus(e.ctx, key("nope"), "S-NOPE", registry.Suspended, "")
	wantFault(t, err, fault.NotFound, "STORE_NOT_FOUND", "code")
	sameCounts(t, "unknown store", before, e.counts())
}

// TestExitedStoreIdentityStopsWorking: the server's registry hook lets a store's
// certificate identity act while it is active or suspended, and refuses it once exited.
func TestExitedStoreIdentityStopsWorking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	if _, err := e.svc.RegisterStore(e.ctx, key("register"), newStore()); err != nil {
		t.Fatal(err)
	}
	hook := server.NewRegistry(e.pool, 0)
	party := auth.Party{Role: auth.RoleStore, Store: "S-NEW", URI: "taxrefund://store/S-NEW"}
	if err := hook.Active(e.ctx, party); err != nil {
		t.Fatalf("active store: %v, want nil", err)
	}
	if _, err := e.svc.SetStatus(e.ctx, key("suspend"), "S-NEW", registry.Suspended, "audit"); err != nil {
		t.Fatal(err)
	}
	if err := hook.Active(e.ctx, party); err != nil {
		t.Fatalf("suspended store: %v, want nil (it may still read and void)", err)
	}
	if _, err := e.svc.SetStatus(e.ctx, key("exit"), "S-NEW", registry.Exited, "closed"); err != nil {
		t.Fatal(err)
	}
	err := hook.Active(e.ctx, party)
	if !errors.Is(err, auth.ErrInactive) {
		t.Fatalf("exited store: %v, want an error wrapping auth.ErrInactive", err)
	}
	// Another store is unaffected.
	if err := hook.Active(e.ctx, auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"}); err != nil {
		t.Errorf("S-JFB-1: %v", err)
	}
}

func TestSetParameter(t *testing.T) {
	t.Parallel()
	// 2026-10-11 01:00 in Shanghai, still 2026-10-10 in UTC: "today" is the 11th.
	now := time.Date(2026, 10, 10, 17, 0, 0, 0, time.UTC)
	e := newEnv(t, now)
	param := func(name, scope, from, value string) registry.NewParameter {
		return registry.NewParameter{Name: name, Scope: scope, ValidFrom: date(t, from), Value: decimal.RequireFromString(value), Note: "test " + from}
	}
	k := key("min 2026-10-12")
	p, err := e.svc.SetParameter(e.ctx, k, param("min_purchase", "", "2026-10-12", "300.00"))
	if err != nil {
		t.Fatalf("tomorrow: %v", err)
	}
	if p.Name != "min_purchase" || p.Scope != "" || !p.ValidFrom.Equal(date(t, "2026-10-12")) || p.Value.String() != "300" || p.Note != "test 2026-10-12" {
		t.Errorf("set %+v", p)
	}
	list, err := e.svc.ListParameters(e.ctx, "min_purchase")
	if err != nil {
		t.Fatal(err)
	}
	var periods []string
	for _, x := range list {
		periods = append(periods, x.ValidFrom.Format(time.DateOnly)+"="+x.Value.StringFixed(2))
	}
	// The earlier periods are untouched.
	if fmt.Sprint(periods) != "[2015-01-01=500.00 2025-04-27=200.00 2026-10-12=300.00]" {
		t.Errorf("min_purchase periods %v", periods)
	}
	ev := e.audit("min_purchase/")
	if len(ev) != 1 || ev[0].Actor != official || ev[0].Action != "PARAMETER_SET" || *ev[0].RequestID != k.RequestID {
		t.Fatalf("audit %+v", ev)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(ev[0].Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail["valid_from"] != "2026-10-12" || detail["value"] != "300" || detail["note"] != "test 2026-10-12" {
		t.Errorf("audit detail %s", ev[0].Detail)
	}

	// A retry returns the first answer and writes nothing.
	c := e.counts()
	again, err := e.svc.SetParameter(e.ctx, k, param("min_purchase", "", "2026-10-12", "300.00"))
	if err != nil || !again.ValidFrom.Equal(p.ValidFrom) || !again.Value.Equal(p.Value) {
		t.Errorf("retry: %+v, %v", again, err)
	}
	sameCounts(t, "retry", c, e.counts())

	refusals := []struct {
		name   string
		in     registry.NewParameter
		kind   fault.Kind
		reason string
		field  string
	}{
		{"today in Shanghai", param("min_purchase", "", "2026-10-11", "250.00"), fault.Precondition, "PAST_NOT_REWRITTEN", "parameter.valid_from"},
		{"today in UTC", param("min_purchase", "", "2026-10-10", "250.00"), fault.Precondition, "PAST_NOT_REWRITTEN", "parameter.valid_from"},
		{"the past", param("cash_cap", "", "2025-04-27", "30000.00"), fault.Precondition, "PAST_NOT_REWRITTEN", "parameter.valid_from"},
		{"same start as the latest period", param("min_purchase", "", "2026-10-12", "250.00"), fault.Precondition, "OVERLAPPING_PERIOD", "parameter.valid_from"},
		{"refund rate 13%", param("refund_rate", "13%", "2026-11-01", "0.11"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"refund rate 0.130", param("refund_rate", "0.130", "2026-11-01", "0.11"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"refund rate without scope", param("refund_rate", "", "2026-11-01", "0.11"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"fee of an unknown agency", param("agency_fee_rate", "AG-XX", "2026-11-01", "0.02"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"national value with a scope", param("min_purchase", "AG-CQ", "2026-11-01", "200.00"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"regional value of an unknown region", param("committed_period_days", "SC-XX", "2026-11-01", "25"), fault.Invalid, "INVALID_SCOPE", "parameter.scope"},
		{"rate 1", param("refund_rate", "0.13", "2026-11-01", "1"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"rate 1.5", param("agency_fee_rate", "AG-CQ", "2026-11-01", "1.5"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"negative rate", param("agency_fee_rate", "AG-CQ", "2026-11-01", "-0.01"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"rate with 5 fraction digits", param("refund_rate", "0.13", "2026-11-01", "0.11001"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"half a day", param("export_window_days", "", "2026-11-01", "90.5"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"zero days", param("export_window_days", "", "2026-11-01", "0"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"366 days", param("committed_period_days", "SC-CQ", "2026-11-01", "366"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"zero minimum", param("min_purchase", "", "2026-11-01", "0"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"negative cap", param("cash_cap", "", "2026-11-01", "-1.00"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"amount in tenths of fen", param("daily_prepay_cap", "SC-CQ", "2026-11-01", "50000.001"), fault.Invalid, "INVALID_PARAMETER", "parameter.value"},
		{"unknown parameter", param("vat_rate", "", "2026-11-01", "0.13"), fault.Invalid, "INVALID_PARAMETER", "parameter.name"},
	}
	for _, r := range refusals {
		before := e.counts()
		_, err := e.svc.SetParameter(e.ctx, key(r.name), r.in)
		t.Run(r.name, func(t *testing.T) {
			wantFault(t, err, r.kind, r.reason, r.field)
			sameCounts(t, r.name, before, e.counts())
		})
	}

	// Periods only move forward, per name and scope.
	if _, err := e.svc.SetParameter(e.ctx, key("min 12-01"), param("min_purchase", "", "2026-12-01", "350.00")); err != nil {
		t.Fatal(err)
	}
	before := e.counts()
	_, err = e.svc.SetParameter(e.ctx, key("min 11-15"), param("min_purchase", "", "2026-11-15", "320.00"))
	fe := wantFault(t, err, fault.Precondition, "OVERLAPPING_PERIOD", "parameter.valid_from")
	sameCounts(t, "a future date before the latest period", before, e.counts())
	t.Logf("overlap refused: %s", fe.Message)
	ok := []registry.NewParameter{
		param("agency_fee_rate", "AG-CQ", "2026-11-01", "0.025"),
		// Another scope of the same name has its own periods.
		param("agency_fee_rate", "AG-CD", "2026-10-20", "0.015"),
		param("refund_rate", "0.09", "2026-11-01", "0"),
		param("committed_period_days", "SC-CQ", "2026-11-01", "365"),
		param("cash_cap", "", "2026-10-12", "25000.00"),
	}
	for _, in := range ok {
		if _, err := e.svc.SetParameter(e.ctx, key(in.Name+in.Scope), in); err != nil {
			t.Errorf("%s (%s) from %s = %s: %v", in.Name, in.Scope, in.ValidFrom.Format(time.DateOnly), in.Value, err)
		}
	}
	if n := e.count(`SELECT count(*) FROM parameters`); n != 11+2+len(ok) {
		t.Errorf("%d parameter rows, want %d", n, 11+2+len(ok))
	}
}

// TestSetParameterRace: officials setting the same parameter from the same date at once
// get exactly one new period; the others are told it overlaps.
func TestSetParameterRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	const n = 8
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = e.svc.SetParameter(e.ctx, key(fmt.Sprint("race ", i)), registry.NewParameter{
				Name: "cash_cap", ValidFrom: date(t, "2026-12-01"), Value: decimal.NewFromInt(int64(20000 + i)),
			})
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for i, err := range errs {
		if err == nil {
			winners++
			continue
		}
		if fe, ok := fault.As(err); !ok || fe.Reason != "OVERLAPPING_PERIOD" {
			t.Errorf("attempt %d: %v, want OVERLAPPING_PERIOD", i, err)
		}
	}
	t.Logf("%d concurrent attempts, %d winner(s)", n, winners)
	if winners != 1 {
		t.Errorf("%d winners, want 1", winners)
	}
	if c := e.count(`SELECT count(*) FROM parameters WHERE name = 'cash_cap' AND valid_from = '2026-12-01'`); c != 1 {
		t.Errorf("%d rows from 2026-12-01", c)
	}
	if c := e.count(`SELECT count(*) FROM audit_events WHERE action = 'PARAMETER_SET'`); c != 1 {
		t.Errorf("%d audit events", c)
	}
}

// TestSetParameterRetryAfterMidnight: a retried SetParameter (same request_id, same
// content) returns the first answer (package idempotency: "a retried mutating call
// returns the stored first response"), even when the retry arrives after local midnight
// and the date it set is now today. The date check runs before the idempotency record is
// looked at, so the retry is refused as PAST_NOT_REWRITTEN instead.
func TestSetParameterRetryAfterMidnight(t *testing.T) {
	t.Parallel()
	// 2026-10-10 23:59:30 in Shanghai.
	e := newEnv(t, time.Date(2026, 10, 10, 15, 59, 30, 0, time.UTC))
	in := registry.NewParameter{Name: "cash_cap", ValidFrom: date(t, "2026-10-11"), Value: decimal.RequireFromString("25000.00")}
	k := key("cash_cap from 2026-10-11")
	first, err := e.svc.SetParameter(e.ctx, k, in)
	if err != nil {
		t.Fatal(err)
	}
	// The answer was lost; the client retries a minute later, on 2026-10-11 in Shanghai.
	e.clock.Set(time.Date(2026, 10, 10, 16, 0, 30, 0, time.UTC))
	before := e.counts()
	again, err := e.svc.SetParameter(e.ctx, k, in)
	if err != nil {
		t.Fatalf("retry after midnight: %v, want the first answer (%s from %s)", err, first.Value, first.ValidFrom.Format(time.DateOnly))
	}
	if !again.ValidFrom.Equal(first.ValidFrom) || !again.Value.Equal(first.Value) {
		t.Errorf("retry answered %+v, first %+v", again, first)
	}
	sameCounts(t, "retry", before, e.counts())
}
