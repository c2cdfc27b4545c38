package pgenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreatedFile lists, one a line, the databases pgenv created ("host:port/name"), so that
// `make clean-data` drops those and only those: pgenv never drops what it did not make.
const CreatedFile = "pgenv-created"

// ErrHoldsData is returned by Clean for a database pgenv did not create that holds forms.
var ErrHoldsData = errors.New("holds forms")

// dbKey names a database on a server: "host:port/name".
func dbKey(connString string) (string, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database, nil
}

// RecordCreated notes in file that pgenv created the database of connString.
func RecordCreated(file, connString string) error {
	key, err := dbKey(connString)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, key); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// created reports whether file records the database of connString.
func created(file, connString string) (bool, error) {
	key, err := dbKey(connString)
	if err != nil {
		return false, err
	}
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, strings.TrimSpace(s.Text()))
	}
	return slices.Contains(lines, key), s.Err()
}

// Clean prepares the deletion of the key file and certificates that go with the database
// of connString: if pgenv created it (recorded in file) it is dropped; if not, and it holds
// forms, Clean returns an error wrapping ErrHoldsData, since the forms' document numbers
// would become unreadable without their keys; otherwise the database is left alone.
// A database that does not exist is fine. It returns whether it dropped the database.
func Clean(ctx context.Context, connString, file string) (dropped bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return false, err
	}
	name := cfg.Database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if pgCode(err) == "3D000" { // invalid_catalog_name: nothing to clean
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ours, err := created(file, connString)
	if err != nil {
		conn.Close(ctx)
		return false, err
	}
	if !ours {
		var holds bool
		err := conn.QueryRow(ctx, `SELECT to_regclass('forms') IS NOT NULL`).Scan(&holds)
		if err == nil && holds {
			err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM forms)`).Scan(&holds)
		}
		conn.Close(ctx)
		if err != nil {
			return false, fmt.Errorf("database %s: %w", name, err)
		}
		if holds {
			return false, fmt.Errorf("database %s %w and was not created by pgenv", name, ErrHoldsData)
		}
		return false, nil
	}
	conn.Close(ctx)
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return false, fmt.Errorf("drop database %s: %w", name, err)
	}
	return true, nil
}
