package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/identity"
	"taxrefund/internal/server"
)

// serveTTL is `taxrefund serve`'s default -registry-ttl.
const serveTTL = 2 * time.Second

// findForm is a cashier's or officer's read: FindForms by form number.
func findForm(ctx context.Context, conn grpc.ClientConnInterface, number string) error {
	_, err := deskv1.NewDeskServiceClient(conn).FindForms(ctx, &deskv1.FindFormsRequest{
		Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: number}})
	return err
}

// refusedWithin calls call until it answers PERMISSION_DENIED or UNAUTHENTICATED, and
// returns how long after since that was; it fails the test when it takes longer than
// limit or the call fails otherwise.
func refusedWithin(t *testing.T, since time.Time, limit time.Duration, call func() error) time.Duration {
	t.Helper()
	return within(t, since, limit, true, call)
}

// within calls call until it is refused (refused) or served (!refused).
func within(t *testing.T, since time.Time, limit time.Duration, refused bool, call func() error) time.Duration {
	t.Helper()
	for {
		err := call()
		took := time.Since(since)
		switch status.Code(err) {
		case codes.PermissionDenied, codes.Unauthenticated:
			if refused {
				return took
			}
		case codes.OK:
			if !refused {
				return took
			}
		default:
			t.Fatalf("after %v: %v, want served or refused", took, err)
		}
		if took > limit {
			t.Fatalf("%v after the change the call still answers %v, want it changed within %v", took, err, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRevokedCertificateRefusedWithin5s: with serve's registry cache (2 s), a cashier
// suspended in the register (`taxrefund certs suspend`, which revokes no certificate) is
// refused within 5 s, and served again within 5 s of being reinstated; revoked by person
// (`taxrefund certs revoke -uri`) the cashier is refused within 5 s of the revocation, on
// the connection it already had open, and its payout writes nothing;
// another cashier pays the same form at once (the control: the payout was due). Then an
// officer's certificate revoked by serial through the API (RevokeCertificate) is refused
// within 5 s while another officer keeps working.
func TestRevokedCertificateRefusedWithin5s(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{options: func(app *pgxpool.Pool, o *server.Options) {
		o.Active = server.NewRegistry(app, serveTTL).Active
	}})
	ctx := ctxTimeout(t)
	doc := passport(env.tr.secret("X1111-0501"))
	form := env.issue(t, storeJFB1, domainExample(doc.GetNumber(), "INV-REVOKE"))
	env.verifyAll(t, customsCKG, form, doc)
	c1 := env.conn(t, cashier1)
	if err := findForm(ctx, c1, form.GetNumber()); err != nil { // the cache now holds "allowed"
		t.Fatalf("cashier-1 before the revocation: %v", err)
	}

	// A suspension revokes no certificate: only the register's status stops the cashier.
	reg := identity.New(env.pool, nil)
	find := func() error { return findForm(ctx, c1, form.GetNumber()) }
	suspendedAt := time.Now()
	if _, err := reg.SetStatus(ctx, "test", identities[cashier1], identity.Suspended, "under review"); err != nil {
		t.Fatal(err)
	}
	t.Logf("cashier suspended: refused %v after the suspension", refusedWithin(t, suspendedAt, 5*time.Second, find).Round(time.Millisecond))
	reinstatedAt := time.Now()
	if _, err := reg.SetStatus(ctx, "test", identities[cashier1], identity.Registered, "cleared"); err != nil {
		t.Fatal(err)
	}
	t.Logf("cashier reinstated: served %v after", within(t, reinstatedAt, 5*time.Second, false, find).Round(time.Millisecond))

	revokedAt := time.Now()
	if _, err := reg.RevokeIdentity(ctx, "test", identities[cashier1], "desk certificate lost"); err != nil {
		t.Fatal(err)
	}
	took := refusedWithin(t, revokedAt, 5*time.Second, find)
	t.Logf("cashier revoked by person: refused %v after the revocation", took.Round(time.Millisecond))
	before := env.tableCounts(t)
	_, err := env.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-REVOKED", form.GetNumber()))
	env.wantRefusedBeforeHandler(t, err, codes.PermissionDenied, before)
	if _, err := env.desk(t, cashier2).SettleRefund(ctx, settleReq(doc, "RCPT-CONTROL", form.GetNumber())); err != nil {
		t.Errorf("control: cashier-2 paying the form: %v", err)
	}

	t.Run("by serial through the API", func(t *testing.T) {
		tfu := env.conn(t, customsTFU)
		if err := findForm(ctx, tfu, form.GetNumber()); err != nil {
			t.Fatalf("officer-2 before the revocation: %v", err)
		}
		serial := readLeaf(t, env.certDir, customsTFU).SerialNumber
		revokedAt := time.Now()
		if _, err := env.authority(t, sat).RevokeCertificate(ctx, &authorityv1.RevokeCertificateRequest{
			RequestId: uuid.NewString(), Serial: serialHexWithColons(serial), Reason: "officer's card lost"}); err != nil {
			t.Fatalf("RevokeCertificate: %v", err)
		}
		took := refusedWithin(t, revokedAt, 5*time.Second, func() error { return findForm(ctx, tfu, form.GetNumber()) })
		t.Logf("officer revoked by serial: refused %v after the revocation", took.Round(time.Millisecond))
		if err := findForm(ctx, env.conn(t, customsCKG), form.GetNumber()); err != nil {
			t.Errorf("control: officer-1 after officer-2's revocation: %v", err)
		}
	})
}

// TestUnknownIdentityRefused: certificates the service's CA signed whose identity the
// register does not know — a cashier never registered, a tax office that does not exist
// — and a second certificate of a registered officer that was never bound to them are
// UNAUTHENTICATED and write nothing. Broken control: once registered (what
// `taxrefund certs issue` does), the very same certificates are served.
func TestUnknownIdentityRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	ca, caKey := caOf(t, env.certDir)
	doc := passport(env.tr.secret("X1111-0502"))
	form := env.issue(t, storeJFB1, domainExample(doc.GetNumber(), "INV-UNKNOWN"))
	env.verifyAll(t, customsCKG, form, doc)

	stranger := mint(t, clientTemplate(t, "taxrefund://desk/CKG-01/cashier-99"), ca, caKey)
	office := mint(t, clientTemplate(t, "taxrefund://authority/rogue-office"), ca, caKey)
	second := mint(t, clientTemplate(t, identities[customsCKG]), ca, caKey)
	before := env.tableCounts(t)
	_, err := deskv1.NewDeskServiceClient(env.dialAs(t, stranger)).SettleRefund(ctx, settleReq(doc, "RCPT-STRANGER", form.GetNumber()))
	st := env.wantRefusedBeforeHandler(t, err, codes.Unauthenticated, before)
	if st.Message() != "role desk: the certificate's identity is not registered" {
		t.Errorf("message %q", st.Message())
	}
	_, err = authorityv1.NewAuthorityServiceClient(env.dialAs(t, office)).SuspendStore(ctx, &authorityv1.SuspendStoreRequest{
		RequestId: uuid.NewString(), Code: "S-JFB-2", Reason: "rogue"})
	env.wantRefusedBeforeHandler(t, err, codes.Unauthenticated, before)
	env.wantRefusedBeforeHandler(t, findForm(ctx, env.dialAs(t, second), form.GetNumber()), codes.Unauthenticated, before)

	t.Run("broken control: registered", func(t *testing.T) {
		dbtest.RegisterCertificate(t, env.pool, stranger.Leaf)
		dbtest.RegisterCertificate(t, env.pool, office.Leaf)
		dbtest.RegisterCertificate(t, env.pool, second.Leaf)
		if _, err := deskv1.NewDeskServiceClient(env.dialAs(t, stranger)).SettleRefund(ctx, settleReq(doc, "RCPT-STRANGER", form.GetNumber())); err != nil {
			t.Errorf("the registered cashier: %v", err)
		}
		if _, err := authorityv1.NewAuthorityServiceClient(env.dialAs(t, office)).GetRegistry(ctx, &authorityv1.GetRegistryRequest{}); err != nil {
			t.Errorf("the registered office: %v", err)
		}
		if err := findForm(ctx, env.dialAs(t, second), form.GetNumber()); err != nil {
			t.Errorf("the officer's registered second certificate: %v", err)
		}
	})
}
