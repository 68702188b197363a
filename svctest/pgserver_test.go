package svctest

import (
	"net"
	"net/url"
	"testing"
	"time"
)

func TestStartPostgres(t *testing.T) {
	s := StartPostgres(t)
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	dial := func() error {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("server at %s: %v; want it listening", u.Host, err)
	}
	s.Stop()
	if err := dial(); err == nil {
		t.Fatalf("server at %s still listens after Stop", u.Host)
	}
	s.Start()
	if err := dial(); err != nil {
		t.Fatalf("server at %s after Start: %v", u.Host, err)
	}
	s.Crash()
	s.Start()
	if err := dial(); err != nil {
		t.Fatalf("server at %s after Crash and Start: %v", u.Host, err)
	}
}
