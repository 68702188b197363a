package core

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/url"
	"sort"
	"strings"
)

// DefaultFingerprint is SHA-256 over the method, the path, the canonical
// query (parameters sorted by name, the order of repeated values kept) and
// the raw body bytes, each length-prefixed so no two requests collide by
// concatenation. The body is hashed as received: no JSON normalisation.
func DefaultFingerprint(x Exchange, body []byte) Fingerprint {
	h := sha256.New()
	writeField(h, x.Method())
	writeField(h, x.Path())
	writeField(h, CanonicalQuery(x.RawQuery()))
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(body)))])
	h.Write(body)
	var fp Fingerprint
	h.Sum(fp[:0])
	return fp
}

func writeField(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}

// CanonicalQuery returns raw with its parameters sorted by name (stable, so
// repeated values keep their order) and each name and value in one
// canonical escaping, so that "b=2&a=1" and "a=1&b=%32" are equal. A query
// that does not parse is returned unchanged.
func CanonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.ContainsAny(raw, "&;%+") && strings.Contains(raw, "=") {
		return raw
	}
	type pair struct{ k, v string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		uk, err1 := url.QueryUnescape(k)
		uv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return raw
		}
		pairs = append(pairs, pair{uk, uv})
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.v))
	}
	return b.String()
}

// storageKey derives the key a store sees from (scope, key): hex SHA-256, or
// HMAC-SHA-256 under secret. Stores never see the raw key.
func storageKey(secret []byte, scope, key string) string {
	var h hash.Hash
	if secret != nil {
		h = hmac.New(sha256.New, secret)
	} else {
		h = sha256.New()
	}
	writeField(h, scope)
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
