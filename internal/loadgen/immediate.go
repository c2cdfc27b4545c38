package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
)

// immediateShop is a bench store enabled for immediate refund, with the refund point of
// its block and the ports its region designates for the export.
type immediateShop struct {
	store storev1.StoreServiceClient
	point deskv1.DeskServiceClient
	ports []string
}

// prepareImmediate returns the visit of one traveller buying at a store enabled for
// immediate refund (即买即退) and paid at once at the refund point of the store's block:
// IssueForm, then PayImmediateRefund against a card pre-authorization of the gross refund
// (at least the net refund it must cover), for a designated port of exit and the default
// committed date. Each visit is a new traveller of the run's own population, so that no
// traveller reaches the region's daily prepayment cap.
func prepareImmediate(ctx context.Context, pool *pgxpool.Pool, c *conns, stores []storev1.StoreServiceClient) (visitFunc, error) {
	rows, err := pool.Query(ctx, `
		SELECT s.code, d.code, array(SELECT p.port_code FROM designated_ports p
		                              WHERE p.region_code = b.region_code AND p.valid_from <= current_date
		                                AND (p.valid_to IS NULL OR p.valid_to > current_date) ORDER BY 1)
		  FROM stores s JOIN blocks b ON b.code = s.block_code
		  JOIN desks d ON d.block_code = s.block_code AND d.kind = 'REFUND_POINT'
		 WHERE s.code = ANY($1) AND s.immediate_refund AND s.status = 'ACTIVE'
		 ORDER BY s.code, d.code`, benchCodes(len(stores)))
	if err != nil {
		return nil, fmt.Errorf("list immediate refund stores: %w", err)
	}
	type row struct {
		store, point string
		ports        []string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.store, &x.point, &x.ports)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list immediate refund stores: %w", err)
	}
	var shops []immediateShop
	for _, x := range list {
		if len(x.ports) == 0 {
			continue
		}
		n, err := strconv.Atoi(x.store[len("BENCH-"):])
		if err != nil {
			return nil, fmt.Errorf("bench store %q: %w", x.store, err)
		}
		cc, err := c.get("desk-" + x.point)
		if err != nil {
			return nil, err
		}
		shops = append(shops, immediateShop{store: stores[n-1], point: deskv1.NewDeskServiceClient(cc), ports: x.ports})
	}
	if len(shops) == 0 {
		return nil, errors.New("immediate: no bench store enabled for immediate refund in a block with a refund point and designated ports: run `loadgen setup` (it enables the odd-numbered ones) after `taxrefund seed`")
	}
	population := "I" + strconv.FormatUint(rand.Uint64()%(36*36*36), 36)
	var next atomic.Int64
	return func(ctx context.Context, w *worker) error {
		t := travellerOf(population, int(next.Add(1)))
		shop := shops[w.r.IntN(len(shops))]
		now := time.Now()
		var issued *storev1.IssueFormResponse
		err := w.call(ctx, "IssueForm", func(ctx context.Context) error {
			var err error
			issued, err = shop.store.IssueForm(ctx, issueRequest(w.r, t, now, 250))
			return err
		})
		if err != nil {
			return nil
		}
		f := issued.GetForm()
		pay := &deskv1.PayImmediateRefundRequest{
			RequestId:          newRequestID(w.r),
			FormNumber:         f.GetNumber(),
			PresentedDocument:  t.doc,
			AgreementReference: fmt.Sprintf("AGR-%012x", w.r.Int64N(1<<48)),
			PreAuthorization: &deskv1.PreAuthorization{
				AcquirerToken:    fmt.Sprintf("tok_%08x_%08x", w.r.Uint32(), w.r.Uint32()), // "_" keeps digit runs short: never a card number
				CardLast4:        fmt.Sprintf("%04d", w.r.IntN(10_000)),
				CardExpiry:       now.In(shanghai).AddDate(2, 0, 0).Format("2006-01"),
				AuthorizedAmount: f.GetGrossRefund(),
			},
			DeparturePort: shop.ports[w.r.IntN(len(shop.ports))],
		}
		_ = w.call(ctx, "PayImmediateRefund", func(ctx context.Context) error {
			_, err := shop.point.PayImmediateRefund(ctx, pay)
			return err
		})
		return nil
	}, nil
}

// benchCodes are the codes of bench stores 1..n.
func benchCodes(n int) []string {
	codes := make([]string, n)
	for i := range codes {
		codes[i] = storeCode(i + 1)
	}
	return codes
}
