package refund

import (
	"fmt"

	"taxrefund/internal/fault"
)

// transitions lists the moves of DOMAIN.md §5.
var transitions = map[State][]State{
	Issued:   {Verified, Rejected, Voided, Expired},
	Verified: {Refunded},
	Refunded: {Settled},
}

// CanMove reports whether a form in state from may move to state to.
func CanMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// RequireState returns a Precondition error unless state is want.
func RequireState(number string, state, want State, action string) error {
	if state == want {
		return nil
	}
	return fault.New(fault.Precondition, "FORM_STATE",
		fmt.Sprintf("form %s is %s; only %s forms can be %s", number, state, want, action)).With("state", string(state))
}
