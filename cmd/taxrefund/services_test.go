package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/refund"
)

// TestServicesSplit runs the store service in one process (-services=store) and the
// others in a second (-services=desk,authority,jobs) over one database: each process
// registers only its services, answers the others UNIMPLEMENTED, and acts as its
// services' database roles; a form the first issues, the second confirms.
func TestServicesSplit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, owner)
	dir := t.TempDir()
	certDir, piiKeys := filepath.Join(dir, "certs"), filepath.Join(dir, "pii.keys")
	bin := filepath.Join(dir, "taxrefund")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(append(os.Environ(), "DATABASE_URL="+url), journalEnv(dir)...)
	runBinary(t, env, bin, "certs", "-cert-dir", certDir, "-pii-keys", piiKeys)
	runBinary(t, env, bin, "keys")
	start := func(services string) (addr, logPath string) {
		t.Helper()
		addr, logPath = freeAddr(t), filepath.Join(dir, "serve-"+services+".log")
		startChild(t, env, logPath, bin, "serve", "-services", services, "-addr", addr, "-cert-dir", certDir,
			"-pii-keys", piiKeys, "-metrics-addr", "", "-max-conns", "4", "-expiry-interval", "0", "-dispatch-interval", "0")
		return addr, logPath
	}
	storeAddr, storeLog := start("store")
	restAddr, restLog := start("desk,authority,jobs")
	storeSide, rest := dialAll(t, storeAddr, certDir), dialAll(t, restAddr, certDir)
	defer storeSide.close()
	defer rest.close()
	waitServing(t, ctx, storeSide.health)
	waitServing(t, ctx, rest.health)

	for _, c := range []struct {
		log  string
		want string
	}{
		{storeLog, `services="store=` + db.StoreRole + `"`},
		{restLog, "services=\"desk=" + db.DeskRole + " authority=" + db.AuthorityRole + " jobs=" + db.JobsRole + "\""},
	} {
		log, err := os.ReadFile(c.log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), c.want) {
			t.Errorf("the log does not say %s:\n%s", c.want, log)
		}
	}

	doc := &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: "SPLIT0001", IssuingCountry: "DE"}
	today := refund.LocalDate(time.Now())
	issue := func(c storev1.StoreServiceClient) (*storev1.IssueFormResponse, error) {
		return c.IssueForm(ctx, &storev1.IssueFormRequest{
			RequestId: uuid.NewString(),
			Traveller: &storev1.Traveller{Document: doc, DocumentExpiryDate: refund.FormatDate(refund.AddDays(today, 3650)),
				Nationality: "DE", LastEntryDate: refund.FormatDate(refund.AddDays(today, -10))},
			Invoices: []*formv1.Invoice{{Number: "SPLIT-1", Date: refund.FormatDate(today)}},
			Lines: []*storev1.LineInput{{Description: "Porcelain", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
				VatRate: "0.13", Quantity: 1, Amount: "1000.00", InvoiceNumber: "SPLIT-1"}},
		})
	}
	verify := func(c deskv1.DeskServiceClient, number string) error {
		_, err := c.VerifyExport(ctx, &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: number, PresentedDocument: doc,
			Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}}})
		return err
	}
	unimplemented := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want UNIMPLEMENTED", what, err)
		}
	}

	resp, err := issue(storeSide.store)
	if err != nil {
		t.Fatalf("IssueForm at the store process: %v", err)
	}
	number := resp.GetForm().GetNumber()
	unimplemented("VerifyExport at the store process", verify(storeSide.customs, number))
	_, err = storeSide.desks[0].SettleRefund(ctx, &deskv1.SettleRefundRequest{RequestId: uuid.NewString(), FormNumbers: []string{number},
		PresentedDocument: doc, Method: deskv1.PaymentMethod_PAYMENT_METHOD_CASH, ReceiptReference: "R"})
	unimplemented("SettleRefund at the store process", err)
	_, err = authorityv1.NewAuthorityServiceClient(storeSide.conns[len(storeSide.conns)-1]).CheckInvariants(ctx, &authorityv1.CheckInvariantsRequest{})
	unimplemented("CheckInvariants at the store process", err)

	_, err = issue(rest.store)
	unimplemented("IssueForm at the other process", err)
	if err := verify(rest.customs, number); err != nil {
		t.Fatalf("VerifyExport at the other process: %v", err)
	}
	inv, err := authorityv1.NewAuthorityServiceClient(rest.conns[len(rest.conns)-1]).CheckInvariants(ctx, &authorityv1.CheckInvariantsRequest{})
	if err != nil {
		t.Fatalf("CheckInvariants at the other process: %v", err)
	}
	if len(inv.GetViolations()) > 0 {
		t.Errorf("invariants: %v", inv.GetViolations())
	}
	var state string
	if err := owner.QueryRow(ctx, `SELECT state FROM forms WHERE number = $1`, number).Scan(&state); err != nil || state != "VERIFIED" {
		t.Errorf("form %s is %q (%v), want VERIFIED", number, state, err)
	}
}
