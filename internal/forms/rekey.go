package forms

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
)

// rekeyBatch is how many forms one re-encryption transaction handles.
const rekeyBatch = 500

// Rekey re-encrypts every stored document number that is not sealed with the keyring's
// current key (after a key rotation), in batches, and returns how many it re-encrypted.
// The blind index does not change, so look-ups keep working throughout; it is safe to run
// while the service serves and to run again after an interruption.
func (s *Service) Rekey(ctx context.Context, progress func(done int)) (int, error) {
	current := s.keys.CurrentKeyID()
	total := 0
	for {
		n := 0
		err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id, doc_key_id, doc_cipher FROM forms WHERE doc_key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
				current, rekeyBatch)
			if err != nil {
				return err
			}
			type sealed struct {
				id     uuid.UUID
				keyID  string
				cipher []byte
			}
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealed, error) {
				var x sealed
				err := r.Scan(&x.id, &x.keyID, &x.cipher)
				return x, err
			})
			if err != nil {
				return err
			}
			n = len(list)
			ids := make([]uuid.UUID, n)
			ciphers := make([][]byte, n)
			for i, x := range list {
				plain, err := s.keys.Open(x.keyID, x.cipher, x.id[:])
				if err != nil {
					return fmt.Errorf("form %s: %w", x.id, err)
				}
				keyID, cipher, err := s.keys.Seal(plain, x.id[:])
				if err != nil {
					return err
				}
				if keyID != current {
					return fmt.Errorf("sealed with %s, want the current key %s", keyID, current)
				}
				ids[i], ciphers[i] = x.id, cipher
			}
			if n == 0 {
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE forms f SET doc_key_id = $1, doc_cipher = u.c
				FROM unnest($2::uuid[], $3::bytea[]) AS u(id, c) WHERE f.id = u.id`, current, ids, ciphers)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("rekey: %w", err)
		}
		total += n
		if progress != nil && n > 0 {
			progress(total)
		}
		if n < rekeyBatch {
			return total, nil
		}
	}
}

// Document returns a form's document number in clear, for an authorized official's
// screen: decrypted with the key that sealed it.
func (s *Service) Document(ctx context.Context, number string) (string, error) {
	var id uuid.UUID
	var keyID string
	var cipher []byte
	if err := db.Scope(s.pool).QueryRow(ctx, `SELECT id, doc_key_id, doc_cipher FROM forms WHERE number = $1`, number).Scan(&id, &keyID, &cipher); err != nil {
		return "", err
	}
	plain, err := s.keys.Open(keyID, cipher, id[:])
	return string(plain), err
}
