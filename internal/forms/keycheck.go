package forms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
)

// KeyMismatchError says that the stored document numbers need keys the key file does not
// hold: the key file was replaced (a fresh development key file after deleting .data/, or
// the wrong file), and look-ups by document would silently find nothing.
type KeyMismatchError struct {
	// Missing are the key ids that sealed stored numbers and that the key file lacks.
	Missing []string
	// Wrong are key ids the key file holds but whose key does not open the stored numbers.
	Wrong []string
	// WrongIndex: the key file's index key did not make the stored blind index.
	WrongIndex bool
}

func (e *KeyMismatchError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("the database holds document numbers sealed with key ids %s, which the key file lacks", strings.Join(e.Missing, ", ")))
	}
	if len(e.Wrong) > 0 {
		parts = append(parts, fmt.Sprintf("the key file's keys %s are not the ones that sealed the stored document numbers", strings.Join(e.Wrong, ", ")))
	}
	if e.WrongIndex {
		parts = append(parts, "the key file's index key is not the one that indexed the stored document numbers")
	}
	return strings.Join(parts, "; ")
}

// CheckKeys returns a *KeyMismatchError when the forms in the database hold document
// numbers the service's keyring cannot read or find: one sample per key id is decrypted
// and its blind index recomputed. It reads every form's key id once (one scan per
// distinct id). ctx's party must see every form (the system party).
func (s *Service) CheckKeys(ctx context.Context) error {
	keys, pool := s.keys, db.Scope(s.pool)
	seen := []string{}
	mismatch := &KeyMismatchError{}
	for {
		var (
			id               uuid.UUID
			keyID            string
			docType, country string
			index, cipher    []byte
		)
		err := pool.QueryRow(ctx, `SELECT id, doc_key_id, doc_type, doc_country, doc_index, doc_cipher FROM forms
			WHERE doc_key_id <> ALL($1::text[]) LIMIT 1`, seen).Scan(&id, &keyID, &docType, &country, &index, &cipher)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("check PII keys: %w", err)
		}
		seen = append(seen, keyID)
		if !keys.Has(keyID) {
			mismatch.Missing = append(mismatch.Missing, keyID)
			continue
		}
		plain, err := keys.Open(keyID, cipher, id[:])
		if err != nil {
			mismatch.Wrong = append(mismatch.Wrong, keyID)
			continue
		}
		if !mismatch.WrongIndex && !bytes.Equal(keys.BlindIndex(docType, country, string(plain)), index) {
			mismatch.WrongIndex = true
		}
	}
	if len(mismatch.Missing) == 0 && len(mismatch.Wrong) == 0 && !mismatch.WrongIndex {
		return nil
	}
	slices.Sort(mismatch.Missing)
	slices.Sort(mismatch.Wrong)
	return mismatch
}
