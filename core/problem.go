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
	CodeMisconfigured       = "misconfigured"
)

// Problem is an RFC 9457 problem detail as the Engine sends it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// problemKind indexes problemDefs and an Engine's prebuilt responses, so
// that a refusal finds its response without hashing the code.
type problemKind uint8

const (
	problemMissingKey problemKind = iota
	problemInvalidKey
	problemBodyTooLarge
	problemInvalidBody
	problemMismatch
	problemInFlight
	problemStoreUnavailable
	problemStoreDeferred // the handler ran; its response is not stored yet
	problemMisconfigured
	numProblemKinds
)

var problemDefs = [numProblemKinds]struct {
	code   string
	status int
	title  string
	detail string
}{
	problemMissingKey:       {CodeMissingKey, http.StatusBadRequest, "Idempotency-Key required", "This request requires an Idempotency-Key header."},
	problemInvalidKey:       {CodeInvalidKey, http.StatusBadRequest, "Invalid Idempotency-Key", "The Idempotency-Key header is invalid."},
	problemBodyTooLarge:     {CodeBodyTooLarge, http.StatusRequestEntityTooLarge, "Request body too large", "The request body exceeds the limit for idempotent requests."},
	problemInvalidBody:      {CodeInvalidBody, http.StatusBadRequest, "Request body unreadable", "The request body could not be read."},
	problemMismatch:         {CodeFingerprintMismatch, http.StatusUnprocessableEntity, "Idempotency-Key reused", "This Idempotency-Key was already used with a different request."},
	problemInFlight:         {CodeInFlight, http.StatusConflict, "Request in progress", "A request with this Idempotency-Key is still being processed; retry later."},
	problemStoreUnavailable: {CodeStoreUnavailable, http.StatusServiceUnavailable, "Idempotency store unavailable", "The request cannot be processed safely right now; retry later."},
	problemMisconfigured:    {CodeMisconfigured, http.StatusInternalServerError, "Idempotency middleware misconfigured", "The idempotency middleware is misconfigured; the request was not processed."},
	problemStoreDeferred:    {CodeStoreUnavailable, http.StatusServiceUnavailable, "Idempotency store unavailable", "The request was processed, but its response could not be stored yet; retry with the same Idempotency-Key to receive it."},
}

// problemResponse returns the problem+json response of kind. detail, when
// not empty, replaces the default detail; it must never contain the raw key
// or the body. Responses with the default detail and a Retry-After of at
// most maxSharedRetryAfter seconds are built once, in New, and shared by
// every request: adapters only read what they send (see [Exchange.Send]).
func (e *Engine) problemResponse(kind problemKind, detail string, retryAfter time.Duration) *Response {
	var secs int64
	if retryAfter > 0 {
		secs = retryAfterSecs(retryAfter)
	}
	if detail == "" {
		if set := e.problems[kind]; secs < int64(len(set)) {
			if r := set[secs]; r != nil {
				return r
			}
		}
	}
	return e.buildProblem(kind, detail, secs)
}

// maxSharedRetryAfter bounds the Retry-After values (in seconds) whose
// problem responses are prebuilt; larger ones are built per request.
const maxSharedRetryAfter = 120

var (
	valProblemJSON = []string{"application/problem+json"}
	valNoStore     = []string{"no-store"}
)

func (e *Engine) buildProblem(kind problemKind, detail string, secs int64) *Response {
	pd := problemDefs[kind]
	if detail == "" {
		detail = pd.detail
	}
	body, _ := json.Marshal(Problem{Type: e.cfg.problemBase + pd.code, Title: pd.title, Status: pd.status, Detail: detail, Code: pd.code})
	h := make(http.Header, 3)
	h["Content-Type"] = valProblemJSON
	h["Cache-Control"] = valNoStore
	if secs > 0 {
		h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	}
	return &Response{Status: pd.status, Header: h, Body: body}
}

// buildProblems prebuilds every problem response a request can get with
// the default detail, indexed by Retry-After seconds (0: none): without
// Retry-After for the 4xx refusals, with every Retry-After up to
// maxSharedRetryAfter for 409, and with the configured one for 503.
func (e *Engine) buildProblems() {
	for kind := range numProblemKinds {
		var set []*Response
		switch kind {
		case problemInFlight:
			set = make([]*Response, maxSharedRetryAfter+1)
			for s := int64(1); s <= maxSharedRetryAfter; s++ {
				set[s] = e.buildProblem(kind, "", s)
			}
		case problemStoreUnavailable, problemStoreDeferred:
			s := retryAfterSecs(e.cfg.retryAfter)
			if s <= maxSharedRetryAfter {
				set = make([]*Response, s+1)
				set[s] = e.buildProblem(kind, "", s)
			}
		default:
			set = []*Response{e.buildProblem(kind, "", 0)}
		}
		e.problems[kind] = set
	}
}

// retryAfterSecs rounds d up to whole seconds, at least 1.
func retryAfterSecs(d time.Duration) int64 {
	secs := int64(d / time.Second) // rounded up below: d+time.Second-1 overflows near the maximum
	if d%time.Second > 0 {
		secs++
	}
	return max(secs, 1)
}
