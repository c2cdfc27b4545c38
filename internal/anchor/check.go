package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"taxrefund/internal/db"
	"taxrefund/internal/seal"
)

// Kinds of finding.
const (
	// Forged: a checkpoint line that does not parse, names an unknown key or whose
	// signature does not verify.
	Forged = "forged"
	// Resealed: a seal's stored hash differs from the head a checkpoint signed: the chain
	// was re-sealed since the checkpoint.
	Resealed = "re-sealed"
	// Changed: the seals still hold the signed head, but the rows no longer hash to it.
	Changed = "changed"
	// Truncated: a signed seal is no longer in the chain.
	Truncated = "truncated"
)

// Finding is what the checkpoints show about a chain.
type Finding struct {
	Kind  string
	Chain string
	// Line is the checkpoint file's line.
	Line int
	// From and To bound the seals among which the first row that differs lies: after the
	// last checkpoint that still matches, up to the first one that does not. RowID is the
	// row of seal From.
	From, To int64
	RowID    string
	Message  string
}

// ChainCheck is one chain's check.
type ChainCheck struct {
	Chain string
	// Verify is the chain recomputed against its own seals.
	Verify seal.Result
	// Checkpoints is how many valid checkpoints of the chain there are; Matched how many
	// the chain still matches; Last the last matched (nil: none).
	Checkpoints, Matched int
	Last                 *Checkpoint
}

// Report is Check's answer.
type Report struct {
	Chains   []ChainCheck
	Findings []Finding
}

// OK is true when every chain verifies and no checkpoint disagrees.
func (r Report) OK() bool {
	for _, c := range r.Chains {
		if c.Verify.Broken != nil {
			return false
		}
	}
	return len(r.Findings) == 0
}

// Check verifies every chain against itself (seal.Verify) and against the checkpoints in
// lines whose signatures verify with keys: it recomputes each chain from its rows and
// compares the hash at each checkpoint's seal with the signed head. The first checkpoint
// that differs gives a finding naming the seals after the last checkpoint that still
// matches; lines that are not validly signed are findings of their own.
func Check(ctx context.Context, q db.DBTX, lines []Line, keys PublicKeys) (Report, error) {
	var r Report
	byChain := map[string][]Line{}
	for _, l := range lines {
		c := l.Checkpoint
		err := l.Err
		if err == nil {
			err = keys.Verify(c)
		}
		if err != nil {
			r.Findings = append(r.Findings, Finding{Kind: Forged, Chain: c.Chain, Line: l.N,
				Message: fmt.Sprintf("checkpoint line %d (%s seal %d, %s): %v", l.N, c.Chain, c.Seq, c.Time.Format("2006-01-02T15:04:05Z07:00"), err)})
			continue
		}
		byChain[c.Chain] = append(byChain[c.Chain], l)
	}
	for _, chain := range seal.Chains {
		v, err := seal.Verify(ctx, q, chain)
		if err != nil {
			return r, err
		}
		cc := ChainCheck{Chain: chain, Verify: v}
		f, err := checkChain(ctx, q, chain, byChain[chain], &cc)
		if err != nil {
			return r, err
		}
		if f != nil {
			r.Findings = append(r.Findings, *f)
		}
		r.Chains = append(r.Chains, cc)
	}
	return r, nil
}

// at is what the chain holds at one seal.
type at struct {
	row              string
	stored, computed string // hex; computed "" when it cannot be recomputed
}

func checkChain(ctx context.Context, q db.DBTX, chain string, cps []Line, cc *ChainCheck) (*Finding, error) {
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].Checkpoint.Seq < cps[j].Checkpoint.Seq })
	cc.Checkpoints = len(cps)
	// The seals checkpoints name, and the rows of the seals right after them (where the
	// range of a finding starts).
	want := map[int64]bool{1: true}
	for _, l := range cps {
		want[l.Checkpoint.Seq] = true
		want[l.Checkpoint.Seq+1] = true
	}
	seen := map[int64]at{}
	var last int64
	computed := make([]byte, sha256.Size) // the genesis
	err := seal.Walk(ctx, q, chain, func(x seal.Sealed) error {
		if computed != nil {
			computed = x.Next(computed)
		}
		last = x.Seq
		if want[x.Seq] {
			a := at{row: x.RowID, stored: hex.EncodeToString(x.Hash)}
			if computed != nil {
				a.computed = hex.EncodeToString(computed)
			}
			seen[x.Seq] = a
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var matched int64
	for _, l := range cps {
		c := l.Checkpoint
		a, ok := seen[c.Seq]
		if ok && a.row == c.RowID && a.computed == c.Head {
			cc.Matched++
			matched = c.Seq
			cp := c
			cc.Last = &cp
			continue
		}
		f := &Finding{Chain: chain, Line: l.N, From: matched + 1, To: c.Seq, RowID: seen[matched+1].row}
		if b := cc.Verify.Broken; b != nil && b.Seq >= f.From && b.Seq <= f.To {
			// The chain itself names the row: its seal no longer matches it.
			f.From, f.RowID = b.Seq, b.RowID
		}
		if f.RowID == "" && f.From == c.Seq {
			f.RowID = c.RowID // the seal is gone: the row it signed
		}
		where := fmt.Sprintf("seal %d (row %s)", f.From, f.RowID)
		if f.From < f.To {
			where = fmt.Sprintf("among seals %d..%d, from seal %d (row %s)", f.From, f.To, f.From, f.RowID)
		}
		since := fmt.Sprintf("the checkpoint of %s (line %d, seal %d, key %s)", c.Time.Format("2006-01-02T15:04:05Z07:00"), l.N, c.Seq, c.KeyID)
		switch {
		case !ok && c.Seq <= last:
			f.Kind = Truncated
			f.Message = fmt.Sprintf("%s: seal %d signed in %s is missing from the chain; the first row that differs is %s",
				chain, c.Seq, since, where)
		case !ok:
			// The seals after the chain's end are gone; the seals before them are
			// vouched for only up to the last checkpoint that matches.
			f.Kind, f.From, f.To = Truncated, last+1, c.Seq
			f.RowID = c.RowID
			f.Message = fmt.Sprintf("%s: seals %d..%d are gone since %s (the chain ends at seal %d; the signed head's row was %s); the chain before them matches the checkpoints up to seal %d",
				chain, f.From, f.To, since, last, c.RowID, matched)
		case a.stored != c.Head || a.row != c.RowID:
			f.Kind = Resealed
			f.Message = fmt.Sprintf("%s: re-sealed since %s: the signed head %s differs from the chain recomputed from the rows (%s); the first row that differs is %s",
				chain, since, short(c.Head), short(a.computed), where)
		default:
			f.Kind = Changed
			f.Message = fmt.Sprintf("%s: rows changed since %s, whose head the seals still hold: the first row that differs is %s",
				chain, since, where)
		}
		return f, nil
	}
	return nil, nil
}

// short abbreviates a hex hash for messages.
func short(h string) string {
	if h == "" {
		return "not recomputable"
	}
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
