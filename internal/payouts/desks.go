package payouts

import (
	"context"
	"sync"

	"taxrefund/internal/db"
)

// deskCache keeps the desks rows the service has read. A desk is never changed or
// removed (the application role may only read the table; seeds and migrations add
// desks), so a row once read stays true for the life of the process: a payout then
// needs no look-up before its transaction. A desk not found is not remembered, so a desk
// added later is found at its first payout.
type deskCache struct {
	mu    sync.RWMutex
	desks map[string]db.Desk
}

func (c *deskCache) get(ctx context.Context, q db.DBTX, code string) (db.Desk, error) {
	c.mu.RLock()
	d, ok := c.desks[code]
	c.mu.RUnlock()
	if ok {
		return d, nil
	}
	d, err := db.New().DeskByCode(ctx, q, code)
	if err != nil {
		return db.Desk{}, err
	}
	c.mu.Lock()
	if c.desks == nil {
		c.desks = map[string]db.Desk{}
	}
	c.desks[code] = d
	c.mu.Unlock()
	return d, nil
}
