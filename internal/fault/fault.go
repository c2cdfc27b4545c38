// Package fault is the typed error every domain package returns: a kind that says what
// class of failure it is, a stable reason code, and the offending fields. The gRPC layer
// maps it to a status once; anything that is not a *fault.Error is an internal error.
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error for the caller.
type Kind int

const (
	// Invalid: the request is malformed (INVALID_ARGUMENT).
	Invalid Kind = iota + 1
	// Precondition: the request is well-formed but the rules or the current state refuse it
	// (FAILED_PRECONDITION).
	Precondition
	// NotFound: the object does not exist for this caller (NOT_FOUND).
	NotFound
	// Conflict: another request changed the object first (ABORTED).
	Conflict
	// Denied: the caller may not do this (PERMISSION_DENIED).
	Denied
	// Unavailable: a dependency is down; the caller may retry with the same request_id.
	Unavailable
	// Exhausted: the caller has used up a limit; it may retry later (RESOURCE_EXHAUSTED).
	Exhausted
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Precondition:
		return "precondition"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	case Denied:
		return "denied"
	case Unavailable:
		return "unavailable"
	case Exhausted:
		return "exhausted"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Violation names one offending field, e.g. "lines[2].amount".
type Violation struct {
	Field       string
	Description string
}

// Error is a domain error.
type Error struct {
	Kind Kind
	// Reason is a stable UPPER_SNAKE code clients may switch on, e.g. "BELOW_MINIMUM".
	Reason string
	// Message is a sentence for people; it never contains personal data.
	Message    string
	Violations []Violation
	// Metadata carries facts a client may need, e.g. the winning payout id.
	Metadata map[string]string
}

// Error is the message and each violation as "field: description", joined by "; ". A
// message that is a violation's description (an error of one field, Field) is said once,
// with its field: "lines[0].vat_rate: 0.5: no refund rate for this VAT rate".
func (e *Error) Error() string {
	msg := e.Message
	parts := make([]string, 0, len(e.Violations)+1)
	for _, v := range e.Violations {
		if v.Description == msg {
			msg = ""
		}
		parts = append(parts, v.Field+": "+v.Description)
	}
	if msg != "" {
		parts = append([]string{msg}, parts...)
	}
	return strings.Join(parts, "; ")
}

// New returns an error of kind k with a reason and message.
func New(k Kind, reason, message string) *Error {
	return &Error{Kind: k, Reason: reason, Message: message}
}

// Field returns an error of kind k naming one field.
func Field(k Kind, reason, field, description string) *Error {
	return &Error{Kind: k, Reason: reason, Message: description, Violations: []Violation{{Field: field, Description: description}}}
}

// With adds metadata and returns e.
func (e *Error) With(key, value string) *Error {
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	e.Metadata[key] = value
	return e
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Is reports whether err carries a *Error of kind k.
func Is(err error, k Kind) bool {
	e, ok := As(err)
	return ok && e.Kind == k
}

// List collects field violations of one kind; Err returns nil when there are none.
type List struct {
	Kind       Kind
	Reason     string
	Message    string
	Violations []Violation
	dropped    int
}

// MaxViolations bounds the violations one error reports, so that a hostile request with
// thousands of bad fields gets a short answer.
const MaxViolations = 20

// Add records a violation (the first MaxViolations; later ones are counted).
func (l *List) Add(field, format string, args ...any) {
	l.dropped++
	if len(l.Violations) < MaxViolations {
		l.dropped--
		l.Violations = append(l.Violations, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
}

// Err returns the collected violations as one *Error, or nil.
func (l *List) Err() error {
	if len(l.Violations) == 0 {
		return nil
	}
	msg := l.Message
	if l.dropped > 0 {
		msg = fmt.Sprintf("%s (%d more not listed)", msg, l.dropped)
	}
	return &Error{Kind: l.Kind, Reason: l.Reason, Message: msg, Violations: l.Violations}
}
