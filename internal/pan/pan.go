// Package pan finds payment card numbers (primary account numbers) in free text, so that
// none is ever accepted into a field meant for something else, nor stored.
//
// A card number is a run of 13 to 19 digits that passes the Luhn check (ISO/IEC 7812-1),
// the digits possibly grouped by single spaces or dashes ("4111 1111 1111 1111",
// "4111-1111-1111-1111"). A run is maximal: it is bounded by anything that is neither a
// digit nor a single separator between two digits, so "tok_4111111111111111" holds one,
// and so does "tok4111111111111111x". Runs longer than 19 digits are judged by every
// 13 to 19 digit window they contain, since a card number may be glued to other digits.
package pan

// Find returns the first card number s contains (its digits only) and whether there is one.
func Find(s string) (string, bool) {
	var run []byte
	flush := func() (string, bool) {
		defer func() { run = run[:0] }()
		return check(run)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			run = append(run, c)
		case (c == ' ' || c == '-') && len(run) > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// a single separator between two digits keeps the run going
		default:
			if n, ok := flush(); ok {
				return n, true
			}
		}
	}
	return flush()
}

// check reports whether the run is, or (when longer than 19 digits) contains, a card number.
func check(run []byte) (string, bool) {
	if len(run) < 13 {
		return "", false
	}
	if len(run) <= 19 {
		if Luhn(string(run)) {
			return string(run), true
		}
		return "", false
	}
	for size := 19; size >= 13; size-- {
		for i := 0; i+size <= len(run); i++ {
			if Luhn(string(run[i : i+size])) {
				return string(run[i : i+size]), true
			}
		}
	}
	return "", false
}

// Luhn reports whether the digit string passes the Luhn (mod 10) check. A string with
// anything other than ASCII digits, or empty, does not.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
