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

// problemResponse builds the problem+json response for code. detail, when
// not empty, replaces the default detail; it must never contain the raw key
// or the body.
func (e *Engine) problemResponse(code, detail string, retryAfter time.Duration) *Response {
	var body []byte
	if detail == "" {
		body = e.problems[code]
	}
	pt := problemTitles[code]
	if body == nil {
		if detail == "" {
			detail = pt.detail
		}
		body, _ = json.Marshal(Problem{Type: e.cfg.problemBase + code, Title: pt.title, Status: pt.status, Detail: detail, Code: code})
	}
	h := http.Header{
		"Content-Type":  {"application/problem+json"},
		"Cache-Control": {"no-store"},
	}
	if retryAfter > 0 {
		h["Retry-After"] = []string{retryAfterSeconds(retryAfter)}
	}
	return &Response{Status: pt.status, Header: h, Body: body}
}

func (e *Engine) buildProblems() {
	e.problems = make(map[string][]byte, len(problemTitles))
	for code, pt := range problemTitles {
		e.problems[code], _ = json.Marshal(Problem{Type: e.cfg.problemBase + code, Title: pt.title, Status: pt.status, Detail: pt.detail, Code: code})
	}
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
