package forms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// rekeyNow is 2026-03-10 12:00 in Shanghai.
var rekeyNow = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// rekeyKeyFile writes a fresh key file (one enc key "k1" and the index key) and returns
// its content.
func rekeyKeyFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pii.keys")
	if err := pii.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rekeyRing parses a key file.
func rekeyRing(t *testing.T, data []byte) *pii.Keyring {
	t.Helper()
	k, err := pii.ParseKeyring(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rekeyWithout returns the key file data without its enc key id: the file an operator
// would have after dropping an old key.
func rekeyWithout(t *testing.T, data []byte, id string) []byte {
	t.Helper()
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "enc" && f[1] == id {
			continue
		}
		out = append(out, line)
	}
	if len(out) == len(strings.Split(string(data), "\n")) {
		t.Fatalf("key file has no enc key %s", id)
	}
	return []byte(strings.Join(out, "\n"))
}

// rekeyService is the forms service on pool with keyring keys.
func rekeyService(pool *pgxpool.Pool, keys *pii.Keyring) *forms.Service {
	return forms.New(forms.Deps{Pool: pool, Ledger: ledger.NewStore(), Keys: keys, Params: params.NewCache(pool, 0),
		Now: func() time.Time { return rekeyNow }, Log: slog.New(slog.DiscardHandler)})
}

// rekeyDoc is traveller i's document, its number normalized as the API layer hands it
// over: every third a Hong Kong and Macao permit, the others French passports.
func rekeyDoc(i int) refund.Document {
	if i%3 == 0 {
		return refund.Document{Type: refund.HKMacaoPermit, Number: fmt.Sprintf("HK%09d", i), IssuingCountry: "CN"}
	}
	return refund.Document{Type: refund.Passport, Number: fmt.Sprintf("E%08d", i), IssuingCountry: "FR"}
}

// rekeyIssue issues traveller i's form (300.00 of 13% goods) with svc.
func rekeyIssue(ctx context.Context, svc *forms.Service, i int) (forms.Form, error) {
	inv := fmt.Sprintf("INV-RK-%05d", i)
	return svc.Issue(db.WithParty(ctx, "store", "S-JFB-1"), forms.IssueRequest{
		Idem:      forms.Idempotency{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: []byte(inv)},
		StoreCode: "S-JFB-1",
		Application: refund.Application{
			Traveller: refund.Traveller{Document: rekeyDoc(i), Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "FR",
				LastEntry: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
			Invoices: []refund.Invoice{{Number: inv, Date: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}},
			Lines: []refund.Line{{Description: "jade", Category: refund.General, VATRate: decimal.RequireFromString("0.13"), Quantity: 1,
				Amount: decimal.RequireFromString("300.00"), InvoiceNumber: inv}},
		},
	})
}

// rekeyRow is a form's stored document columns.
type rekeyRow struct {
	number, keyID string
	index, cipher []byte
}

func rekeyRows(t *testing.T, ctx context.Context, pool *pgxpool.Pool) map[string]rekeyRow {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT number, doc_key_id, doc_index, doc_cipher FROM forms`)
	if err != nil {
		t.Fatal(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rekeyRow, error) {
		var x rekeyRow
		err := r.Scan(&x.number, &x.keyID, &x.index, &x.cipher)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]rekeyRow{}
	for _, x := range list {
		out[x.number] = x
	}
	return out
}

// TestRekeyAfterRotation: 501 forms are issued under key k1 (one more than a re-encryption
// batch); the key file is rotated (pii.RotatedKeyFile appends k2). With the rotated
// keyring, look-ups by document still find every form (the blind index does not depend
// on the encryption key), old rows still decrypt, and new forms use k2. Rekey, run as the
// service's database role, re-encrypts exactly the 501 old rows in batches of 500; then
// every row is under k2 with a new ciphertext and the same blind index, every number still
// decrypts, and a second Rekey finds nothing to do. The broken control: a keyring without
// k1 cannot open the old rows, and its Rekey fails without changing any row, which is
// why rotation keeps old keys until Rekey has run; afterwards it opens everything.
func TestRekeyAfterRotation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The service's rekey command runs as the system party; the forms are issued as their
	// store (rekeyIssue).
	ctx = db.WithParty(ctx, "system", "rekey")
	url := dbtest.NewURL(t)
	dbtest.Registry(t, dbtest.OpenPool(t, url, ""))
	owner := dbtest.OpenPool(t, url, "")
	app := dbtest.OpenPool(t, url, db.AppRole)

	k1File := rekeyKeyFile(t)
	svc1 := rekeyService(app, rekeyRing(t, k1File))
	const old = 501
	numbers := make([]string, old+1) // by traveller; the last is issued after the rotation
	var wg sync.WaitGroup
	errs := make(chan error, old)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < old; i += 4 {
				f, err := rekeyIssue(ctx, svc1, i)
				if err != nil {
					errs <- fmt.Errorf("issue %d: %w", i, err)
					return
				}
				numbers[i] = f.Number
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := rekeyRows(t, ctx, owner)
	for _, r := range before {
		if r.keyID != "k1" {
			t.Fatalf("form %s sealed with %q before the rotation, want k1", r.number, r.keyID)
		}
	}

	k2File, id, err := pii.RotatedKeyFile(k1File)
	if err != nil || id != "k2" {
		t.Fatalf("RotatedKeyFile: %q, %v; want k2", id, err)
	}
	svc2 := rekeyService(app, rekeyRing(t, k2File))
	f, err := rekeyIssue(ctx, svc2, old)
	if err != nil {
		t.Fatal(err)
	}
	numbers[old] = f.Number
	if got := rekeyRows(t, ctx, owner)[f.Number].keyID; got != "k2" {
		t.Errorf("a form issued after the rotation is sealed with %q, want k2", got)
	}
	checkAll := func(when string, svc *forms.Service) {
		t.Helper()
		for i, number := range numbers {
			found, err := svc.FindByDocument(ctx, rekeyDoc(i))
			if err != nil || len(found) != 1 || found[0].Number != number {
				t.Fatalf("%s: FindByDocument of traveller %d: %d forms (%v), want %s", when, i, len(found), err, number)
			}
			clear, err := svc.Document(ctx, number)
			if err != nil || clear != rekeyDoc(i).Number {
				t.Fatalf("%s: Document(%s) = %q, %v; want %s", when, number, clear, err, rekeyDoc(i).Number)
			}
		}
	}
	checkAll("after the rotation", svc2)

	// The broken control: without k1, the old rows are unreadable, and Rekey cannot run.
	svcNo1 := rekeyService(app, rekeyRing(t, rekeyWithout(t, k2File, "k1")))
	if _, err := svcNo1.Document(ctx, numbers[0]); err == nil || !strings.Contains(err.Error(), `unknown key id "k1"`) {
		t.Errorf("Document of a k1 row without k1: %v, want unknown key id \"k1\"", err)
	}
	if found, err := svcNo1.FindByDocument(ctx, rekeyDoc(0)); err != nil || len(found) != 1 {
		t.Errorf("FindByDocument without k1: %d forms, %v; want 1 (the index key is unchanged)", len(found), err)
	}
	snapshot := rekeyRows(t, ctx, owner)
	if n, err := svcNo1.Rekey(ctx, nil); err == nil || n != 0 {
		t.Errorf("Rekey without k1: %d, %v; want an error and nothing re-encrypted", n, err)
	}
	if got := rekeyRows(t, ctx, owner); !rekeySame(got, snapshot) {
		t.Errorf("the failed Rekey changed rows")
	}

	var progress []int
	n, err := svc2.Rekey(ctx, func(done int) { progress = append(progress, done) })
	if err != nil || n != old {
		t.Fatalf("Rekey = %d, %v; want %d", n, err, old)
	}
	if !slices.Equal(progress, []int{500, 501}) {
		t.Errorf("Rekey progress %v, want [500 501] (batches of 500)", progress)
	}
	after := rekeyRows(t, ctx, owner)
	for number, r := range after {
		b, wasOld := before[number]
		switch {
		case r.keyID != "k2":
			t.Errorf("form %s under %q after Rekey, want k2", number, r.keyID)
		case wasOld && !bytes.Equal(r.index, b.index):
			t.Errorf("form %s: the blind index changed", number)
		case wasOld && bytes.Equal(r.cipher, b.cipher):
			t.Errorf("form %s: the ciphertext did not change", number)
		}
	}
	if len(after) != old+1 {
		t.Errorf("%d forms after Rekey, want %d", len(after), old+1)
	}
	checkAll("after Rekey", svc2)
	checkAll("after Rekey, k1 dropped", svcNo1)
	if n, err := svc2.Rekey(ctx, func(int) { t.Errorf("progress reported with nothing to do") }); n != 0 || err != nil {
		t.Errorf("second Rekey = %d, %v; want 0", n, err)
	}

	// A ciphertext is bound to its row: moved to another form, it does not open.
	if _, err := owner.Exec(ctx, `UPDATE forms SET doc_cipher = (SELECT doc_cipher FROM forms WHERE number = $1) WHERE number = $2`, numbers[1], numbers[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.Document(ctx, numbers[2]); !errors.Is(err, pii.ErrDecrypt) {
		t.Errorf("Document of a form holding another form's ciphertext: %v, want ErrDecrypt", err)
	}
}

// rekeySame compares two snapshots of the stored document columns.
func rekeySame(a, b map[string]rekeyRow) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.keyID != y.keyID || !bytes.Equal(x.index, y.index) || !bytes.Equal(x.cipher, y.cipher) {
			return false
		}
	}
	return true
}
