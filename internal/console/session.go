package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"taxrefund/internal/auth"
)

// Sessions live in this process's memory: a restart signs everyone out (they mint a new
// link), and behind several servers a browser must come back to the server that signed
// it in. Tokens are kept only as their SHA-256, so a memory dump names no usable token.

// session is a signed-in browser.
type session struct {
	party auth.Party
	csrf  string
	lang  string
	last  time.Time
}

type link struct {
	party   auth.Party
	expires time.Time
}

// sessions holds the one-time sign-in links and the open sessions.
type sessions struct {
	now     func() time.Time
	idle    time.Duration
	linkTTL time.Duration

	mu    sync.Mutex
	links map[[32]byte]link
	open  map[[32]byte]*session
}

func newSessions(now func() time.Time, idle, linkTTL time.Duration) *sessions {
	return &sessions{now: now, idle: idle, linkTTL: linkTTL, links: map[[32]byte]link{}, open: map[[32]byte]*session{}}
}

// token returns 32 random bytes, base64url.
func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func key(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// mint returns a one-time sign-in token for p and when it expires.
func (s *sessions) mint(p auth.Party) (string, time.Time) {
	tok := token()
	exp := s.now().Add(s.linkTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	s.links[key(tok)] = link{party: p, expires: exp}
	return tok, exp
}

// redeem spends a sign-in token: the first use within its lifetime opens a session and
// returns its id; any later use, or a use after expiry, fails.
func (s *sessions) redeem(tok, lang string) (string, *session, bool) {
	k := key(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[k]
	delete(s.links, k)
	if !ok || !s.now().Before(l.expires) {
		return "", nil, false
	}
	id := token()
	ss := &session{party: l.party, csrf: token(), lang: lang, last: s.now()}
	s.open[key(id)] = ss
	return id, ss, true
}

// get returns a copy of the session of id if it has not been idle too long, and marks
// it used.
func (s *sessions) get(id string) (*session, bool) {
	k := key(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.open[k]
	if !ok {
		return nil, false
	}
	now := s.now()
	if now.Sub(ss.last) > s.idle {
		delete(s.open, k)
		return nil, false
	}
	ss.last = now
	cp := *ss
	return &cp, true
}

// setLang changes the language of the session of id.
func (s *sessions) setLang(id, lang string) {
	s.mu.Lock()
	if ss, ok := s.open[key(id)]; ok {
		ss.lang = lang
	}
	s.mu.Unlock()
}

// end closes the session of id.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.open, key(id))
	s.mu.Unlock()
}

// sweep drops expired links and idle sessions; s.mu is held.
func (s *sessions) sweep() {
	now := s.now()
	for k, l := range s.links {
		if !now.Before(l.expires) {
			delete(s.links, k)
		}
	}
	for k, ss := range s.open {
		if now.Sub(ss.last) > s.idle {
			delete(s.open, k)
		}
	}
}
