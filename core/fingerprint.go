package core

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// DefaultFingerprint is SHA-256 over the method, the path, the canonical
// query (parameters sorted by name, the order of repeated values kept) and
// the raw body bytes, each length-prefixed so no two requests collide by
// concatenation. The body is hashed as received: no JSON normalisation.
func DefaultFingerprint(x Exchange, body []byte) Fingerprint {
	hs := hashers.Get().(*hashState)
	defer hashers.Put(hs)
	hs.h.Reset()
	b := hs.buf[:0]
	b = appendField(b, x.Method())
	b = appendField(b, x.Path())
	b = appendField(b, CanonicalQuery(x.RawQuery()))
	b = binary.AppendUvarint(b, uint64(len(body)))
	hs.buf = b
	hs.h.Write(b)
	hs.h.Write(body)
	hs.h.Sum(hs.sum[:0]) // into the pooled state: a local would escape through hash.Hash
	return Fingerprint(hs.sum)
}

// hashState is a pooled SHA-256 hasher with a scratch buffer, so hashing a
// request allocates nothing.
type hashState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

var hashers = sync.Pool{New: func() any { return &hashState{h: sha256.New(), buf: make([]byte, 0, 512)} }}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// CanonicalQuery returns raw with its parameters sorted by name (stable, so
// repeated values keep their order) and each name and value in one
// canonical escaping, so that "b=2&a=1" and "a=1&b=%32" are equal. A query
// that does not parse is returned unchanged.
func CanonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	if canonicalPair(raw) {
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

// canonicalPair reports whether raw is one name=value pair already in
// canonical form: exactly one '=' and otherwise only the bytes
// url.QueryEscape leaves as they are. Any other query takes the slow path,
// so that "a=/x" and "a=%2Fx", or "= " and "&= ", are one query.
func canonicalPair(raw string) bool {
	eq := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '=':
			eq++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return eq == 1
}

// storageKey derives the key a store sees from (scope, key): hex SHA-256, or
// HMAC-SHA-256 under secret. Stores never see the raw key. Without a
// secret the input is assembled on the stack and hashed with Sum256, so
// only the returned string is allocated.
func storageKey(secret []byte, scope, key string) string {
	var sum [sha256.Size]byte
	if secret != nil {
		sum = keyHMAC(secret, scope, key)
	} else {
		var buf [256]byte
		b := appendField(buf[:0], scope)
		b = append(b, key...)
		sum = sha256.Sum256(b)
	}
	var out [2 * sha256.Size]byte
	for i := 0; i < sha256.Size; i += 4 {
		binary.BigEndian.PutUint64(out[2*i:], hex8(binary.BigEndian.Uint32(sum[i:])))
	}
	return string(out[:])
}

// hex8 returns the lower-case hex digits of v, most significant first, as
// the bytes of a big-endian uint64. It works on all eight nibbles at once
// (SWAR), where a table lookup per nibble was a visible share of an
// in-memory replay: this runs on every guarded request (docs/performance.md).
func hex8(v uint32) uint64 {
	// Spread the nibbles one to a byte: 0xABCD1234 -> 0x0A0B0C0D01020304.
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	// Bytes holding 10-15 get 'a'-10, the others '0'. Adding 6 carries a
	// byte of 10-15 into bit 4 and no byte out of itself.
	letters := ((x + 0x0606060606060606) >> 4) & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

func keyHMAC(secret []byte, scope, key string) (sum [sha256.Size]byte) {
	m := hmac.New(sha256.New, secret)
	m.Write(appendField(nil, scope))
	m.Write([]byte(key))
	m.Sum(sum[:0])
	return sum
}

// scopeDigestLabel starts what scopeDigest hashes, so a scope's digest is
// never the digest of a storage key's input.
const scopeDigestLabel = "idemkit scope\x00"

// scopeDigest derives a scope's identity for stores: the first 16 bytes of
// SHA-256, or of HMAC-SHA-256 under secret, over the labelled scope, as 32
// hex characters. Like storageKey, it reveals nothing of the scope, and
// without a secret only the returned string is allocated.
func scopeDigest(secret []byte, scope string) string {
	var sum [sha256.Size]byte
	if secret != nil {
		sum = scopeHMAC(secret, scope)
	} else {
		var buf [256]byte
		b := append(buf[:0], scopeDigestLabel...)
		b = appendField(b, scope)
		sum = sha256.Sum256(b)
	}
	var out [32]byte
	for i := 0; i < 16; i += 4 {
		binary.BigEndian.PutUint64(out[2*i:], hex8(binary.BigEndian.Uint32(sum[i:])))
	}
	return string(out[:])
}

// scopeHMAC is scopeDigest's HMAC, in a function of its own (as keyHMAC)
// so that scopeDigest's sum stays on the stack without a secret.
func scopeHMAC(secret []byte, scope string) (sum [sha256.Size]byte) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(scopeDigestLabel))
	m.Write(appendField(nil, scope))
	m.Sum(sum[:0])
	return sum
}
