package core

import (
	"fmt"
	"strings"
)

// KeyHeader is the request header that carries the idempotency key.
const KeyHeader = "Idempotency-Key"

// ParseKey parses the values of the Idempotency-Key header fields of one
// request and returns the key. The canonical form is a Structured Field
// String ("quoted", with \" and \\ escapes); unless strict is set, a bare
// token (RFC 9110 tchar plus ':' and '/', a leading digit allowed) is
// accepted as well, and "abc" and abc are the same key. A key is 1 to
// maxLen printable ASCII characters. Parameters are refused, and so is more
// than one field. Errors wrap [ErrMissingKey] (no field) or [ErrInvalidKey];
// their text never contains the key.
func ParseKey(values []string, strict bool, maxLen int) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrMissingKey
	case 1:
	default:
		return "", invalidKey("more than one Idempotency-Key field")
	}
	v := trimOWS(values[0])
	if v == "" {
		return "", invalidKey("empty key")
	}
	var key string
	if v[0] == '"' {
		k, rest, err := parseSFString(v)
		if err != nil {
			return "", err
		}
		if rest != "" {
			if rest[0] == ';' {
				return "", invalidKey("parameters are not allowed")
			}
			return "", invalidKey("unexpected characters after the quoted string")
		}
		key = k
	} else {
		if strict {
			return "", invalidKey("strict mode requires a quoted string")
		}
		for i := 0; i < len(v); i++ {
			if !isKeyTokenChar(v[i]) {
				switch {
				case v[i] == ';':
					return "", invalidKey("parameters are not allowed")
				case v[i] == ',':
					return "", invalidKey("more than one key in the field")
				case v[i] >= 0x80:
					return "", invalidKey("non-ASCII character")
				case v[i] < 0x20 || v[i] == 0x7f:
					return "", invalidKey("control character")
				}
				// Name the position and the class, never the character:
				// a detail must not echo any part of the key.
				return "", invalidKey(fmt.Sprintf("a delimiter or space at position %d is not allowed in a bare key: quote the key", i+1))
			}
		}
		key = v
	}
	if key == "" {
		return "", invalidKey("empty key")
	}
	if len(key) > maxLen {
		return "", invalidKey(fmt.Sprintf("key longer than %d characters", maxLen))
	}
	return key, nil
}

// FormatKey returns key in the canonical Structured Field String form,
// quoted and escaped, as a client should send it.
func FormatKey(key string) string {
	var b strings.Builder
	b.Grow(len(key) + 2)
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		if key[i] == '"' || key[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
	b.WriteByte('"')
	return b.String()
}

func parseSFString(v string) (key, rest string, err error) {
	// v[0] == '"'. Most keys hold no escape: skip their plain bytes eight
	// at a time, then one at a time, and return the key in place when a
	// quote ends them. Anything else resumes below at the first byte that
	// is not plain.
	i := 1
	for i+8 <= len(v) && plain8(load64(v, i)) {
		i += 8
	}
	for i < len(v) && sfPlain[v[i]] {
		i++
	}
	if i < len(v) && v[i] == '"' {
		return v[1:i], v[i+1:], nil
	}
	var b []byte
	start := 1
	for ; i < len(v); i++ {
		c := v[i]
		if sfPlain[c] {
			continue
		}
		switch {
		case c == '\\':
			if i+1 >= len(v) {
				return "", "", invalidKey("unterminated escape")
			}
			n := v[i+1]
			if n != '"' && n != '\\' {
				return "", "", invalidKey("invalid escape in quoted key")
			}
			if b == nil {
				b = make([]byte, 0, len(v))
			}
			b = append(b, v[start:i]...)
			b = append(b, n)
			i++
			start = i + 1
		case c == '"':
			if b == nil {
				return v[1:i], v[i+1:], nil
			}
			b = append(b, v[start:i]...)
			return string(b), v[i+1:], nil
		case c >= 0x80:
			return "", "", invalidKey("non-ASCII character")
		case c < 0x20 || c == 0x7f:
			return "", "", invalidKey("control character")
		}
	}
	return "", "", invalidKey("unterminated quoted string")
}

// sfPlain marks the bytes a quoted key holds as they are: printable ASCII
// but the quote and the backslash. One load per byte of the usual key; the
// others take parseSFString's slower checks.
var sfPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// load64 returns the 8 bytes of s from i as a little-endian uint64 (the
// compiler makes it one load).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	lanes    = 0x0101010101010101 // one in every byte
	laneHigh = 0x8080808080808080 // the top bit of every byte
)

// plain8 reports whether all 8 bytes of x are sfPlain: each test sets a
// byte's top bit where some byte is below 0x20, above 0x7e, a quote or a
// backslash. The tests can flag a plain byte next to one that is not,
// never miss one that is not: a false "no" only sends the caller to the
// byte-by-byte checks.
func plain8(x uint64) bool {
	below := (x - lanes*0x20) & ^x & laneHigh
	above := ((x + lanes) | x) & laneHigh // 0x7f + 1 and anything ≥ 0x80
	q := x ^ (lanes * '"')
	q = (q - lanes) & ^q & laneHigh
	bs := x ^ (lanes * '\\')
	bs = (bs - lanes) & ^bs & laneHigh
	return below|above|q|bs == 0
}

func invalidKey(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidKey, reason) }

// isKeyTokenChar reports RFC 9110 tchar, plus ':' and '/'.
func isKeyTokenChar(c byte) bool { return keyTokenChars[c] }

// keyTokenChars is isKeyTokenChar as a table: one load per character of a
// bare key instead of a chain of comparisons.
var keyTokenChars = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~:/") {
		t[c] = true
	}
	return t
}()
