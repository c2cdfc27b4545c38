package wire

import (
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The size of every string field of every request, checked before any other work (the
// server's first interceptor after the deadline; OPERATIONS.md lists the limits). They
// are limits in bytes, above the characters the rules allow (a description of 200
// characters may take 800 bytes of UTF-8), so that a legitimate value always reaches the
// field's own check, which names the rule; a larger one is refused here without being
// looked at, let alone echoed back.
const (
	// MaxStringBytes bounds a field not listed in maxStringBytesByName: codes, numbers,
	// dates, amounts, rates, UUIDs, months.
	MaxStringBytes = 128
	// MaxTextBytes bounds free text: descriptions, reasons, notes, names.
	MaxTextBytes = 2048
	// MaxTokenBytes bounds opaque tokens and references: page tokens, the acquirer's card
	// token, agreement, receipt and account references.
	MaxTokenBytes = 512
)

var maxStringBytesByName = map[protoreflect.Name]int{
	"description": MaxTextBytes, "reason": MaxTextBytes, "note": MaxTextBytes, "name": MaxTextBytes,
	"page_token": MaxTokenBytes, "acquirer_token": MaxTokenBytes, "agreement_reference": MaxTokenBytes,
	"receipt_reference": MaxTokenBytes, "account_reference": MaxTokenBytes,
}

// MaxBytes returns the size limit of a string field.
func MaxBytes(fd protoreflect.FieldDescriptor) int {
	if n, ok := maxStringBytesByName[fd.Name()]; ok {
		return n
	}
	return MaxStringBytes
}

// CheckLengths returns an INVALID_ARGUMENT fault naming every string field of m (nested
// and repeated ones by path, e.g. lines[3].description) longer than its limit, or nil.
// It never quotes a value.
func CheckLengths(m protoreflect.Message) error {
	f := NewFields()
	checkLengths(f, m, "")
	if err := f.Err(); err != nil {
		return err
	}
	return nil
}

func checkLengths(f *Fields, m protoreflect.Message, prefix string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				checkValue(f, fd, l.Get(i), name+"["+strconv.Itoa(i)+"]")
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if len(k.String()) > MaxStringBytes {
					f.Add(name, "has a key longer than %d bytes", MaxStringBytes)
				}
				checkValue(f, fd.MapValue(), mv, name+"[]")
				return true
			})
		default:
			checkValue(f, fd, v, name)
		}
		return true
	})
}

func checkValue(f *Fields, fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		n := 0
		if fd.Kind() == protoreflect.StringKind {
			n = len(v.String())
		} else {
			n = len(v.Bytes())
		}
		if max := MaxBytes(fd); n > max {
			f.Add(name, "must be at most %d bytes", max)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkLengths(f, v.Message(), name+".")
	}
}
