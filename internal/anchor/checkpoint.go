package anchor

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Why a checkpoint was made.
const (
	Daily      = "daily"
	MonthClose = "month-close"
	Manual     = "manual"
)

// Checkpoint is one signed chain head: one line of the checkpoint file.
type Checkpoint struct {
	// Time is when it was signed (UTC, microseconds).
	Time  time.Time `json:"time"`
	Chain string    `json:"chain"`
	// Seq and RowID are the head seal's number and row; Head its hash, hex.
	Seq   int64  `json:"seq"`
	RowID string `json:"row_id"`
	Head  string `json:"head"`
	// Reason is Daily, MonthClose or Manual; Month ("YYYY-MM") the month it stands for:
	// the closed month, else the month of Time in Asia/Shanghai.
	Reason string `json:"reason"`
	Month  string `json:"month"`
	KeyID  string `json:"key_id"`
	// Signature is Ed25519 over Message(), base64.
	Signature string `json:"signature"`
}

// Message is what the signature covers: every field but the signature, each
// length-prefixed after a tag naming the format.
func (c Checkpoint) Message() []byte {
	b := []byte(nil)
	for _, f := range []string{"taxrefund-checkpoint/1", c.Time.UTC().Format(time.RFC3339Nano), c.Chain,
		strconv.FormatInt(c.Seq, 10), c.RowID, c.Head, c.Reason, c.Month, c.KeyID} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Sign sets the checkpoint's key id and signature.
func (s *Signer) Sign(c Checkpoint) Checkpoint {
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	c.KeyID = s.ID
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, c.Message()))
	return c
}

// Verify checks the checkpoint's signature against the key it names.
func (k PublicKeys) Verify(c Checkpoint) error {
	pub, ok := k[c.KeyID]
	if !ok {
		return fmt.Errorf("signed with key %q, which is not in the public key file", c.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.Message(), sig) {
		return fmt.Errorf("its signature does not verify with key %s: the line was forged or altered", c.KeyID)
	}
	return nil
}

// Append appends checkpoints to the checkpoint file, one JSON line each, in one write,
// and syncs it. The file is only ever appended to (O_APPEND); `chattr +a` makes the
// filesystem hold to that too.
func Append(path string, cps ...Checkpoint) error {
	var b []byte
	for _, c := range cps {
		line, err := json.Marshal(c)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	return closeAfter(f, b)
}

// Line is one line of the checkpoint file: its number (from 1) and the checkpoint, or
// why it is not one.
type Line struct {
	N          int
	Checkpoint Checkpoint
	Err        error
}

// ReadFile reads the checkpoint file; a missing file has no lines.
func ReadFile(path string) ([]Line, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		l := Line{N: n}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l.Checkpoint); err != nil {
			l.Err = fmt.Errorf("not a checkpoint: %w", err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Latest returns, by chain, the latest checkpoint of month ("YYYY-MM") in lines whose
// signature verifies with keys.
func Latest(lines []Line, keys PublicKeys, month string) map[string]Checkpoint {
	out := map[string]Checkpoint{}
	for _, l := range lines {
		c := l.Checkpoint
		if l.Err != nil || c.Month != month || keys.Verify(c) != nil {
			continue
		}
		if prev, ok := out[c.Chain]; !ok || !c.Time.Before(prev.Time) {
			out[c.Chain] = c
		}
	}
	return out
}
