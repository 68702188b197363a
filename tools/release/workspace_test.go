package main

import (
	"slices"
	"testing"
)

// TestRepository checks the repository's own go.mod files and go.work
// against the release rules, and the tag order.
func TestRepository(t *testing.T) {
	ws, err := loadWorkspace("../..")
	if err != nil {
		t.Fatal(err)
	}
	version, err := ws.version()
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.verify(version); err != nil {
		t.Errorf("release rules broken:\n%v", err)
	}
	order, err := ws.published()
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	var dirs []string
	for i, m := range order {
		pos[m.Path] = i
		dirs = append(dirs, m.Dir)
	}
	for _, m := range order {
		for _, r := range m.File.Require {
			if j, ok := pos[r.Mod.Path]; ok && j > pos[m.Path] {
				t.Errorf("tag order %v puts %s before %s, which it requires", dirs, m.Dir, order[j].Dir)
			}
		}
	}
	for _, want := range []string{"core", "conformance", "migrations", "internal", "adapters/idemhttp", "stores/tieredstore"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("published modules %v lack %s", dirs, want)
		}
	}
	for _, testOnly := range []string{"svctest", "matrix", "adapters/idemgin/test", "tools/release"} {
		if slices.Contains(dirs, testOnly) {
			t.Errorf("published modules %v include the test-only %s", dirs, testOnly)
		}
	}
}
