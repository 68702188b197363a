// Package codec is the record codec for store authors: it turns a
// [core.Response] into one self-describing byte slice and back, so that a
// [core.Store] or [core.Cache] on a key-value or blob backend keeps a
// completed record as bytes. Applications never need it: they configure
// an Engine with a store, and the store calls this package. memstore keeps
// responses as values and needs none of it; redisstore and pgxstore use
// it, and the conformance module's example map store shows the smallest
// use.
//
// # Record format
//
// [EncodeResponse] and [AppendResponse] write, in order:
//
//	version  1 byte, 1
//	flags    1 byte: bit 0 set when the body was omitted (Response.BodyOmitted); the other bits are 0
//	status   2 bytes, big-endian: 200–599
//	header   uvarint field count, then per field in sorted name order:
//	         uvarint name length, name, uvarint value count, and per value
//	         uvarint length, value (the AppendHeader encoding)
//	body     every remaining byte, raw (empty when the body was omitted)
//
// Nothing is base64-encoded or otherwise inflated, and equal responses
// encode to equal bytes. Response.Extra is never encoded: it is sent, not
// stored.
//
// The decoders ([DecodeResponse], [DecodeResponseInPlace], [DecodeHeader])
// never panic, whatever the input, and refuse with an error wrapping
// [core.ErrCorruptRecord] both malformed bytes and bytes that parse but
// cannot be a stored final response: an unknown version or flag, a status
// outside 200–599, a field name that is not an RFC 9110 token, a value
// holding CR, LF or NUL, names out of order or repeated, a body stored
// with the omitted flag. A store wraps that error (with
// [core.ErrStoreUnavailable]) when a record it reads back does not decode:
// the Engine then discards the record through the store's
// [core.Discarder], when it has one, and reports [core.ErrCorruptRecord] to the
// application's observer. The sentinel lives in core, not here, because
// applications see it; there is one sentinel.
//
// [HeaderSets] is the table that lets [DecodeResponseInPlace] decode a
// repeated header once; adapters that capture responses (idemfiber) share
// their captured headers through one of their own.
//
// # Stability
//
// The format is version 1, and records are data that outlive a release:
// a record written by any release decodes with every later one. A change
// of format would take a new version byte and two releases, announced in
// the changelog: one that reads the new version, then one that writes it.
// A release that does not know a version refuses its records as corrupt,
// and an Engine whose store is a [core.Discarder] then deletes the record
// and runs the handler again, so no process may meet a record newer than
// it can read. The Go API is versioned with the core module and
// released with it: while that is v0, a minor release may change it, and
// the changelog says how.
package codec
