package pgenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestClean: on a real server, a database pgenv created and recorded is dropped, even
// with forms in it; one it did not create is refused while it holds forms and left alone
// once it holds none; a database that does not exist is fine.
func TestClean(t *testing.T) {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Fatal("TEST_DATABASE_URL is not set: run under pgenv (make test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	record := filepath.Join(t.TempDir(), CreatedFile)
	suffix := time.Now().UnixNano()
	urlOf := func(name string) string {
		cfg, err := pgx.ParseConfig(base)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	}
	exists := func(name string) bool {
		conn, err := pgx.Connect(ctx, urlOf("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	withForms := func(name string, rows int) {
		conn, err := pgx.Connect(ctx, urlOf(name))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS forms (id int); DELETE FROM forms`); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if _, err := conn.Exec(ctx, `INSERT INTO forms VALUES ($1)`, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	dropLater := func(name string) {
		t.Cleanup(func() {
			conn, err := pgx.Connect(context.Background(), urlOf("postgres"))
			if err == nil {
				_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
				conn.Close(context.Background())
			}
		})
	}

	ours := fmt.Sprintf("pgenv_clean_ours_%d", suffix)
	dropLater(ours)
	if got, err := EnsureDatabase(ctx, urlOf(ours)); err != nil || got != ours {
		t.Fatalf("EnsureDatabase = %q, %v", got, err)
	}
	if err := RecordCreated(record, urlOf(ours)); err != nil {
		t.Fatal(err)
	}
	withForms(ours, 1)
	if dropped, err := Clean(ctx, urlOf(ours), record); err != nil || !dropped {
		t.Fatalf("Clean of a database pgenv created = %v, %v; want dropped", dropped, err)
	}
	if exists(ours) {
		t.Errorf("database %s still exists after Clean", ours)
	}

	theirs := fmt.Sprintf("pgenv_clean_theirs_%d", suffix)
	dropLater(theirs)
	conn, err := pgx.Connect(ctx, urlOf("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+theirs)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	withForms(theirs, 2)
	if dropped, err := Clean(ctx, urlOf(theirs), record); !errors.Is(err, ErrHoldsData) || dropped {
		t.Errorf("Clean of another's database holding forms = %v, %v; want ErrHoldsData", dropped, err)
	}
	withForms(theirs, 0)
	if dropped, err := Clean(ctx, urlOf(theirs), record); err != nil || dropped {
		t.Errorf("Clean of another's database without forms = %v, %v; want left alone", dropped, err)
	}
	if !exists(theirs) {
		t.Errorf("Clean dropped %s, which pgenv did not create", theirs)
	}
	if dropped, err := Clean(ctx, urlOf(fmt.Sprintf("pgenv_clean_none_%d", suffix)), record); err != nil || dropped {
		t.Errorf("Clean of a missing database = %v, %v", dropped, err)
	}
}
