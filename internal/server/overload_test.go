package server_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/server"
)

// TestOversizedStringRefused: a 1 MiB departure_port (and a 1 MiB description) is
// INVALID_ARGUMENT naming the field, before any other work: nothing written, and the
// answer is small and does not carry the value back.
func TestOversizedStringRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	huge := strings.Repeat("X", 1<<20)
	before := env.tableCounts(t)

	_, err := env.desk(t, refundPt).PayImmediateRefund(ctx, &deskv1.PayImmediateRefundRequest{
		RequestId: uuid.NewString(), FormNumber: "TR1", DeparturePort: huge})
	st := checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"departure_port"}})
	if b, _ := proto.Marshal(st.Proto()); len(b) > 2048 || strings.Contains(st.Message(), "XXXX") {
		t.Errorf("the refusal is %d bytes (message %.100q): it must not echo the field", len(b), st.Message())
	}

	req := domainExample(env.tr.secret("L1234-5678"), "INV-LEN")
	req.Lines[1].Description = huge
	req.Traveller.Nationality = huge
	_, err = env.store(t, storeJFB1).IssueForm(ctx, req)
	checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"lines[1].description", "traveller.nationality"}})
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("an oversized request wrote: %s", d)
	}
	// The control: the longest description the rules allow still reaches them.
	req = domainExample("L1234-5678", "INV-LEN")
	req.Lines[1].Description = strings.Repeat("茶", 200)
	if _, err := env.store(t, storeJFB1).IssueForm(ctx, req); err != nil {
		t.Errorf("a 200-character description: %v", err)
	}
}

// rawCodec sends bytes as they are: a client that speaks broken protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

// TestMalformedProtobufIsInvalidArgument: bytes that do not decode as the method's request
// are INVALID_ARGUMENT (the caller's fault), not INTERNAL, and nothing is written; a
// well-formed request on the same connection still goes through.
func TestMalformedProtobufIsInvalidArgument(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	before := env.tableCounts(t)
	for _, raw := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},         // a field number 0 / truncated varint
		{0x0a, 0x10, 'a', 'b'},           // a string that claims 16 bytes and has 2
		{0x12, 0x02, 0xff, 0xfe},         // form_number that is not UTF-8
		append([]byte{0x0a, 0x80}, 0x7f), // a length over the message
	} {
		var reply storev1.IssueFormResponse
		err := env.conn(t, storeJFB1).Invoke(ctx, "/taxrefund.store.v1.StoreService/IssueForm", raw, &reply, grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("malformed request % x: %v, want INVALID_ARGUMENT", raw, err)
		}
	}
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("a malformed request wrote: %s", d)
	}
	env.issue(t, storeJFB1, domainExample(env.tr.secret("M1234-5678"), "INV-MAL"))
}

// TestAdmissionIsImmediate: with room for 4 cost units in flight and 2 per caller, and
// the forms table locked so that IssueForm calls stay in flight: a caller's third call and
// then anyone's call over the server's capacity are RESOURCE_EXHAUSTED at once (not after
// their deadline), and the calls admitted succeed once the lock goes. A report costs more
// than a read.
func TestAdmissionIsImmediate(t *testing.T) {
	t.Parallel()
	if server.Cost("/taxrefund.authority.v1.AuthorityService/MonthlyReport") <= server.Cost("/taxrefund.store.v1.StoreService/GetForm") {
		t.Error("a monthly report costs no more than a GetForm")
	}
	env := newSecEnv(t, secOptions{limits: &server.Limits{Deadline: 20 * time.Second, MaxInFlight: 4, PartyInFlight: 2}})
	ctx := ctxTimeout(t)
	// Warm the connections (the registry check) before the lock.
	for _, n := range []string{storeJFB1, storeJFB2} {
		if _, err := env.store(t, n).ListForms(ctx, &storev1.ListFormsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := env.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE forms IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	hold := func(name string, i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.store(t, name).IssueForm(ctx, domainExample(env.tr.secret("A1234-567"+string(rune('0'+i))), "INV-ADM"+string(rune('0'+i))))
			errs <- err
		}()
	}
	waitInFlight := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			var waiting int
			if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE relation = 'forms'::regclass AND NOT granted`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("fewer than %d calls waiting on the lock", n)
	}
	refusedAtOnce := func(name, what string) {
		t.Helper()
		start := time.Now()
		_, err := env.store(t, name).IssueForm(ctx, domainExample("A1234-5679", "INV-ADMX"))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s: %v, want RESOURCE_EXHAUSTED", what, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v, want at once", what, d)
		}
	}
	hold(storeJFB1, 1)
	hold(storeJFB1, 2)
	waitInFlight(2)
	refusedAtOnce(storeJFB1, "S-JFB-1's third call")
	hold(storeJFB2, 3)
	hold(storeJFB2, 4)
	waitInFlight(4)
	start := time.Now()
	_, err = env.desk(t, customsCKG).FindForms(ctx, &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: "TR1"}})
	if status.Code(err) != codes.ResourceExhausted || time.Since(start) > time.Second {
		t.Errorf("a fifth caller over capacity: %v after %v, want RESOURCE_EXHAUSTED at once", err, time.Since(start))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("an admitted call: %v", err)
		}
	}
	// Capacity is back.
	env.issue(t, storeJFB1, domainExample("A1234-5679", "INV-ADMX"))
}

// TestConnectionsPerAddress: the listener closes a client address's connection over the
// cap at once, and takes a new one when an earlier one closes.
func TestConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := server.LimitListener(inner, 2)
	defer lis.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errorsAs(err, &ne) && ne.Timeout())
	}
	c1, c2 := dial(), dial()
	s1, s2 := <-accepted, <-accepted
	// Held until the end: a server side collected by the GC would close its client.
	defer s2.Close()
	c3 := dial()
	if !closedByServer(c3) {
		t.Error("a third connection from one address was kept")
	}
	if closedByServer(c1) || closedByServer(c2) {
		t.Error("the first two connections were closed")
	}
	_ = s1.Close()
	c4 := dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Error("no connection accepted after one closed")
	}
	_ = c4
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
