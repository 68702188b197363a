package redisstore

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestForgedRecords writes records into Redis with plain SETs, as anyone
// able to write to the server could, and checks that the engine never
// replays them over a real socket: a status that is not a final one, a
// Set-Cookie field, and under an HMAC secret a record without a valid MAC
// (one made up, or another key's record copied over).
func TestForgedRecords(t *testing.T) {
	client := singleClient(t)
	ctx := context.Background()
	storetest.TestForged(t, storetest.ForgedHarness{
		Noun: "record",
		Open: func(t *testing.T) (core.Store, func(*testing.T, storetest.Forgery, string, string)) {
			prefix := uniquePrefix(t)
			return New(client, WithPrefix(prefix)), func(t *testing.T, f storetest.Forgery, key, otherKey string) {
				// A record's key is the prefix and the storage key in braces
				// (the layout in redisstore's doc).
				rkey, orkey := prefix+"{"+key+"}", prefix+"{"+otherKey+"}"
				genuine, err := client.Get(ctx, rkey).Result()
				if err != nil {
					t.Fatalf("GET %s: %v", rkey, err)
				}
				value, err := client.Get(ctx, orkey).Result()
				if err != nil {
					t.Fatalf("GET %s: %v", orkey, err)
				}
				if f.Response != nil {
					value = forged(genuine, f.Response)
				}
				if err := client.Set(ctx, rkey, value, time.Hour).Err(); err != nil {
					t.Fatalf("SET %s: %v", rkey, err)
				}
			}
		},
	}, []storetest.Forgery{
		{Name: "Status101", Response: &core.Response{Status: 101, Header: http.Header{"Upgrade": {"h2c"}}}},
		{Name: "Status999", Response: &core.Response{Status: 999, Header: http.Header{}, Body: []byte("forged")}},
		{Name: "SetCookie", SetCookie: true, Response: &core.Response{Status: 201, Header: http.Header{"Set-Cookie": {"session=attacker"}}, Body: []byte("forged")}},
		{Name: "SetCookieLowerCase", SetCookie: true, Response: &core.Response{Status: 201, Header: http.Header{"set-cookie": {"session=attacker"}}, Body: []byte("forged")}},
		{Name: "NoMACUnderSecret", Secret: true, Response: &core.Response{Status: 201, Header: http.Header{}, Body: []byte("forged")}},
		{Name: "OtherKeysRecordUnderSecret", Secret: true},
	})
}

// forged is a completed record of genuine's fingerprint holding resp.
func forged(genuine string, resp *core.Response) string {
	return genuine[:headerLen] + string(codec.EncodeResponse(resp))
}
