package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/idemkit/idemkit/core"
)

// CreatePaymentHandler is POST /payments as a net/http handler, shared by
// the net/http and chi examples.
func (p *Payments) CreatePaymentHandler(w http.ResponseWriter, r *http.Request) {
	var req PaymentRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body"})
		return
	}
	q := r.URL.Query()
	pay, status, err := p.Create(r.Context(), req, QueryFrom(q.Get))
	if err != nil {
		WriteJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Location", "/payments/"+pay.ID)
	WriteJSON(w, status, pay)
}

// StatsHandler is GET /stats as a net/http handler.
func (p *Payments) StatsHandler(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, p.Stats())
}

// Healthz returns GET /healthz: 200 when engine's store can serve
// ({"status":"ok"}, or "degraded" with the reason when it serves without
// an optional part, such as a tiered store's cache), else 503 with a
// problem+json body naming the failing part. It asks the store each time
// (core.Engine.Check), bounded by 2 s.
func Healthz(engine *core.Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := engine.Check(ctx)
		switch {
		case err == nil:
			WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		case errors.Is(err, core.ErrDegraded):
			WriteJSON(w, http.StatusOK, map[string]string{"status": "degraded", "detail": err.Error()})
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(core.Problem{
				Type:   "about:blank",
				Title:  "Store unavailable",
				Status: http.StatusServiceUnavailable,
				Detail: "The idempotency store cannot serve: " + err.Error(),
				Code:   core.CodeStoreUnavailable,
			})
		}
	}
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
