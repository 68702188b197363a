// Package test runs idemkit's migrations with golang-migrate against a real
// PostgreSQL. It is a test-only module, so golang-migrate never enters the
// migrations module's requirements.
package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/idemkit/idemkit/migrations"
	"github.com/idemkit/idemkit/svctest"
	"github.com/jackc/pgx/v5"
)

// databaseURL is a pgx5:// URL of a schema created for this test binary
// and dropped after it: the Example never touches another test's tables.
var databaseURL string

// TestMain runs the tests and the Example in a fresh schema of the
// IDEMKIT_POSTGRES_URL database. Without a reachable Postgres they are
// skipped, or fail when IDEMKIT_REQUIRE_SERVICES is set.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	base := os.Getenv(svctest.EnvPostgresURL)
	if base == "" {
		return unavailable(svctest.EnvPostgresURL + " is unset")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return unavailable(fmt.Sprintf("PostgreSQL at %s: %v", svctest.EnvPostgresURL, err))
	}
	defer conn.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	schema := "idemkit_migrate_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		fmt.Fprintln(os.Stderr, "create schema:", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintln(os.Stderr, "drop schema:", err)
		}
	}()
	u, err := url.Parse(base)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	u.Scheme = "pgx5"
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	databaseURL = u.String()
	return m.Run()
}

func unavailable(why string) int {
	if svctest.Required() {
		fmt.Fprintf(os.Stderr, "FAIL: required service unavailable (%s is set): %s\n", svctest.EnvRequireServices, why)
		return 1
	}
	fmt.Printf("skipped: %s\n", why)
	return 0
}

// Applying idemkit's schema with golang-migrate: the iofs source reads the
// files embedded in migrations.FS, and the pgx/v5 driver applies them in
// the schema the URL's search_path names (here a fresh one).
func Example_golangMigrate() {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		log.Fatal(err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, databaseURL)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		log.Fatal(err)
	}
	version, dirty, err := m.Version()
	fmt.Println("up:", version, dirty, err)

	// Every down reverses its up.
	if err := m.Down(); err != nil {
		log.Fatal(err)
	}
	_, _, err = m.Version()
	fmt.Println("down:", err)
	// Output:
	// up: 3 false <nil>
	// down: no migration
}
