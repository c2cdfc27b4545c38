package loadgen

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/identity"
	"taxrefund/internal/ledger"
	"taxrefund/internal/pki"
)

// SetupConfig is what `loadgen setup` prepares.
type SetupConfig struct {
	Stores  int
	CertDir string
	Log     io.Writer
}

// Setup registers cfg.Stores bench stores BENCH-0001... spread over the seeded blocks,
// makes sure the ledger accounts the benchmarks write to exist (the pgbench baselines
// resolve them by code), and issues a client certificate for every bench store, desk and
// port, named as `taxrefund certs` names them, registering the desks' and ports' in the
// identity register. Everything is idempotent.
func Setup(ctx context.Context, pool *pgxpool.Pool, cfg SetupConfig) error {
	if cfg.Stores < 1 || cfg.Stores > 9999 {
		return fmt.Errorf("-stores %d: want 1 to 9999", cfg.Stores)
	}
	blocks, err := queryStrings(ctx, pool, `SELECT code FROM blocks ORDER BY code`)
	if err != nil {
		return err
	}
	if len(blocks) == 0 {
		return fmt.Errorf("no blocks: run `taxrefund migrate` and `taxrefund seed` first")
	}
	codes := make([]string, cfg.Stores)
	credit := make([]string, cfg.Stores)
	names := make([]string, cfg.Stores)
	inBlock := make([]string, cfg.Stores)
	for i := range cfg.Stores {
		b := blocks[i%len(blocks)]
		codes[i] = storeCode(i + 1)
		credit[i] = CreditCode(divisionOf(b), fmt.Sprintf("MB%06d", i+1))
		names[i] = fmt.Sprintf("Bench store %04d (benchmark data)", i+1)
		inBlock[i] = b
	}
	// Odd-numbered bench stores are enabled for immediate refund (the immediate scenario
	// draws from them; issuing does not depend on it). A bench database set up before
	// this rule gets it on the next setup.
	tag, err := pool.Exec(ctx, `
		INSERT INTO stores (code, credit_code, name, block_code, credit_grade, immediate_refund, status)
		SELECT c, cc, n, b, 'A', ord % 2 = 1, 'ACTIVE'
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS s(c, cc, n, b, ord)
		ON CONFLICT (code) DO UPDATE SET immediate_refund = EXCLUDED.immediate_refund
		 WHERE stores.immediate_refund IS DISTINCT FROM EXCLUDED.immediate_refund`, codes, credit, names, inBlock)
	if err != nil {
		return fmt.Errorf("register bench stores: %w", err)
	}
	fmt.Fprintf(cfg.Log, "loadgen: %d bench stores (%d new or changed) over blocks %s, odd-numbered ones enabled for immediate refund\n",
		cfg.Stores, tag.RowsAffected(), strings.Join(blocks, ", "))

	accounts := []string{ledger.RefundExpense, ledger.RefundPayable}
	agencies, err := queryStrings(ctx, pool, `SELECT code FROM agencies ORDER BY code`)
	if err != nil {
		return err
	}
	for _, a := range agencies {
		accounts = append(accounts, ledger.AgencyPayable(a), ledger.Receivable(a), ledger.Transfers(a), ledger.FeeIncome(a))
	}
	// The refund points' accounts, which the immediate baseline pays through.
	points, err := pool.Query(ctx, `SELECT agency_code, code FROM desks WHERE kind = 'REFUND_POINT' ORDER BY code`)
	if err != nil {
		return err
	}
	var agency, desk string
	if _, err := pgx.ForEachRow(points, []any{&agency, &desk}, func() error {
		accounts = append(accounts, ledger.Prepayments(agency), ledger.Cash(agency, desk))
		return nil
	}); err != nil {
		return fmt.Errorf("list refund points: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO accounts (code) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (code) DO NOTHING`, accounts); err != nil {
		return fmt.Errorf("create ledger accounts: %w", err)
	}

	ca, err := pki.EnsureCA(cfg.CertDir)
	if err != nil {
		return err
	}
	parties, err := pool.Query(ctx, `
		SELECT 'store-' || code, 'taxrefund://store/' || code FROM stores WHERE code = ANY($1)
		UNION ALL SELECT 'desk-' || code, 'taxrefund://desk/' || code || '/cashier-01' FROM desks
		UNION ALL SELECT 'customs-' || code, 'taxrefund://customs/' || code || '/officer-01' FROM ports
		ORDER BY 1`, codes)
	if err != nil {
		return fmt.Errorf("list parties: %w", err)
	}
	type party struct{ name, uri string }
	list, err := pgx.CollectRows(parties, func(r pgx.CollectableRow) (party, error) {
		var p party
		err := r.Scan(&p.name, &p.uri)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("list parties: %w", err)
	}
	reg := identity.New(pool, nil)
	for _, p := range list {
		if err := ca.IssueClient(cfg.CertDir, p.name, p.uri); err != nil {
			return fmt.Errorf("certificate %s: %w", p.name, err)
		}
		// Desks' and ports' certificates are served only once registered.
		if _, _, err := reg.IssueFile(ctx, "loadgen setup", pki.CertPath(cfg.CertDir, p.name)); err != nil {
			return fmt.Errorf("register certificate %s: %w", p.name, err)
		}
	}
	fmt.Fprintf(cfg.Log, "loadgen: %d client certificates in %s\n", len(list), cfg.CertDir)
	// Count trigger function calls in this database (pg_stat_user_functions), for the
	// write cost per form (-cost); the sessions opened from now on do. It takes a
	// superuser: otherwise the cost reports no trigger calls.
	var name string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` SET track_functions = 'pl'`); err != nil {
		fmt.Fprintf(cfg.Log, "loadgen: trigger calls will not be counted (track_functions: %v)\n", err)
	}
	return nil
}

// divisionOf is the administrative division code (GB/T 2260) in the credit codes of a
// block's stores: Chongqing Yuzhong for Jiefangbei, Chengdu Jinjiang for Chunxi Road.
func divisionOf(block string) string {
	switch block {
	case "JFB":
		return "500103"
	case "CXL":
		return "510104"
	}
	return "110101"
}

// CreditCode returns an 18-character unified social credit code (GB 32100-2015) of an
// enterprise ("91") in the given division, with organization code body org (8 characters)
// and both check characters computed: the organization code's (GB 11714) and the whole
// code's.
func CreditCode(division, org string) string {
	orgCode := org + string(orgCheck(org))
	body := "91" + division + orgCode
	return body + string(creditCheck(body))
}

const creditAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// creditCheck is the 18th character: 31 − (Σ w_i·c_i mod 31), w_i = 3^(i−1) mod 31.
func creditCheck(body string) byte {
	sum, w := 0, 1
	for i := 0; i < len(body); i++ {
		sum += w * strings.IndexByte(creditAlphabet, body[i])
		w = w * 3 % 31
	}
	return creditAlphabet[(31-sum%31)%31]
}

// orgCheck is GB 11714's check character of an 8-character organization code body.
func orgCheck(body string) byte {
	weights := [8]int{3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 8; i++ {
		c := body[i]
		v := int(c - '0')
		if c >= 'A' && c <= 'Z' {
			v = int(c-'A') + 10
		}
		sum += weights[i] * v
	}
	switch c := 11 - sum%11; c {
	case 10:
		return 'X'
	case 11:
		return '0'
	default:
		return byte('0' + c)
	}
}

func queryStrings(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) ([]string, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return out, nil
}
