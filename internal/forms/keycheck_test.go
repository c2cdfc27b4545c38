package forms_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/pii"
)

// otherIndex returns the key file with a fresh index key.
func otherIndex(t *testing.T, file []byte) []byte {
	t.Helper()
	var fresh string
	for _, line := range strings.Split(string(rekeyKeyFile(t)), "\n") {
		if strings.HasPrefix(line, "index ") {
			fresh = line
		}
	}
	var out []string
	for _, line := range strings.Split(string(file), "\n") {
		if strings.HasPrefix(line, "index ") {
			line = fresh
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n"))
}

// TestCheckKeys: an empty database accepts any key file. After forms are issued under k1
// and, after a rotation, under k2, the key file that sealed them passes; a fresh key file
// (what deleting .data/ makes: a new k1 and a new index key) is refused naming k1 as wrong
// and k2 as missing; the right encryption keys with another index key are refused; the file without k1 is refused naming k1
// as missing.
func TestCheckKeys(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = db.WithParty(ctx, "system", "keycheck")
	url := dbtest.NewURL(t)
	dbtest.Registry(t, dbtest.OpenPool(t, url, ""))
	app := dbtest.OpenPool(t, url, db.AppRole)

	k1File := rekeyKeyFile(t)
	if err := rekeyService(app, rekeyRing(t, k1File)).CheckKeys(ctx); err != nil {
		t.Fatalf("CheckKeys on a database without forms: %v", err)
	}
	if _, err := rekeyIssue(ctx, rekeyService(app, rekeyRing(t, k1File)), 1); err != nil {
		t.Fatal(err)
	}
	k2File, _, err := pii.RotatedKeyFile(k1File)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rekeyIssue(ctx, rekeyService(app, rekeyRing(t, k2File)), 2); err != nil {
		t.Fatal(err)
	}
	if err := rekeyService(app, rekeyRing(t, k2File)).CheckKeys(ctx); err != nil {
		t.Fatalf("CheckKeys with the key file that sealed the forms: %v", err)
	}

	check := func(name string, file []byte, missing, wrong []string, wrongIndex bool) {
		t.Helper()
		err := rekeyService(app, rekeyRing(t, file)).CheckKeys(ctx)
		var km *forms.KeyMismatchError
		if !errors.As(err, &km) {
			t.Fatalf("%s: CheckKeys = %v, want a KeyMismatchError", name, err)
		}
		if strings.Join(km.Missing, ",") != strings.Join(missing, ",") || strings.Join(km.Wrong, ",") != strings.Join(wrong, ",") || km.WrongIndex != wrongIndex {
			t.Errorf("%s: missing %v, wrong %v, wrong index %v; want %v, %v, %v", name, km.Missing, km.Wrong, km.WrongIndex, missing, wrong, wrongIndex)
		}
		for _, id := range append(missing, wrong...) {
			if !strings.Contains(err.Error(), id) {
				t.Errorf("%s: message %q does not name key id %s", name, err, id)
			}
		}
	}
	check("a fresh key file", rekeyKeyFile(t), []string{"k2"}, []string{"k1"}, false)
	check("the key file with another index key", otherIndex(t, k2File), nil, nil, true)
	check("the key file without k1", rekeyWithout(t, k2File, "k1"), []string{"k1"}, nil, false)
}
