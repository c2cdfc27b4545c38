package risk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/db"
	"taxrefund/internal/params"
	"taxrefund/internal/risk"
)

// BenchmarkRate measures the rating's read at the desk (one round trip of four
// statements) for a form whose document has 8 forms among 2,000 others, and logs the plan
// of the document's statement: it must use forms_document, not scan forms.
//
//	go test -run '^$' -bench BenchmarkRate -benchtime 500x -count 3 ./internal/risk/
func BenchmarkRate(b *testing.B) {
	e := newEnvB(b)
	var number string
	for i := range 250 {
		for _, s := range []string{"S-JFB-1", "S-JFB-2", "S-CXL-1", "S-JFB-1", "S-JFB-2", "S-CXL-1", "S-JFB-1", "S-JFB-2"} {
			f, err := e.tryIssue(s, "B"+strings.Repeat("0", 3)+itoa(i), 10, line{amount: "1000.00"})
			if err != nil {
				b.Fatal(err)
			}
			number = f.GetNumber()
		}
	}
	if _, err := e.pool.Exec(e.ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var plan []string
	rows, err := e.pool.Query(e.ctx, `EXPLAIN SELECT r.number, g.number FROM forms r JOIN forms g ON g.doc_index = r.doc_index
		WHERE r.number = ANY($1::text[]) AND r.state = 'ISSUED' AND g.state <> 'VOIDED' AND (g.purchase_date >= $2 OR g.purchase_date = r.purchase_date)`,
		[]string{number}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var l string
		_ = rows.Scan(&l)
		plan = append(plan, l)
	}
	b.Log(strings.Join(plan, "\n"))
	svc := risk.New(e.pool, params.NewCache(e.pool, time.Hour), e.clock.Now)
	b.ResetTimer()
	for b.Loop() {
		r, err := svc.Rate(context.Background(), db.Scope(e.pool), []string{number}, e.clock.Now())
		if err != nil || r[number].Level != risk.Red {
			b.Fatalf("rate: %v %v", r, err)
		}
	}
}

func itoa(i int) string {
	const d = "0123456789"
	return string([]byte{d[i/100%10], d[i/10%10], d[i%10]})
}
