package acquirer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DevAcquirer is the DEVELOPMENT acquirer: no card network is reachable from here, so it
// records what it receives in the dev_acquirer_received table — one row per instruction
// key, counting deliveries — which lets the whole flow run locally and lets tests check
// that each instruction took effect once. Never use it in production.
type DevAcquirer struct {
	Pool *pgxpool.Pool
}

// Deliver records the instruction, once per key.
func (d DevAcquirer) Deliver(ctx context.Context, in Instruction) error {
	_, err := d.Pool.Exec(ctx, `
		INSERT INTO dev_acquirer_received (idem_key, kind, card_token, amount) VALUES ($1, $2, $3, $4)
		ON CONFLICT (idem_key) DO UPDATE SET deliveries = dev_acquirer_received.deliveries + 1`,
		in.IdemKey, string(in.Kind), in.CardToken, in.Amount)
	if err != nil {
		return fmt.Errorf("development acquirer: %w", err)
	}
	return nil
}
