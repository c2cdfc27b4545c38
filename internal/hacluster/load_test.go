package hacluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/dial"
	"taxrefund/internal/hacluster"
	"taxrefund/internal/pki"
	"taxrefund/internal/refund"
)

// Parties of the demo seed the load acts as.
const (
	loadStore   = "CQ-JFB-001"
	loadCustoms = "customs-CKG"
	loadDesk    = "desk-CKG-01"
	// loadPoint is the refund point of the store's block (JFB): immediate refunds.
	loadPoint = "desk-JFB-RP"
	// loadPort is a designated port of exit of the Sichuan–Chongqing scheme.
	loadPort = "CKG"
)

// clients are one terminal's connections: a store's POS, a customs officer's, a
// cashier's and a refund point cashier's, all to the same server (or list of servers).
type clients struct {
	name    string
	store   storev1.StoreServiceClient
	customs deskv1.DeskServiceClient
	desk    deskv1.DeskServiceClient
	point   deskv1.DeskServiceClient
	conns   []*grpc.ClientConn
}

func dialClients(t *haT, c *hacluster.Cluster, name, addrs string, opts ...grpc.DialOption) *clients {
	t.Helper()
	cl := &clients{name: name}
	conn := func(party string) *grpc.ClientConn {
		dir := c.CertDir()
		tlsConf, err := pki.ClientTLSConfig(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, party+".pem"),
			filepath.Join(dir, party+"-key.pem"), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := dial.NewClient(addrs, tlsConf, opts...)
		if err != nil {
			t.Fatal(err)
		}
		cl.conns = append(cl.conns, cc)
		return cc
	}
	cl.store = storev1.NewStoreServiceClient(conn("store-" + loadStore))
	cl.customs = deskv1.NewDeskServiceClient(conn(loadCustoms))
	cl.desk = deskv1.NewDeskServiceClient(conn(loadDesk))
	cl.point = deskv1.NewDeskServiceClient(conn(loadPoint))
	t.Cleanup(func() {
		for _, cc := range cl.conns {
			_ = cc.Close()
		}
	})
	return cl
}

// issued is an acknowledged IssueForm: the request and the first OK answer.
type issued struct {
	req  *storev1.IssueFormRequest
	resp *storev1.IssueFormResponse
	by   string // the clients that got the answer
}

// paid is an acknowledged SettleRefund.
type paid struct {
	req  *deskv1.SettleRefundRequest
	resp *deskv1.SettleRefundResponse
}

// prepaid is an acknowledged PayImmediateRefund, and the acknowledged ReturnPrepayment
// that handed it back, if one was made.
type prepaid struct {
	req      *deskv1.PayImmediateRefundRequest
	resp     *deskv1.PayImmediateRefundResponse
	ret      *deskv1.ReturnPrepaymentRequest
	returned *deskv1.ReturnPrepaymentResponse
}

// load sends writes through several client groups until stopped, retrying each request
// with its request_id until it is answered, and logs every acknowledgement.
type load struct {
	t      *haT
	groups []*clients
	prefix string // of the documents and invoices of this load's forms
	seq    atomic.Int64

	mu       sync.Mutex
	issued   []issued
	paid     []paid
	prepaid  []prepaid
	success  map[string][]time.Time // completion times of OK IssueForm answers, by group
	codes    map[string]int         // non-OK answers by code
	unwanted []string               // answers a failover must never produce
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newLoad(t *haT, prefix string, groups ...*clients) *load {
	return &load{t: t, groups: groups, prefix: prefix, success: map[string][]time.Time{}, codes: map[string]int{}, stop: make(chan struct{})}
}

// retryable are the codes after which a client sends the same request again.
func retryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Canceled:
		return true
	}
	return false
}

func (l *load) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// call sends one request until an OK answer (true) or an answer that is not to be
// retried, or the load stops (false).
func (l *load) call(ctx context.Context, what string, fn func(context.Context) error) bool {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return true
		}
		code := status.Code(err)
		l.mu.Lock()
		l.codes[code.String()]++
		if !retryable(code) {
			l.unwanted = append(l.unwanted, fmt.Sprintf("%s: %v", what, err))
		}
		l.mu.Unlock()
		if !retryable(code) || l.stopping() || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *load) newIssue() *storev1.IssueFormRequest {
	n := l.seq.Add(1)
	today := refund.LocalDate(time.Now())
	inv := fmt.Sprintf("%s-%06d", l.prefix, n)
	return &storev1.IssueFormRequest{
		RequestId: uuid.NewString(),
		Traveller: &storev1.Traveller{
			Document:           &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: fmt.Sprintf("%s%07d", l.prefix, n), IssuingCountry: "DE"},
			DocumentExpiryDate: refund.FormatDate(refund.AddDays(today, 3650)),
			Nationality:        "DE", LastEntryDate: refund.FormatDate(refund.AddDays(today, -10)),
		},
		Invoices: []*formv1.Invoice{{Number: inv, Date: refund.FormatDate(refund.AddDays(today, -1))}},
		Lines: []*storev1.LineInput{{Description: "Porcelain", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
			VatRate: "0.13", Quantity: 1, Amount: fmt.Sprintf("%d.00", 1000+n%500), InvoiceNumber: inv}},
	}
}

// issue sends one new IssueForm through g until it is acknowledged.
func (l *load) issue(ctx context.Context, g *clients) (issued, bool) {
	req := l.newIssue()
	var resp *storev1.IssueFormResponse
	ok := l.call(ctx, "IssueForm "+req.RequestId, func(ctx context.Context) (err error) {
		resp, err = g.store.IssueForm(ctx, req)
		return err
	})
	if !ok {
		return issued{}, false
	}
	is := issued{req: req, resp: resp, by: g.name}
	l.mu.Lock()
	l.issued = append(l.issued, is)
	l.success[g.name] = append(l.success[g.name], time.Now()) // under the lock: in order
	l.mu.Unlock()
	return is, true
}

// settle verifies the export of an acknowledged form and pays it at the desk.
func (l *load) settle(ctx context.Context, g *clients, is issued) {
	number := is.resp.GetForm().GetNumber()
	doc := is.req.GetTraveller().GetDocument()
	verify := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: number, PresentedDocument: doc,
		Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}}}
	if !l.call(ctx, "VerifyExport "+number, func(ctx context.Context) error {
		_, err := g.customs.VerifyExport(ctx, verify)
		return err
	}) {
		return
	}
	req := &deskv1.SettleRefundRequest{RequestId: uuid.NewString(), FormNumbers: []string{number}, PresentedDocument: doc,
		Method: deskv1.PaymentMethod_PAYMENT_METHOD_CASH, ReceiptReference: "RCPT-" + number}
	var resp *deskv1.SettleRefundResponse
	if l.call(ctx, "SettleRefund "+number, func(ctx context.Context) (err error) {
		resp, err = g.desk.SettleRefund(ctx, req)
		return err
	}) {
		l.mu.Lock()
		l.paid = append(l.paid, paid{req: req, resp: resp})
		l.mu.Unlock()
	}
}

// prepay pays an acknowledged form as an immediate refund at the block's refund point and,
// every other time, takes the prepayment back (goods returned before departure).
func (l *load) prepay(ctx context.Context, g *clients, is issued, handBack bool) {
	f := is.resp.GetForm()
	req := &deskv1.PayImmediateRefundRequest{
		RequestId: uuid.NewString(), FormNumber: f.GetNumber(), PresentedDocument: is.req.GetTraveller().GetDocument(),
		AgreementReference: "AGR-" + f.GetNumber(),
		PreAuthorization: &deskv1.PreAuthorization{
			AcquirerToken: "tok_" + strings.ReplaceAll(is.req.RequestId, "-", "_"), CardLast4: "4242",
			CardExpiry: time.Now().AddDate(2, 0, 0).Format("2006-01"), AuthorizedAmount: f.GetGrossRefund(),
		},
		DeparturePort: loadPort,
	}
	var resp *deskv1.PayImmediateRefundResponse
	if !l.call(ctx, "PayImmediateRefund "+f.GetNumber(), func(ctx context.Context) (err error) {
		resp, err = g.point.PayImmediateRefund(ctx, req)
		return err
	}) {
		return
	}
	pp := prepaid{req: req, resp: resp}
	if handBack {
		ret := &deskv1.ReturnPrepaymentRequest{RequestId: uuid.NewString(), FormNumber: f.GetNumber()}
		if l.call(ctx, "ReturnPrepayment "+f.GetNumber(), func(ctx context.Context) (err error) {
			pp.returned, err = g.point.ReturnPrepayment(ctx, ret)
			return err
		}) {
			pp.ret = ret
		}
	}
	l.mu.Lock()
	l.prepaid = append(l.prepaid, pp)
	l.mu.Unlock()
}

// start runs issuers IssueForm workers, desks desk workers (issue, verify, settle) and
// points refund point workers (issue, pay an immediate refund, every other one handed
// back) per group.
func (l *load) start(ctx context.Context, issuers, desks, points int) {
	for _, g := range l.groups {
		for range issuers {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for !l.stopping() && ctx.Err() == nil {
					l.issue(ctx, g)
				}
			}()
		}
		for range desks {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for !l.stopping() && ctx.Err() == nil {
					if is, ok := l.issue(ctx, g); ok {
						l.settle(ctx, g, is)
					}
				}
			}()
		}
		for range points {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for n := 0; !l.stopping() && ctx.Err() == nil; n++ {
					if is, ok := l.issue(ctx, g); ok {
						l.prepay(ctx, g, is, n%2 == 1)
					}
				}
			}()
		}
	}
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// snapshot copies the acknowledgements so far.
func (l *load) snapshot() ([]issued, []paid) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.issued), slices.Clone(l.paid)
}

// prepayments copies the acknowledged immediate refunds so far.
func (l *load) prepayments() []prepaid {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.prepaid)
}

// firstSuccessAfter waits until group g has an OK IssueForm completed after at.
func (l *load) firstSuccessAfter(ctx context.Context, g string, at time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l.mu.Lock()
		ts := l.success[g]
		i, _ := slices.BinarySearchFunc(ts, at, func(a, b time.Time) int { return a.Compare(b) })
		var first time.Time
		if i < len(ts) {
			first = ts[i]
		}
		l.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// waitSuccesses waits until group g has n OK IssueForms completed after at.
func (l *load) waitSuccesses(ctx context.Context, g string, at time.Time, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l.mu.Lock()
		ts := l.success[g]
		i, _ := slices.BinarySearchFunc(ts, at, func(a, b time.Time) int { return a.Compare(b) })
		got := len(ts) - i
		l.mu.Unlock()
		if got >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// maxGap is the longest time group g went without an OK IssueForm between from and to
// (from counts as a success: the gap the fault opened), and the OK answer that ended it.
func (l *load) maxGap(g string, from, to time.Time) (time.Duration, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, gap, end := from, time.Duration(0), from
	for _, ts := range l.success[g] {
		if ts.Before(from) || ts.After(to) {
			continue
		}
		if ts.Sub(prev) > gap {
			gap, end = ts.Sub(prev), ts
		}
		prev = ts
	}
	if to.Sub(prev) > gap {
		return to.Sub(prev), to
	}
	return gap, end
}
