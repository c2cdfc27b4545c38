package pgenv

import "testing"

func TestWithDatabase(t *testing.T) {
	t.Setenv("PGDATABASE", "") // pgx would take the database name from it
	tests := []struct {
		in, want string
	}{
		{"postgres://u:p@db.example:5433/app?sslmode=require", "postgres://u:p@db.example:5433/app?sslmode=require"},
		{"postgres://u:p@db.example:5433?sslmode=require", "postgres://u:p@db.example:5433/taxrefund_test?sslmode=require"},
		{"postgresql://u@h/", "postgresql://u@h/taxrefund_test"},
		{"host=h user=u", "host=h user=u dbname='taxrefund_test'"},
		{"host=h user=u dbname=app", "host=h user=u dbname=app"},
	}
	for _, tt := range tests {
		got, err := WithDatabase(tt.in, "taxrefund_test")
		if err != nil {
			t.Errorf("WithDatabase(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := WithDatabase("postgres://u@h:notaport/x", "y"); err == nil {
		t.Error("WithDatabase accepted an invalid URL")
	}
}

func TestURL(t *testing.T) {
	if got, want := URL(5432, "taxrefund"), "postgres://postgres@127.0.0.1:5432/taxrefund?sslmode=disable"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got, want := URL(40001, "a b"), "postgres://postgres@127.0.0.1:40001/a%20b?sslmode=disable"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}
