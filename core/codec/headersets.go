package codec

import (
	"hash/maphash"
	"net/http"
	"sync/atomic"
)

// HeaderSets shares read-only header maps between responses whose headers
// repeat, such as the same Content-Type on every response of a JSON
// endpoint. A caller identifies a header by bytes of its own choosing (an
// encoding of every field and value, in order), asks [HeaderSets.Lookup]
// for the map kept under them, and only builds one when there is none.
//
// Building the map, its first group and its value slices was most of
// decoding a stored response on a Redis replay, and a quarter of idemfiber's
// own CPU on a new key. A header is kept the second time in a row that the
// hash of its bytes is seen at its slot, so headers that never repeat (a
// Location per resource) cost one hash and allocate nothing more. Each of
// the 64 slots holds the header kept last.
//
// Only a header that nobody modifies may be kept: a decoded replay or a
// captured response, which the [core.Store] contract makes read-only. The
// zero value is ready for use, and a HeaderSets is safe for concurrent use.
// [DecodeResponseInPlace] shares its headers through one; an adapter that
// captures responses may keep one of its own (idemfiber does).
type HeaderSets struct {
	slots [64]headerSlot
}

type headerSlot struct {
	seen atomic.Uint64 // hash of the bytes looked up last
	set  atomic.Pointer[headerSet]
}

type headerSet struct {
	key string // a copy: a kept header holds on to no caller's buffer
	h   http.Header
}

var headerSetSeed = maphash.MakeSeed()

func (s *HeaderSets) slot(key []byte) (*headerSlot, uint64) {
	sum := maphash.Bytes(headerSetSeed, key)
	return &s.slots[sum%uint64(len(s.slots))], sum
}

// Lookup returns the header kept under key, or nil. When it returns nil,
// keep reports whether key was also the last one looked up at its slot: a
// header built for it now is worth passing to [HeaderSets.Keep].
func (s *HeaderSets) Lookup(key []byte) (h http.Header, keep bool) {
	slot, sum := s.slot(key)
	if set := slot.set.Load(); set != nil && set.key == string(key) {
		return set.h, false
	}
	return nil, slot.seen.Swap(sum) == sum
}

// Keep keeps h under key in key's slot, in place of what the slot held.
// Nobody may modify h afterwards.
func (s *HeaderSets) Keep(key []byte, h http.Header) {
	slot, _ := s.slot(key)
	slot.set.Store(&headerSet{key: string(key), h: h})
}
