// Package contact holds the reachability rules of docs/recipients.md:
// what makes an email address, a phone number or a device token usable, the
// form a destination is published in, and its de-duplication key.
//
// The functions work on byte slices straight from the database rows and
// allocate only when a value must be rewritten.
package contact

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// Status says whether a contact can be used.
type Status int

const (
	OK Status = iota
	// Missing is NULL or blank after trimming: the no_contact skip reason.
	Missing
	// Invalid is present but fails its check: the invalid_contact reason.
	Invalid
)

// Trim removes leading and trailing ASCII white space, the contract's
// meaning of "trimmed".
func Trim(b []byte) []byte {
	start, end := 0, len(b)
	for start < end && isASCIISpace(b[start]) {
		start++
	}
	for end > start && isASCIISpace(b[end-1]) {
		end--
	}
	return b[start:end]
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Email checks a raw address. It returns the address to publish (trimmed)
// and the de-duplication key (trimmed and lower-cased). The check is the
// contract's ^[^@\s]+@[^@\s]+\.[^@\s]+$ on the trimmed address.
func Email(raw []byte, isNull bool) (addr, key []byte, st Status) {
	if isNull {
		return nil, nil, Missing
	}
	addr = Trim(raw)
	if len(addr) == 0 {
		return nil, nil, Missing
	}
	if !validEmail(addr) {
		return nil, nil, Invalid
	}
	return addr, lower(addr), OK
}

func validEmail(b []byte) bool {
	at := -1
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == '@':
			if at >= 0 {
				return false
			}
			at = i
		case unicode.IsSpace(r):
			return false
		}
		i += size
	}
	if at <= 0 {
		return false
	}
	domain := b[at+1:]
	// [^@\s]+\.[^@\s]+ : some dot with at least one character on each side.
	for i := 1; i < len(domain)-1; i++ {
		if domain[i] == '.' {
			return true
		}
	}
	return false
}

func lower(b []byte) []byte {
	for _, c := range b {
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return bytes.ToLower(b)
		}
	}
	return b
}

// Phone checks a raw phone number and returns it normalized (the published
// form, which is also its de-duplication key): spaces, '-', '(', ')' and '.'
// removed, a leading +82 turned into 0, then ^01[016789][0-9]{7,8}$.
func Phone(raw []byte, isNull bool) (norm []byte, st Status) {
	if isNull {
		return nil, Missing
	}
	t := Trim(raw)
	if len(t) == 0 {
		return nil, Missing
	}
	out := make([]byte, 0, len(t))
	for _, c := range t {
		switch c {
		case ' ', '-', '(', ')', '.':
			continue
		}
		out = append(out, c)
	}
	if bytes.HasPrefix(out, []byte("+82")) {
		out = append(out[:0:0], append([]byte{'0'}, out[3:]...)...)
	}
	if !validPhone(out) {
		return nil, Invalid
	}
	return out, OK
}

func validPhone(b []byte) bool {
	if len(b) != 10 && len(b) != 11 {
		return false
	}
	if b[0] != '0' || b[1] != '1' {
		return false
	}
	switch b[2] {
	case '0', '1', '6', '7', '8', '9':
	default:
		return false
	}
	for _, c := range b[3:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Token checks a device token; the trimmed token is both the published form
// and the de-duplication key. Platform has already been matched to the
// channel by the audience query, so a token is never invalid, only missing.
func Token(raw []byte, isNull bool) (token []byte, st Status) {
	if isNull {
		return nil, Missing
	}
	t := Trim(raw)
	if len(t) == 0 {
		return nil, Missing
	}
	return t, OK
}
