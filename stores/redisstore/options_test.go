package redisstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func panicMessage(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprint(p)
		}
	}()
	f()
	return ""
}

// TestNewRefusesInvalidOptions: New panics on each invalid value with a
// message naming the option and the value, as memstore does; the valid
// edge values pass. No server is needed: New does not connect.
func TestNewRefusesInvalidOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { client.Close() })
	bad := []struct {
		opt  Option
		want string
	}{
		{WithPrefix("idem:{x}:"), `WithPrefix("idem:{x}:")`},
		{WithPrefix("a}"), `WithPrefix("a}")`},
		{WithTimeout(-time.Second), "WithTimeout(-1s)"},
		{WithMaxLease(0), "WithMaxLease(0s)"},
		{WithMaxLease(-time.Second), "WithMaxLease(-1s)"},
		{WithReplicaAcks(-1, time.Second), "WithReplicaAcks(-1, 1s)"},
		{WithReplicaAcks(1, 0), "WithReplicaAcks(1, 0s)"},
	}
	for _, tc := range bad {
		if msg := panicMessage(func() { New(client, tc.opt) }); !strings.HasPrefix(msg, "redisstore: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("New(%s) panicked with %q; want a message naming %q", tc.want, msg, tc.want)
		}
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { ring.Close() })
	if msg := panicMessage(func() { New(ring, WithReplicaAcks(1, time.Second)) }); !strings.Contains(msg, "WithReplicaAcks(1, 1s)") || !strings.Contains(msg, "*redis.Ring") {
		t.Errorf("New(ring, WithReplicaAcks(1, 1s)) panicked with %q; want a message naming the option and the client type", msg)
	}
	for i, o := range []Option{
		WithPrefix(""), WithTimeout(0), WithMaxLease(time.Nanosecond), WithReplicaAcks(0, 0), WithReplicaAcks(1, time.Nanosecond),
	} {
		if msg := panicMessage(func() { New(client, o) }); msg != "" {
			t.Errorf("valid option #%d panicked: %s", i, msg)
		}
	}
}
