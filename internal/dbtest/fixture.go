package dbtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/pii"
)

// Registry inserts a small registry for tests, with the values written out here rather
// than taken from the demo seeds:
//
//   - region SC-CQ; blocks JFB (Chongqing) and CXL (Chengdu); ports CKG, TFU, CTU;
//   - agencies AG-CQ (desks CKG-01, CKG-02 at CKG; refund point JFB-RP) and AG-CD (desks
//     TFU-01 at TFU, CTU-01 at CTU; refund point IFS-RP);
//   - stores S-JFB-1, S-JFB-2 (JFB) and S-CXL-1 (CXL), active; S-SUSP suspended; S-EXIT exited;
//   - parameters: minimum 500.00 from 2015-01-01 and 200.00 from 2025-04-27; refund rates
//     0.11 (13% VAT) and 0.08 (9% VAT) from 2019-04-01; cash cap 10000.00 from 2015-01-01
//     and 20000.00 from 2025-04-27; export window 90 days; fee 0.02 for both agencies;
//     immediate refund in SC-CQ: committed period 17 days, daily prepayment cap 50000.00,
//     designated ports TFU and CKG (not CTU). The working-day calendar is left empty
//     (Monday to Friday); tests add holidays themselves.
func Registry(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO regions (code, name) VALUES ('SC-CQ', 'Sichuan–Chongqing');
		INSERT INTO blocks (code, name, city, region_code) VALUES
			('JFB', 'Jiefangbei', 'Chongqing', 'SC-CQ'), ('CXL', 'Chunxi Road', 'Chengdu', 'SC-CQ');
		INSERT INTO ports (code, name, city, region_code) VALUES
			('CKG', 'Jiangbei', 'Chongqing', 'SC-CQ'), ('TFU', 'Tianfu', 'Chengdu', 'SC-CQ'), ('CTU', 'Shuangliu', 'Chengdu', 'SC-CQ');
		INSERT INTO agencies (code, name) VALUES ('AG-CQ', 'Agency CQ'), ('AG-CD', 'Agency CD');
		INSERT INTO desks (code, agency_code, kind, port_code, block_code, name) VALUES
			('CKG-01', 'AG-CQ', 'AIRPORT', 'CKG', NULL, 'CKG 1'), ('CKG-02', 'AG-CQ', 'AIRPORT', 'CKG', NULL, 'CKG 2'),
			('TFU-01', 'AG-CD', 'AIRPORT', 'TFU', NULL, 'TFU 1'), ('CTU-01', 'AG-CD', 'AIRPORT', 'CTU', NULL, 'CTU 1'),
			('JFB-RP', 'AG-CQ', 'REFUND_POINT', NULL, 'JFB', 'JFB point'), ('IFS-RP', 'AG-CD', 'REFUND_POINT', NULL, 'CXL', 'IFS point');
		INSERT INTO stores (code, credit_code, name, block_code, credit_grade, immediate_refund, status) VALUES
			('S-JFB-1', '91500103AY4CL12THR', 'Store JFB 1', 'JFB', 'A', true, 'ACTIVE'),
			('S-JFB-2', '915001033BJ1XG612X', 'Store JFB 2', 'JFB', 'A', false, 'ACTIVE'),
			('S-CXL-1', '91510104M53JJL6B3L', 'Store CXL 1', 'CXL', 'A', true, 'ACTIVE'),
			('S-SUSP', '91500103DD272HD1T8', 'Suspended store', 'JFB', 'B', false, 'SUSPENDED'),
			('S-EXIT', '91500103J3Y7LLJY1P', 'Exited store', 'JFB', 'B', false, 'EXITED');
		INSERT INTO parameters (name, scope, valid_from, value) VALUES
			('min_purchase', '', '2015-01-01', 500.00), ('min_purchase', '', '2025-04-27', 200.00),
			('refund_rate', '0.13', '2019-04-01', 0.11), ('refund_rate', '0.09', '2019-04-01', 0.08),
			('cash_cap', '', '2015-01-01', 10000.00), ('cash_cap', '', '2025-04-27', 20000.00),
			('export_window_days', '', '2015-01-01', 90),
			('agency_fee_rate', 'AG-CQ', '2015-01-01', 0.02), ('agency_fee_rate', 'AG-CD', '2015-01-01', 0.02),
			('committed_period_days', 'SC-CQ', '2025-07-01', 17), ('daily_prepay_cap', 'SC-CQ', '2025-07-01', 50000.00);
		INSERT INTO designated_ports (region_code, port_code, valid_from) VALUES ('SC-CQ', 'TFU', '2025-07-01'), ('SC-CQ', 'CKG', '2025-07-01');`)
	if err != nil {
		t.Fatalf("registry fixture: %v", err)
	}
}

// Keyring returns a fresh PII keyring.
func Keyring(t testing.TB) *pii.Keyring {
	t.Helper()
	path := t.TempDir() + "/pii.keys"
	if err := pii.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := pii.LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Clock is a settable clock for services under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
