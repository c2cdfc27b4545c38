package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// isTerminal says whether w is a terminal (a progress line is for a person watching).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how far a long operation has come: every interval it rewrites one line,
// "<what>: <done>/<total> (<pct>%), <rate>/s", and clears it at the end. Off (nothing
// written, no goroutine) unless on is set: a terminal, not a pipe or a file.
type progress struct {
	w     io.Writer
	what  string
	total int64
	start time.Time
	done  atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
}

func startProgress(w io.Writer, on bool, what string, total int64, interval time.Duration) *progress {
	p := &progress{w: w, what: what, total: total, start: time.Now(), stop: make(chan struct{})}
	if !on {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(p.w, "\r\033[K"+p.line())
			}
		}
	}()
	return p
}

// line is the progress line now.
func (p *progress) line() string {
	done := p.done.Load()
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.total <= 0 {
		return fmt.Sprintf("%s: %d, %.0f/s", p.what, done, rate)
	}
	return fmt.Sprintf("%s: %d/%d (%.0f%%), %.0f/s", p.what, done, p.total, 100*float64(done)/float64(p.total), rate)
}

func (p *progress) add(n int) { p.done.Add(int64(n)) }

// end stops the line and clears it.
func (p *progress) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}
