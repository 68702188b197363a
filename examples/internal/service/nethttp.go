package service

import (
	"encoding/json"
	"net/http"
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

// Healthz is GET /healthz.
func Healthz(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
