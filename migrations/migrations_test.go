package migrations_test

import (
	"strings"
	"testing"

	"github.com/idemkit/idemkit/migrations"
)

func TestList(t *testing.T) {
	list, err := migrations.List()
	if err != nil {
		t.Fatalf("List() error = %v", err)
	}
	if len(list) == 0 || list[0].Version != 1 || list[0].Name != "idempotency_keys" {
		t.Fatalf("List() = %+v; want version 1 named idempotency_keys first", list)
	}
	for i, m := range list {
		if i > 0 && m.Version <= list[i-1].Version {
			t.Errorf("List()[%d].Version = %d; want ascending order", i, m.Version)
		}
		if !strings.Contains(m.Up, migrations.DefaultTable) || !strings.Contains(m.Down, "DROP") {
			t.Errorf("migration %d: up or down looks empty", m.Version)
		}
	}
}

func TestRename(t *testing.T) {
	got := migrations.Rename("CREATE VIEW idempotency_keys_json AS SELECT 1 FROM idempotency_keys; -- my_idempotency_keys",
		func(suffix string) string { return "<t" + suffix + ">" })
	want := "CREATE VIEW <t_json> AS SELECT 1 FROM <t>; -- my_idempotency_keys"
	if got != want {
		t.Errorf("Rename = %q; want %q", got, want)
	}
}
