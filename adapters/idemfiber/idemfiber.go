package idemfiber

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/valyala/fasthttp"
)

// Middleware returns a fiber handler that guards the rest of the chain
// through engine. Use it with app.Use, on a group, or before the handler of
// a single route. For guarded requests a handler's error is rendered (and
// stored, under the completion policy) inside the middleware, which then
// returns nil; see the package documentation.
func Middleware(engine *core.Engine) fiber.Handler {
	if engine == nil {
		panic("idemfiber: Middleware: nil Engine")
	}
	return func(c *fiber.Ctx) error {
		// Exchanges are pooled: the engine never keeps one after Serve.
		x := exchanges.Get().(*exchange)
		*x = exchange{c: c, method: methodString(c.Method()), path: string(c.Request().URI().PathOriginal())}
		engine.Serve(x)
		err := x.err
		*x = exchange{}
		exchanges.Put(x)
		return err
	}
}

// methodString returns a string for the method that does not alias the
// request buffer.
func methodString(m string) string {
	switch m {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodOptions:
		return fiber.MethodOptions
	}
	return strings.Clone(m)
}

// exchange presents one fiber request to the engine.
//
// Method and Path are copied once, up front: fiber's strings point into
// buffers fasthttp reuses for the next request, and the engine hands them to
// the observer in every event of the request (the lease renewer keeps them
// for its own events), which an observer may keep past the request.
type exchange struct {
	c      *fiber.Ctx
	method string
	path   string
	err    error     // the handler's error on an unguarded request
	one    [1]string // backs Header's result for the usual single field
	// inPlace is the response Capture returned while leaving the handler's
	// output in fiber's response: Send of it has nothing left to write.
	inPlace *core.Response
	// streamed: Body handed the engine fasthttp's body stream
	// (StreamRequestBody), which the engine consumed; Capture gives the
	// handler the bytes it read.
	streamed bool
	// raw: Body handed the engine a decoder of fasthttp's body stream (a
	// body both streamed and compressed); Capture gives the handler the
	// compressed bytes it consumed, which c.Body() decodes again.
	raw *rawStream
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

var _ core.BodyBytes = (*exchange)(nil)

// Context returns c.UserContext(); see the package documentation.
func (x *exchange) Context() context.Context { return x.c.UserContext() }
func (x *exchange) Method() string           { return x.method }
func (x *exchange) Path() string             { return x.path }
func (x *exchange) RawQuery() string         { return string(x.c.Request().URI().QueryString()) }
func (x *exchange) Native() any              { return x.c }

// Header returns copies of every value of the request header field name,
// one per field line.
func (x *exchange) Header(name string) []string {
	h := &x.c.Request().Header
	var out []string
	if x.c.App().Config().DisableHeaderNormalizing {
		h.VisitAll(func(k, v []byte) {
			if bytes.EqualFold(k, []byte(name)) {
				out = append(out, string(v))
			}
		})
		return out
	}
	vals := h.PeekAll(name)
	if len(vals) == 0 {
		return nil
	}
	if len(vals) == 1 {
		x.one[0] = string(vals[0])
		return x.one[:1:1]
	}
	out = make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

// BodyBytes returns c.Body(), the request body as the handler will see it,
// valid until the handler returns; or nil when fiber would decompress it,
// or when fasthttp streams it (StreamRequestBody): see Body.
func (x *exchange) BodyBytes() []byte {
	if _, ok, _ := x.encoded(); ok {
		return nil
	}
	if x.c.Request().IsBodyStream() {
		return nil
	}
	return x.c.Body()
}

// Body returns the body as the handler will see it. A compressed body is
// decoded as it is read, so the engine, which reads at most its body limit
// plus one byte, stops decompression there: c.Body() would inflate a gzip
// bomb whole before any size check.
//
// A streamed body (fiber's StreamRequestBody: a chunked body, or one longer
// than what fasthttp reads before calling the handler) is read from
// fasthttp's stream, so that a body cut short or a malformed chunk is a
// read error, which the engine answers with 400 invalid-body, and a body
// over the limit is refused one byte past it. c.Body() would read the
// whole stream, whatever its size, and hand the handler the error's text,
// or the bytes received so far, as the body. A streamed body that is also
// compressed is decoded from the stream, its compressed bytes kept (and
// bounded: see rawStream) for the handler.
func (x *exchange) Body() (io.Reader, int64) {
	if encodings, ok, err := x.encoded(); ok {
		d := &decoder{encodings: encodings}
		if err != nil {
			// Refused before a decoder is made for each coding.
			d.r = errReader{err}
			return d, -1
		}
		if req := x.c.Request(); req.IsBodyStream() {
			x.raw = &rawStream{r: req.BodyStream(), d: d}
			d.src, d.raw = x.raw, x.raw
		} else {
			d.src = bytes.NewReader(req.Body())
		}
		return d, -1
	}
	if req := x.c.Request(); req.IsBodyStream() {
		x.streamed = true
		n := int64(req.Header.ContentLength())
		if n < 0 {
			n = -1
		}
		return req.BodyStream(), n
	}
	b := x.c.Body()
	if len(b) == 0 {
		return nil, 0
	}
	return bytes.NewReader(b), int64(len(b))
}

// encoded returns the request's content codings as c.Body() reads them
// (the last Content-Encoding field, split on commas, leading spaces
// trimmed) and whether c.Body() would decompress the body: it does when
// the first coding is one it decodes. err, wrapping errTooManyCodings,
// reports a list over maxContentCodings or maxContentEncodingLen.
func (x *exchange) encoded() (encodings []string, ok bool, err error) {
	var value []byte
	x.c.Request().Header.VisitAll(func(k, v []byte) {
		if string(k) == fiber.HeaderContentEncoding {
			value = v
		}
	})
	if len(value) == 0 {
		return nil, false, nil
	}
	encodings = strings.Split(string(value), ",")
	for i, e := range encodings {
		encodings[i] = strings.TrimLeft(e, " ")
	}
	if len(encodings) > maxContentCodings || len(value) > maxContentEncodingLen {
		err = fmt.Errorf("idemfiber: Content-Encoding of %d codings, %d bytes: at most %d codings and %d bytes are decoded: %w",
			len(encodings), len(value), maxContentCodings, maxContentEncodingLen, errTooManyCodings)
	}
	return encodings, decodes(encodings[0]), err
}

// maxContentCodings and maxContentEncodingLen bound the content codings
// of a request body that is decoded. Clients send one coding; each costs a
// decoder (a gzip or brotli reader holds tens of KiB), so 600 nested gzips
// cost tens of MiB for one request; and past 255 bytes of Content-Encoding
// fasthttp's list splitting, which c.Body() uses, stops decoding early, so
// the handler would see another body than the one fingerprinted. Longer
// lists are a read error: 400 invalid-body.
const (
	maxContentCodings     = 4
	maxContentEncodingLen = 255
)

// errTooManyCodings is the read error of a body whose Content-Encoding is
// over those bounds.
var errTooManyCodings = errors.New("too many content codings")

// decodes reports whether c.Body() decodes the content coding e.
func decodes(e string) bool {
	switch e {
	case fiber.StrGzip, fiber.StrDeflate, fiber.StrBr, fiber.StrBrotli:
		return true
	}
	return false
}

// decoder decodes a request body as c.Body() does, streaming: the codings
// in the order listed, up to the first one c.Body() does not decode.
// fasthttp's "deflate" is the zlib format. A malformed stream is a read
// error, which the engine answers with 400 invalid-body; c.Body() would
// hand the handler the error's text as the body. So is an empty input to
// any coding (every coding encodes even an empty body as some bytes), which
// some decoders take for the end of an empty body: c.Body() hands the
// handler "EOF" or "brotli: truncated input" for it.
type decoder struct {
	src       io.Reader  // the compressed body
	raw       *rawStream // src when it is fasthttp's stream, else nil
	encodings []string
	r         io.Reader
	closers   []io.Closer
	inputs    []*stageInput
	out       int64 // decoded bytes returned
}

func (d *decoder) Read(p []byte) (int, error) {
	if d.r == nil {
		r := d.src
		for _, e := range d.encodings {
			if !decodes(e) {
				break
			}
			in := &stageInput{r: r}
			d.inputs = append(d.inputs, in)
			next, err := decodeStage(e, in)
			if err != nil {
				err = d.fail(err)
				d.r = errReader{err}
				return 0, err
			}
			r = next
			if c, ok := next.(io.Closer); ok {
				d.closers = append(d.closers, c)
			}
		}
		d.r = r
	}
	n, err := d.r.Read(p)
	d.out += int64(n)
	if err == io.EOF && d.raw != nil {
		// Decoded to the end: the rest of the stream, if any (bytes after
		// a zlib stream, which c.Body() ignores), is part of the body the
		// handler gets, under the same bound.
		err = d.raw.drain()
	}
	if err != nil {
		err = d.fail(err)
		d.r = errReader{err}
	}
	return n, err
}

// fail closes the decoders and returns the error to report: the stream's
// own refusal, whatever a decoder made of it; an unexpected EOF when a
// coding met the end of an empty input; or err.
func (d *decoder) fail(err error) error {
	d.close()
	if d.raw != nil && d.raw.err != nil {
		return d.raw.err
	}
	if err == io.EOF {
		for _, in := range d.inputs {
			if in.empty() {
				return fmt.Errorf("idemfiber: empty input to a content coding: %w", io.ErrUnexpectedEOF)
			}
		}
	}
	return err
}

// stageInput is the input of one coding: it notes whether the input ended
// without a byte.
type stageInput struct {
	r    io.Reader
	read bool // a byte was read
	eof  bool // the input ended
}

func (s *stageInput) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read = s.read || n > 0
	s.eof = s.eof || err == io.EOF
	return n, err
}

func (s *stageInput) empty() bool { return s.eof && !s.read }

func (d *decoder) close() {
	for _, c := range d.closers {
		c.Close()
	}
	d.closers = nil
}

func decodeStage(encoding string, r io.Reader) (io.Reader, error) {
	switch encoding {
	case fiber.StrGzip:
		return gzip.NewReader(r)
	case fiber.StrDeflate:
		return zlib.NewReader(r)
	default: // br, brotli
		return brotli.NewReader(r), nil
	}
}

// rawSlack and rawRatio bound a streamed compressed body: the compressed
// bytes read may run at most rawSlack plus 1/rawRatio ahead of the decoded
// bytes returned. The decoders read ahead of their output by a buffer or a
// window each (4 to 32 KiB), and a compressor's output is never much larger
// than its input; only empty blocks or members, which decode to nothing,
// exceed that, and they are exactly what must not be read without end.
// The engine reads at most its limit plus one decoded byte, so at most the
// limit plus an eighth plus 256 KiB of compressed bytes are held.
const (
	rawSlack = 256 << 10
	rawRatio = 8
)

// rawStream reads fasthttp's body stream for a decoder and keeps the
// compressed bytes read, for Capture to hand the handler: c.Body() then
// decodes them as it would have decoded the stream read whole.
type rawStream struct {
	r   io.Reader
	d   *decoder
	buf []byte
	err error // the refusal of a body past the bound
}

func (s *rawStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	bound := s.d.out + s.d.out/rawRatio + rawSlack
	// One byte past the bound tells a body too large.
	if room := bound - int64(len(s.buf)) + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.buf = append(s.buf, p[:n]...)
	if int64(len(s.buf)) > bound {
		s.err = fmt.Errorf("idemfiber: compressed body more than %d bytes ahead of its %d decoded bytes: %w",
			bound-s.d.out, s.d.out, &http.MaxBytesError{Limit: bound})
		return n, s.err
	}
	return n, err
}

// drain reads the rest of the stream, keeping it under the bound; it
// returns io.EOF at its end.
func (s *rawStream) drain() error {
	var b [512]byte
	for {
		if _, err := s.Read(b[:]); err != nil {
			return err
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func (x *exchange) Next() { x.err = x.c.Next() }

// Capture runs the chain on a cleared response and copies what it wrote.
// When no outer middleware had written anything, the handler's output is
// left in place for Send. The request body is left as it is: body is
// c.Body() (see BodyBytes), which the handler reads again; a streamed body,
// which the engine has consumed, is replaced by the bytes it read (the
// compressed bytes, when it was also compressed).
func (x *exchange) Capture(ctx context.Context, body []byte) (*core.Response, bool, error) {
	c := x.c
	switch {
	case x.streamed:
		c.Request().SetBodyRaw(body)
	case x.raw != nil:
		c.Request().SetBodyRaw(x.raw.buf)
	}
	// The handler sees ctx, which carries its claim, as c.UserContext().
	orig := c.UserContext()
	c.SetUserContext(ctx)
	defer c.SetUserContext(orig)
	fctx := c.Context()
	resp := &fctx.Response
	hijacked := fctx.Hijacked()

	if pristine(resp) {
		// Outer middleware wrote nothing: there is nothing to set aside. On
		// success the handler's output stays where it is, as Send would
		// write it (see inPlace); otherwise (a panic, a hijack) it is
		// cleared, restoring the state the recover middleware writes over.
		// This saves two response copies per request, and a third when the
		// captured response is sent.
		kept := false
		defer func() {
			if !kept {
				clearResponse(resp)
				resp.Header.SetStatusMessage(nil)
			}
		}()
		if err := x.run(fctx, hijacked); err != nil {
			return nil, true, err
		}
		wrote := !pristine(resp)
		out := copyResponse(resp)
		if ct := out.Header[fiber.HeaderContentType]; len(ct) > 0 {
			// The copy holds the Content-Type fasthttp reports, its default
			// included, and a replay sets it explicitly; so does the first
			// response, or fasthttp would drop a default one on an empty
			// body and the replay would differ.
			resp.Header.SetContentType(ct[0])
		}
		x.inPlace, kept = out, true
		return out, wrote, nil
	} else {
		// Set aside what outer middleware wrote, so that only the handler's
		// output is captured; put it back afterwards, also on panic, for
		// Send (or the recover middleware) to write over.
		outer := fasthttp.AcquireResponse()
		resp.CopyTo(outer)
		clearResponse(resp)
		defer func() {
			outer.CopyTo(resp)
			fasthttp.ReleaseResponse(outer)
		}()
	}

	if err := x.run(fctx, hijacked); err != nil {
		return nil, true, err
	}
	return copyResponse(resp), !pristine(resp), nil
}

// run runs the rest of the chain for Capture. A handler's error is rendered
// now, into the capture, as fiber would after the chain, so that it is
// stored or released like any response.
func (x *exchange) run(fctx *fasthttp.RequestCtx, hijacked bool) error {
	c := x.c
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	if !hijacked && fctx.Hijacked() {
		return fmt.Errorf("idemfiber: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return nil
}

// pristine reports whether resp holds nothing a middleware wrote: status
// 200 without a message, no body, and no header field but fasthttp's
// default Content-Type — exactly the state clearResponse leaves.
func pristine(resp *fasthttp.Response) bool {
	if resp.StatusCode() != fiber.StatusOK || len(resp.Header.StatusMessage()) != 0 ||
		resp.IsBodyStream() || len(resp.Body()) != 0 {
		return false
	}
	n, ok := 0, true
	resp.Header.VisitAll(func(k, v []byte) {
		n++
		if n > 1 || string(k) != fiber.HeaderContentType || string(v) != defaultContentType {
			ok = false
		}
	})
	return ok
}

// defaultContentType is the Content-Type fasthttp reports when none is set.
const defaultContentType = "text/plain; charset=utf-8"

// clearResponse empties status, headers and body, keeping the header
// settings the server applied (normalization, default Content-Type, Date).
// The names are copied into one buffer first: fasthttp's slices do not
// survive a Del.
func clearResponse(resp *fasthttp.Response) {
	resp.ResetBody()
	resp.SetStatusCode(fiber.StatusOK)
	var nameBuf [256]byte
	var endBuf [16]int
	names, ends := nameBuf[:0], endBuf[:0]
	resp.Header.VisitAll(func(k, _ []byte) {
		names = append(names, k...)
		ends = append(ends, len(names))
	})
	start := 0
	for _, end := range ends {
		resp.Header.DelBytes(names[start:end])
		start = end
	}
}

// copyResponse copies status, header values and body out of fasthttp's
// buffers in one pass over the header. Content-Length is left out: fasthttp
// derives it from the body. Every value is copied into one string and the
// slices of every field share one slab, so a response costs a fixed handful
// of allocations whatever its header; common field names are not allocated
// at all.
func copyResponse(resp *fasthttp.Response) *core.Response {
	type field struct {
		name string
		end  int // end of the value in vals
	}
	var valBuf [512]byte
	var fieldBuf [16]field
	vals, fields := valBuf[:0], fieldBuf[:0]
	resp.Header.VisitAll(func(k, v []byte) {
		if string(k) == fiber.HeaderContentLength {
			return
		}
		// Copied during the visit: fasthttp formats some values into a
		// scratch buffer it reuses for the next field.
		vals = append(vals, v...)
		fields = append(fields, field{headerName(k), len(vals)})
	})
	out := &core.Response{Status: resp.StatusCode()}
	if b := resp.Body(); len(b) > 0 {
		out.Body = bytes.Clone(b)
	}
	// The fields as visited, names and values, identify the header set.
	var keyBuf [768]byte
	key := keyBuf[:0]
	n := len(vals) + 2*binary.MaxVarintLen64*len(fields)
	for _, f := range fields {
		n += len(f.name)
	}
	if n <= len(keyBuf) {
		start := 0
		for _, f := range fields {
			key = append(binary.AppendUvarint(key, uint64(len(f.name))), f.name...)
			key = append(binary.AppendUvarint(key, uint64(f.end-start)), vals[start:f.end]...)
			start = f.end
		}
	}
	var keep bool
	if len(key) > 0 {
		var h http.Header
		if h, keep = headerSets.Lookup(key); h != nil {
			out.Header = h
			return out
		}
	}
	out.Header = make(http.Header, len(fields))
	all := string(vals)
	slab := make([]string, len(fields))
	start := 0
	for i, f := range fields {
		slab[i] = all[start:f.end]
		start = f.end
		vals, seen := out.Header[f.name]
		switch {
		case !seen:
			out.Header[f.name] = slab[i : i+1 : i+1]
		case len(vals) > 0 && &vals[len(vals)-1] == &slab[i-1]:
			// The previous value of this field was the last one placed:
			// extend its slice over the slab.
			out.Header[f.name] = slab[i-len(vals) : i+1 : i+1]
		default:
			out.Header[f.name] = append(vals[:len(vals):len(vals)], slab[i])
		}
	}
	if keep {
		headerSets.Keep(key, out.Header)
	}
	return out
}

// headerSets shares the header maps of captured responses whose fields
// and values, in order, repeat (the same Content-Type on every response of
// a JSON API, say). That is safe because a captured response is read-only
// once made: the Store contract forbids the engine and the store to modify
// a response handed to Complete, and Send only reads it, as it already
// does for a replay that memstore shares between requests. A shared header
// saves a map, its first group (about 330 B) and two more allocations per
// new key, and as much less for memstore to keep and the collector to scan.
var headerSets codec.HeaderSets

// commonNames interns the response field names most handlers set, in
// canonical form, so copying them allocates nothing.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		fiber.HeaderContentType, fiber.HeaderLocation, fiber.HeaderDate, fiber.HeaderServer,
		fiber.HeaderCacheControl, fiber.HeaderETag, fiber.HeaderLastModified, fiber.HeaderVary,
		fiber.HeaderContentEncoding, fiber.HeaderContentLanguage, fiber.HeaderSetCookie,
		fiber.HeaderConnection, fiber.HeaderXRequestID, fiber.HeaderRetryAfter, fiber.HeaderLink,
	} {
		m[n] = n
	}
	return m
}()

// headerName returns the canonical name of a field as a string that does
// not alias fasthttp's buffer.
func headerName(k []byte) string {
	if n, ok := commonNames[string(k)]; ok {
		return n
	}
	return textproto.CanonicalMIMEHeaderKey(string(k))
}

// Send writes resp over the current response: status, every value of every
// header, then of resp.Extra (each replacing outer values of the same name)
// and a copy of the body.
func (x *exchange) Send(resp *core.Response) {
	if resp == x.inPlace {
		// Capture left this response in fiber's response as the handler
		// wrote it, and the engine never modifies a captured response.
		return
	}
	r := x.c.Response()
	r.SetStatusCode(resp.Status)
	for name, vals := range resp.Header {
		if name == fiber.HeaderContentLength {
			continue
		}
		if len(vals) == 0 || name == fiber.HeaderSetCookie {
			// fasthttp's Set of Set-Cookie replaces only the cookie of
			// that name: delete every outer cookie first.
			r.Header.Del(name)
			for _, v := range vals {
				r.Header.Add(name, v)
			}
			continue
		}
		r.Header.Set(name, vals[0]) // replaces outer values: one lookup, not Del then Add
		for _, v := range vals[1:] {
			r.Header.Add(name, v)
		}
	}
	for name, vals := range resp.Extra {
		// The engine's replay markers, replacing any stored field of the
		// same name.
		if len(vals) == 0 {
			continue
		}
		r.Header.Set(name, vals[0])
		for _, v := range vals[1:] {
			r.Header.Add(name, v)
		}
	}
	r.SetBody(resp.Body)
}

// HTTPHandler mounts a net/http handler on fiber, as fiber's
// adaptor.HTTPHandler does, with c.UserContext() as the request's context:
// the context that carries a guarded request's claim, so that
// [core.MarkApplied], [core.MarkNotApplied] and [core.HeldClaim] work in
// h with r.Context(). (adaptor.HTTPHandler gives h fasthttp's request
// context instead, which carries none of that.)
func HTTPHandler(h http.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		return adaptor.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(ctx))
		}))(c)
	}
}

// MarkApplied declares that c's request had its side effect, whatever the
// handler answers: see [core.MarkApplied]. It reports false for a request
// the middleware does not guard.
func MarkApplied(c *fiber.Ctx) bool { return core.MarkApplied(c.UserContext()) }

// MarkNotApplied declares that c's request had no effect, whatever the
// handler answers: see [core.MarkNotApplied].
func MarkNotApplied(c *fiber.Ctx) bool { return core.MarkNotApplied(c.UserContext()) }
