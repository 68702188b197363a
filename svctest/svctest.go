// Package svctest gives idemkit's integration tests their servers.
//
// Servers come, in this order, from an environment variable
// (IDEMKIT_REDIS_URL, IDEMKIT_POSTGRES_URL), from testcontainers-go where a
// Docker engine answers, or not at all: then the test is skipped with a
// message that says why. With IDEMKIT_REQUIRE_SERVICES=1 (as CI sets it) a
// test that would skip fails instead, so a green run never hides a server
// that was not there.
//
// It is a test-only module: no idemkit package imports it outside _test.go
// files, so testcontainers-go never reaches a user's build.
package svctest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// Environment variables read by this package.
const (
	EnvRedisURL        = "IDEMKIT_REDIS_URL"
	EnvPostgresURL     = "IDEMKIT_POSTGRES_URL"
	EnvRequireServices = "IDEMKIT_REQUIRE_SERVICES"
)

// Required reports whether IDEMKIT_REQUIRE_SERVICES asks every test that
// needs a server to fail rather than skip when the server is missing.
func Required() bool {
	v := os.Getenv(EnvRequireServices)
	return v != "" && v != "0" && v != "false"
}

// Unavailable ends the test because a server it needs is missing: a skip
// with the reason, or a failure when [Required] is true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required service unavailable ("+EnvRequireServices+" is set): "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

var (
	redisOnce sync.Once
	redisURL  string
	redisErr  error

	pgOnce sync.Once
	pgURL  string
	pgErr  error
)

// RedisURL returns the URL of a Redis server for tests: IDEMKIT_REDIS_URL,
// or one testcontainers-go container shared by the test binary.
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvRedisURL); u != "" {
		return u
	}
	redisOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var c *tcredis.RedisContainer
		c, redisErr = runContainer(func() (*tcredis.RedisContainer, error) {
			return tcredis.Run(ctx, "redis:7-alpine")
		})
		if redisErr == nil {
			redisURL, redisErr = c.ConnectionString(ctx)
		}
	})
	if redisErr != nil {
		Unavailable(t, "%s is unset and no Redis container could be started: %v", EnvRedisURL, redisErr)
	}
	return redisURL
}

// PostgresURL returns the URL of a PostgreSQL database for tests:
// IDEMKIT_POSTGRES_URL, or one testcontainers-go container shared by the
// test binary.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvPostgresURL); u != "" {
		return u
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var c *tcpostgres.PostgresContainer
		c, pgErr = runContainer(func() (*tcpostgres.PostgresContainer, error) {
			return tcpostgres.Run(ctx, "postgres:16-alpine",
				tcpostgres.WithDatabase("test"),
				tcpostgres.WithUsername("postgres"),
				tcpostgres.WithPassword("postgres"),
				tcpostgres.BasicWaitStrategies(),
			)
		})
		if pgErr == nil {
			pgURL, pgErr = c.ConnectionString(ctx, "sslmode=disable")
		}
	})
	if pgErr != nil {
		Unavailable(t, "%s is unset and no PostgreSQL container could be started: %v", EnvPostgresURL, pgErr)
	}
	return pgURL
}

// runContainer starts a container, turning a panic of a Docker client that
// finds no engine into an error. Containers live as long as the test binary;
// testcontainers' reaper removes them afterwards.
func runContainer[C any](run func() (C, error)) (c C, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	if _, perr := testcontainers.NewDockerProvider(); perr != nil {
		return c, perr
	}
	return run()
}
