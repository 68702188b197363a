package pgxstore

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestForgedRows writes completed rows by hand, as anyone able to write to
// the table could (within its CHECK constraints, which allow statuses
// 100–599), and checks that the engine never replays them over a real
// socket: an interim status, a value that would split the header, a
// Set-Cookie field, and under an HMAC secret a response without a valid
// MAC (one made up, or another key's row copied over).
func TestForgedRows(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, 4)
	tbl := db.table()
	const setRow = `UPDATE %s SET status = $2, headers = $3, body = $4, body_omitted = false WHERE key = $1`
	const copyRow = `UPDATE %[1]s AS r SET status = o.status, headers = o.headers, body = o.body,
		body_omitted = o.body_omitted FROM %[1]s AS o WHERE r.key = $1 AND o.key = $2`
	forge := func(t *testing.T, f storetest.Forgery, key, otherKey string) {
		sql, args := fmt.Sprintf(copyRow, tbl), []any{key, otherKey}
		if r := f.Response; r != nil {
			sql, args = fmt.Sprintf(setRow, tbl), []any{key, r.Status, codec.AppendHeader(nil, r.Header), append([]byte{}, r.Body...)}
		}
		tag, err := db.pool.Exec(ctxT(t), sql, args...)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("forging the row: %v (%d rows)", err, tag.RowsAffected())
		}
	}
	row := func(status int, h http.Header, body string) *core.Response {
		return &core.Response{Status: status, Header: h, Body: []byte(body)}
	}
	storetest.TestForged(t, storetest.ForgedHarness{
		Noun:     "row",
		Parallel: true,
		Open: func(t *testing.T) (core.Store, func(*testing.T, storetest.Forgery, string, string)) {
			return db.store(), forge
		},
	}, []storetest.Forgery{
		{Name: "Status100", Response: row(100, http.Header{}, "forged")},
		{Name: "Status101", Response: row(101, http.Header{"Upgrade": {"h2c"}}, "")},
		{Name: "SplitValue", Response: row(201, http.Header{"Location": {"/a\r\nSet-Cookie: session=attacker"}}, "forged")},
		{Name: "SetCookie", SetCookie: true, Response: row(201, http.Header{"Set-Cookie": {"session=attacker"}}, "forged")},
		{Name: "SetCookieLowerCase", SetCookie: true, Response: row(201, http.Header{"set-cookie": {"session=attacker"}}, "forged")},
		{Name: "NoMACUnderSecret", Secret: true, Response: row(201, http.Header{}, "forged")},
		{Name: "OtherKeysRowUnderSecret", Secret: true},
	})
}
