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
				return "", invalidKey(fmt.Sprintf("character %q not allowed in a bare key; quote the key", v[i]))
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
	// v[0] == '"'
	var b []byte
	start := 1
	for i := 1; i < len(v); i++ {
		c := v[i]
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
