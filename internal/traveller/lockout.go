package traveller

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
)

// lockouts counts wrong answers per form number in the traveller_lockouts table
// (migration 00029): LockAfter wrong answers within LockFor lock the number for LockFor.
// Every server of a deployment reads and writes the same rows, so two servers give a
// guesser the same LockAfter tries as one; a restart forgets nothing.
type lockouts struct {
	pool  *pgxpool.Pool
	after int
	dur   time.Duration
	// wrongs counts wrong answers in this process; every sweepEvery-th one also deletes the
	// rows that no longer count.
	wrongs atomic.Uint64
}

const sweepEvery = 256

func newLockouts(pool *pgxpool.Pool, after int, dur time.Duration) *lockouts {
	return &lockouts{pool: pool, after: max(after, 1), dur: dur}
}

// The look-up has no party of its own: it acts as the system, on the jobs pool.
func systemCtx(ctx context.Context) context.Context { return db.WithParty(ctx, "system", "traveller") }

// locked reports until when number is locked (false: not locked).
func (l *lockouts) locked(ctx context.Context, number string, now time.Time) (time.Time, bool, error) {
	var until time.Time
	err := db.Scope(l.pool).QueryRow(systemCtx(ctx),
		`SELECT locked_until FROM traveller_lockouts WHERE form_number = $1 AND locked_until > $2`, number, now).Scan(&until)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("read lock-out: %w", err)
	}
	return until, true, nil
}

// wrong counts a wrong answer for number, in one statement whatever the races between
// servers, and reports whether this answer locked it.
func (l *lockouts) wrong(ctx context.Context, number string, now time.Time) (bool, error) {
	ctx = systemCtx(ctx)
	if l.wrongs.Add(1)%sweepEvery == 0 {
		if _, err := db.Scope(l.pool).Exec(ctx, `DELETE FROM traveller_lockouts
			WHERE first_at < $1 - $2::interval AND (locked_until IS NULL OR locked_until <= $1)`, now, l.dur); err != nil {
			return false, fmt.Errorf("sweep lock-outs: %w", err)
		}
	}
	// A strike outside the window starts a new one; the LockAfter-th locks the number and
	// starts the count again.
	var lockedNow bool
	err := db.Scope(l.pool).QueryRow(ctx, `
		INSERT INTO traveller_lockouts AS l (form_number, strikes, first_at, locked_until)
		VALUES ($1::text, CASE WHEN $3::int <= 1 THEN 0 ELSE 1 END, $2::timestamptz, CASE WHEN $3::int <= 1 THEN $2::timestamptz + $4::interval END)
		ON CONFLICT (form_number) DO UPDATE SET
		    strikes = CASE WHEN (CASE WHEN $2::timestamptz - l.first_at > $4::interval THEN 1 ELSE l.strikes + 1 END) >= $3::int THEN 0
		                   ELSE (CASE WHEN $2::timestamptz - l.first_at > $4::interval THEN 1 ELSE l.strikes + 1 END) END,
		    first_at = CASE WHEN $2::timestamptz - l.first_at > $4::interval
		                      OR (CASE WHEN $2::timestamptz - l.first_at > $4::interval THEN 1 ELSE l.strikes + 1 END) >= $3::int THEN $2::timestamptz
		                    ELSE l.first_at END,
		    locked_until = CASE WHEN (CASE WHEN $2::timestamptz - l.first_at > $4::interval THEN 1 ELSE l.strikes + 1 END) >= $3::int
		                        THEN $2::timestamptz + $4::interval ELSE l.locked_until END
		RETURNING locked_until IS NOT DISTINCT FROM $2::timestamptz + $4::interval`,
		number, now, l.after, l.dur).Scan(&lockedNow)
	if err != nil {
		return false, fmt.Errorf("count wrong answer: %w", err)
	}
	return lockedNow, nil
}

// right forgets the wrong answers for number, unless it is locked.
func (l *lockouts) right(ctx context.Context, number string, now time.Time) error {
	if _, err := db.Scope(l.pool).Exec(systemCtx(ctx), `DELETE FROM traveller_lockouts
		WHERE form_number = $1 AND (locked_until IS NULL OR locked_until <= $2)`, number, now); err != nil {
		return fmt.Errorf("clear wrong answers: %w", err)
	}
	return nil
}
