package pgxstore

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestRawKeysAbsentAtRest serves requests in every state a record can be
// left in — completed, pending (a handler still running), released (a
// 5xx), refused (a mismatch) — under raw keys and scopes that are easy to
// find, with and without an HMAC secret, then reads every row of the
// test's table in full (as text, bytea columns in hex): no raw key, no
// scope and no request body appears, as text or as hex (docs/contract.md C-SCOPE-1:
// stores never see raw keys).
func TestRawKeysAbsentAtRest(t *testing.T) {
	for _, secret := range []string{"", "at-rest-secret"} {
		name := "SHA256"
		if secret != "" {
			name = "HMAC"
		}
		t.Run(name, func(t *testing.T) {
			db := newTestDB(t, 4)
			opts := []core.Option{core.WithHeaderScope("X-Api-Key")}
			if secret != "" {
				opts = append(opts, core.WithHMACSecret([]byte(secret)))
			}
			secrets := storetest.RunAtRest(t, core.New(db.store(), opts...))
			rows, err := db.pool.Query(ctxT(t), "SELECT t::text FROM "+db.table()+" t")
			if err != nil {
				t.Fatalf("reading the table: %v", err)
			}
			defer rows.Close()
			seen, response := 0, false
			for rows.Next() {
				var row string
				if err := rows.Scan(&row); err != nil {
					t.Fatalf("reading a row: %v", err)
				}
				seen++
				lower := strings.ToLower(row)
				response = response || strings.Contains(lower, hex.EncodeToString([]byte(storetest.AtRestResponse)))
				for _, s := range secrets {
					if strings.Contains(row, s) || strings.Contains(lower, hex.EncodeToString([]byte(s))) {
						t.Errorf("a row holds %q: a raw key, scope or request body at rest: %.300s", s, row)
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("reading the table: %v", err)
			}
			if seen < 2 || !response {
				t.Fatalf("found %d rows, the stored response in none: %v; want the records of the run, read in full", seen, response)
			}
			t.Logf("%d rows read: no raw key, scope or request body", seen)
		})
	}
}
