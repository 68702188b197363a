// Package migrations holds idemkit's PostgreSQL schema as golang-migrate
// files, embedded so that Go programs can apply them without extra tools.
//
// The files follow golang-migrate's naming (NNNNNN_name.up.sql and
// NNNNNN_name.down.sql); every down reverses its up. They name their objects
// by the default, unqualified names (table idempotency_keys, view
// idempotency_keys_json, function idempotency_keys_try_jsonb, index and
// constraints prefixed idempotency_keys_), so that:
//
//   - golang-migrate applies them as they are, in the schema chosen by the
//     connection's search_path:
//
//     migrate -path ./migrations -database 'postgres://host/db?search_path=idem' up
//
//   - a store with another table name renders them first: every identifier
//     that starts with [DefaultTable] is replaced by the quoted table name
//     plus the same suffix (see [Rename]), and the schema is chosen by
//     SET LOCAL search_path (pgxstore.EnsureSchema does both).
//
// The statements are idempotent (IF NOT EXISTS, OR REPLACE), so applying an
// up twice is harmless.
//
// # Applying them from Go
//
// golang-migrate's iofs source reads [FS] as it is, and its pgx/v5
// database driver (imported for the pgx5:// scheme) applies the files in
// the schema the URL's search_path names:
//
//	import (
//		"github.com/golang-migrate/migrate/v4"
//		_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
//		"github.com/golang-migrate/migrate/v4/source/iofs"
//		"github.com/idemkit/idemkit/migrations"
//	)
//
//	src, err := iofs.New(migrations.FS, ".")
//	if err != nil {
//		return err
//	}
//	m, err := migrate.NewWithSourceInstance("iofs", src, "pgx5://host/db?search_path=idem")
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
//		return err
//	}
//
// The test-only module migrations/test runs this code as an Example
// against PostgreSQL; golang-migrate is not a requirement of this module.
//
// The package has no dependencies; it only exposes the files.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
)

// FS holds the migration files at its root, in golang-migrate's naming. It
// can be handed to golang-migrate's iofs source driver as it is.
//
//go:embed *.sql
var FS embed.FS

// DefaultTable is the table name the files use. Every other object the files
// create is named DefaultTable plus a suffix.
const DefaultTable = "idempotency_keys"

var identifiers = regexp.MustCompile(`\b` + DefaultTable + `\w*`)

// Rename returns sql with every identifier that starts with [DefaultTable]
// replaced by name(suffix), where suffix is the rest of the identifier
// ("" for the table itself, "_json" for the view). name must return a
// safely quoted identifier; a store uses it to give the table and every
// object derived from it a configured name.
func Rename(sql string, name func(suffix string) string) string {
	return identifiers.ReplaceAllStringFunc(sql, func(m string) string {
		return name(m[len(DefaultTable):])
	})
}

// Migration is one version: its up and down SQL.
type Migration struct {
	// Version is the leading number of the file names.
	Version uint
	// Name is the description part of the file names.
	Name string
	// Up and Down are the SQL texts of the .up.sql and .down.sql files.
	Up, Down string
}

var fileName = regexp.MustCompile(`^([0-9]+)_(.+)\.(up|down)\.sql$`)

// List returns the migrations in ascending version order.
func List() ([]Migration, error) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	byVersion := map[uint]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("migrations: %s: %w", e.Name(), err)
		}
		b, err := fs.ReadFile(FS, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		mig := byVersion[uint(v)]
		if mig == nil {
			mig = &Migration{Version: uint(v), Name: m[2]}
			byVersion[uint(v)] = mig
		}
		if m[3] == "up" {
			mig.Up = string(b)
		} else {
			mig.Down = string(b)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migrations: version %d lacks its up or down file", m.Version)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
