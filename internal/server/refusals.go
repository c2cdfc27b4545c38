package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
)

// The refusal log: every call refused for the caller's sake (authorization, validation,
// rate limit, overload, deadline) is logged once, with the party, the method, the code and
// the reason: the ErrorInfo reason and the names of the fields at fault, or the server's
// own fixed message. Never a field's value, so never a document number or card data.
// Sampled per party, method and code: the first SampleFirst in each second, then every
// SampleEvery-th, so that a flood cannot fill the disk; a logged line says how many of its
// kind were left out since the last one.

// Sampling of the refusal log.
const (
	SampleFirst = 5
	SampleEvery = 100
)

var refusedCodes = map[codes.Code]bool{
	codes.PermissionDenied: true, codes.Unauthenticated: true, codes.InvalidArgument: true,
	codes.OutOfRange: true, codes.ResourceExhausted: true, codes.DeadlineExceeded: true,
}

type sampleKey struct {
	party, method string
	code          codes.Code
}

type sampleState struct {
	second  int64
	inSec   int
	skipped int
}

// refusalLog samples and writes refusal lines.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	state map[sampleKey]*sampleState
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, now: time.Now, state: map[sampleKey]*sampleState{}}
}

// admit reports whether this refusal is logged, and how many of its kind were skipped
// since the last logged one.
func (r *refusalLog) admit(k sampleKey) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.state[k]
	if !ok {
		if len(r.state) > 10000 { // parties × methods × codes is bounded; a guard anyway
			clear(r.state)
		}
		s = &sampleState{}
		r.state[k] = s
	}
	sec := r.now().Unix()
	if sec != s.second {
		s.second, s.inSec = sec, 0
	}
	s.inSec++
	if s.inSec <= SampleFirst || (s.inSec-SampleFirst)%SampleEvery == 0 {
		skipped := s.skipped
		s.skipped = 0
		return true, skipped
	}
	s.skipped++
	return false, 0
}

func (r *refusalLog) record(ctx context.Context, method string, err error) {
	if err == nil {
		return
	}
	st := status.Convert(err)
	if !refusedCodes[st.Code()] {
		return
	}
	party := "unauthenticated"
	if p, ok := auth.PeerParty(ctx); ok {
		party = p.URI
	}
	logged, skipped := r.admit(sampleKey{party, method, st.Code()})
	if !logged {
		return
	}
	attrs := []any{"party", party, "method", method, "code", st.Code().String(), "reason", reasonOf(st)}
	if skipped > 0 {
		attrs = append(attrs, "skipped", skipped)
	}
	r.log.WarnContext(ctx, "call refused", attrs...)
}

// reasonOf names why without any value the caller sent: the ErrorInfo reason and the
// fields at fault of a domain refusal, else the server's own message (the authorizer's,
// the limiter's, a deadline's), which quotes nothing of the request.
func reasonOf(st *status.Status) string {
	var reason string
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if reason == "" && len(fields) == 0 {
		return st.Message()
	}
	if len(fields) > 0 {
		reason += " " + strings.Join(fields, ",")
	}
	return strings.TrimSpace(reason)
}

func (r *refusalLog) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		r.record(ctx, info.FullMethod, err)
		return resp, err
	}
}

func (r *refusalLog) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		r.record(ss.Context(), info.FullMethod, err)
		return err
	}
}
