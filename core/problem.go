package core

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Problem codes: the stable `code` member of every problem+json response the
// Engine sends, and the fragment of its `type` URI. docs/problems.md
// documents each one.
const (
	CodeMissingKey          = "missing-key"
	CodeInvalidKey          = "invalid-key"
	CodeBodyTooLarge        = "body-too-large"
	CodeInvalidBody         = "invalid-body"
	CodeFingerprintMismatch = "fingerprint-mismatch"
	CodeInFlight            = "in-flight"
	CodeStoreUnavailable    = "store-unavailable"
)

// Problem is an RFC 9457 problem detail as the Engine sends it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

var problemTitles = map[string]struct {
	status int
	title  string
	detail string
}{
	CodeMissingKey:          {http.StatusBadRequest, "Idempotency-Key required", "This request requires an Idempotency-Key header."},
	CodeInvalidKey:          {http.StatusBadRequest, "Invalid Idempotency-Key", "The Idempotency-Key header is invalid."},
	CodeBodyTooLarge:        {http.StatusRequestEntityTooLarge, "Request body too large", "The request body exceeds the limit for idempotent requests."},
	CodeInvalidBody:         {http.StatusBadRequest, "Request body unreadable", "The request body could not be read."},
	CodeFingerprintMismatch: {http.StatusUnprocessableEntity, "Idempotency-Key reused", "This Idempotency-Key was already used with a different request."},
	CodeInFlight:            {http.StatusConflict, "Request in progress", "A request with this Idempotency-Key is still being processed; retry later."},
	CodeStoreUnavailable:    {http.StatusServiceUnavailable, "Idempotency store unavailable", "The request cannot be processed safely right now; retry later."},
}

// problemResponse returns the problem+json response for code. detail, when
// not empty, replaces the default detail; it must never contain the raw key
// or the body. Responses with the default detail and a Retry-After of at
// most maxSharedRetryAfter seconds are built once, in New, and shared by
// every request: adapters only read what they send (see [Exchange.Send]).
func (e *Engine) problemResponse(code, detail string, retryAfter time.Duration) *Response {
	var secs int64
	if retryAfter > 0 {
		secs = retryAfterSecs(retryAfter)
	}
	if detail == "" {
		if p := e.problems[code]; p != nil && secs < int64(len(p.byRetryAfter)) {
			if r := p.byRetryAfter[secs]; r != nil {
				return r
			}
		}
	}
	return e.buildProblem(code, detail, secs)
}

// maxSharedRetryAfter bounds the Retry-After values (in seconds) whose
// problem responses are prebuilt; larger ones are built per request.
const maxSharedRetryAfter = 120

// problemSet holds the prebuilt responses of one code with the default
// detail, indexed by Retry-After seconds (0: no Retry-After).
type problemSet struct {
	byRetryAfter []*Response
}

var (
	valProblemJSON = []string{"application/problem+json"}
	valNoStore     = []string{"no-store"}
)

func (e *Engine) buildProblem(code, detail string, secs int64) *Response {
	pt := problemTitles[code]
	if detail == "" {
		detail = pt.detail
	}
	body, _ := json.Marshal(Problem{Type: e.cfg.problemBase + code, Title: pt.title, Status: pt.status, Detail: detail, Code: code})
	h := make(http.Header, 3)
	h["Content-Type"] = valProblemJSON
	h["Cache-Control"] = valNoStore
	if secs > 0 {
		h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	}
	return &Response{Status: pt.status, Header: h, Body: body}
}

// buildProblems prebuilds every problem response a request can get with
// the default detail: without Retry-After for the 4xx refusals, with every
// Retry-After up to maxSharedRetryAfter for 409, and with the configured
// one for 503.
func (e *Engine) buildProblems() {
	e.problems = make(map[string]*problemSet, len(problemTitles))
	for code := range problemTitles {
		var set problemSet
		switch code {
		case CodeInFlight:
			set.byRetryAfter = make([]*Response, maxSharedRetryAfter+1)
			for s := int64(1); s <= maxSharedRetryAfter; s++ {
				set.byRetryAfter[s] = e.buildProblem(code, "", s)
			}
		case CodeStoreUnavailable:
			s := retryAfterSecs(e.cfg.retryAfter)
			if s <= maxSharedRetryAfter {
				set.byRetryAfter = make([]*Response, s+1)
				set.byRetryAfter[s] = e.buildProblem(code, "", s)
			}
		default:
			set.byRetryAfter = []*Response{e.buildProblem(code, "", 0)}
		}
		e.problems[code] = &set
	}
}

// retryAfterSecs rounds d up to whole seconds, at least 1.
func retryAfterSecs(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}
