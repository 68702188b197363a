// Package wire holds what the Engine and the record codec
// (package core/codec) both need to judge and encode a stored response:
// the HTTP field and status rules, and the canonical header encoding that
// records store and the record MAC covers. It knows nothing of
// core.Response, so that core can use it although the codec imports core.
package wire

import (
	"encoding/binary"
	"net/http"
	"slices"
)

// AppendHeader sorts names, fields of h, and appends those fields in that
// order to dst: the field count, then for each field its name, its value
// count and every value, each string prefixed with its length (uvarints).
// Equal headers encode to equal bytes.
func AppendHeader(dst []byte, h http.Header, names []string) []byte {
	slices.Sort(names)
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, name := range names {
		vals := h[name]
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
		dst = binary.AppendUvarint(dst, uint64(len(vals)))
		for _, v := range vals {
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	return dst
}

// FinalStatus reports whether status can be a stored final response: 1xx
// answers are interim, and HTTP has no status above 599.
func FinalStatus(status int) bool { return status >= 200 && status <= 599 }

// ValidFieldName reports whether name is an RFC 9110 field name: a
// non-empty token.
func ValidFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !TokenByte[name[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether v may be sent as a field value: RFC 9110
// §5.5 calls values holding CR, LF or NUL invalid and dangerous (a CR or
// LF would start another field or the body).
func ValidFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= '\r' && (c == '\r' || c == '\n' || c == 0) {
			return false
		}
	}
	return true
}

// TokenByte marks the RFC 9110 tchar bytes.
var TokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
