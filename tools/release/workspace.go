package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// repoPath is the module path prefix of every idemkit module.
const repoPath = "github.com/idemkit/idemkit/"

// testOnlyDirs are the workspace modules that are never published, besides
// every module in a directory named test (the test-only module of the
// module above it).
var testOnlyDirs = []string{"bench", "examples", "matrix", "reliability", "svctest", "tools/release"}

// wmod is one module of the workspace.
type wmod struct {
	Dir       string // slash-separated, relative to the root: "adapters/idemgin"
	Path      string // "github.com/idemkit/idemkit/adapters/idemgin"
	Published bool
	File      *modfile.File
}

// workspace is go.work and the modules it uses.
type workspace struct {
	Root    string
	Work    *modfile.WorkFile
	Modules []*wmod
	byPath  map[string]*wmod
}

func loadWorkspace(root string) (*workspace, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	wf, err := modfile.ParseWork("go.work", data, nil)
	if err != nil {
		return nil, err
	}
	ws := &workspace{Root: root, Work: wf, byPath: map[string]*wmod{}}
	for _, u := range wf.Use {
		dir := path.Clean(filepath.ToSlash(u.Path))
		f, err := readModFile(filepath.Join(root, dir, "go.mod"))
		if err != nil {
			return nil, err
		}
		m := &wmod{Dir: dir, Path: f.Module.Mod.Path, File: f,
			Published: path.Base(dir) != "test" && !slices.Contains(testOnlyDirs, dir)}
		ws.Modules = append(ws.Modules, m)
		ws.byPath[m.Path] = m
	}
	return ws, nil
}

func readModFile(name string) (*modfile.File, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return modfile.Parse(name, data, nil)
}

func (m *wmod) write(root string) error {
	m.File.Cleanup()
	data, err := m.File.Format()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, m.Dir, "go.mod"), data, 0o644)
}

// published returns the published modules in dependency order: every
// module after the siblings it requires.
func (ws *workspace) published() ([]*wmod, error) {
	var order []*wmod
	state := map[*wmod]int{} // 1 visiting, 2 done
	var visit func(m *wmod) error
	visit = func(m *wmod) error {
		switch state[m] {
		case 1:
			return fmt.Errorf("require cycle through %s", m.Path)
		case 2:
			return nil
		}
		state[m] = 1
		for _, r := range m.File.Require {
			if s := ws.byPath[r.Mod.Path]; s != nil {
				if err := visit(s); err != nil {
					return err
				}
			}
		}
		state[m] = 2
		order = append(order, m)
		return nil
	}
	for _, m := range ws.Modules {
		if m.Published {
			if err := visit(m); err != nil {
				return nil, err
			}
		}
	}
	return order, nil
}

// version is the version at which the modules require each other: the
// version of go.work's replace lines, which must all agree.
func (ws *workspace) version() (string, error) {
	v := ""
	for _, r := range ws.Work.Replace {
		if ws.byPath[r.Old.Path] == nil {
			continue
		}
		if v != "" && r.Old.Version != v {
			return "", fmt.Errorf("go.work replaces siblings at %s and %s; want one version", v, r.Old.Version)
		}
		v = r.Old.Version
	}
	if v == "" {
		return "", errors.New("go.work replaces no sibling at a version")
	}
	return v, nil
}

// verify checks the rules a release depends on: published go.mod files
// carry no replace lines and require only published siblings, every
// sibling requirement is at version, and go.work replaces every required
// sibling at version by its directory.
func (ws *workspace) verify(version string) error {
	var errs []error
	required := map[string]bool{}
	for _, m := range ws.Modules {
		if m.Published && len(m.File.Replace) > 0 {
			errs = append(errs, fmt.Errorf("%s/go.mod: a published module has replace lines", m.Dir))
		}
		for _, r := range m.File.Require {
			s := ws.byPath[r.Mod.Path]
			if s == nil {
				if strings.HasPrefix(r.Mod.Path, repoPath) {
					errs = append(errs, fmt.Errorf("%s/go.mod requires %s, which is not in go.work", m.Dir, r.Mod.Path))
				}
				continue
			}
			required[s.Path] = true
			if r.Mod.Version != version {
				errs = append(errs, fmt.Errorf("%s/go.mod requires %s %s; want %s", m.Dir, r.Mod.Path, r.Mod.Version, version))
			}
			if m.Published && !s.Published {
				errs = append(errs, fmt.Errorf("%s/go.mod: a published module requires the test-only module %s", m.Dir, s.Dir))
			}
		}
	}
	replaced := map[string]bool{}
	for _, r := range ws.Work.Replace {
		if s := ws.byPath[r.Old.Path]; s != nil && r.Old.Version == version && path.Clean(filepath.ToSlash(r.New.Path)) == s.Dir {
			replaced[s.Path] = true
		}
	}
	for _, m := range ws.Modules {
		if required[m.Path] && !replaced[m.Path] {
			errs = append(errs, fmt.Errorf("go.work: want replace %s %s => ./%s", m.Path, version, m.Dir))
		}
	}
	return errors.Join(errs...)
}

// setVersion rewrites every sibling requirement, and go.work's replace
// lines, to version.
func (ws *workspace) setVersion(version string) error {
	if !semver.IsValid(version) || semver.Canonical(version) != version {
		return fmt.Errorf("version %q is not a canonical semantic version such as v0.2.0", version)
	}
	required := map[string]bool{}
	for _, m := range ws.Modules {
		changed := false
		for _, r := range m.File.Require {
			if s := ws.byPath[r.Mod.Path]; s != nil {
				required[s.Path] = true
				if r.Mod.Version != version {
					if err := m.File.AddRequire(r.Mod.Path, version); err != nil {
						return err
					}
					changed = true
				}
			}
		}
		if changed {
			if err := m.write(ws.Root); err != nil {
				return err
			}
		}
	}
	// Rewrite the version of go.work's sibling replace lines in place, so
	// that the block and its comments stay; drop those no module needs and
	// add the missing ones.
	replaced := map[string]bool{}
	for _, r := range slices.Clone(ws.Work.Replace) {
		if ws.byPath[r.Old.Path] == nil {
			continue
		}
		if !required[r.Old.Path] || replaced[r.Old.Path] {
			if err := ws.Work.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return err
			}
			continue
		}
		replaced[r.Old.Path] = true
		if i := slices.Index(r.Syntax.Token, r.Old.Version); r.Old.Version != "" && i >= 0 {
			r.Syntax.Token[i] = version
			r.Old.Version = version
		} else if err := ws.Work.DropReplace(r.Old.Path, r.Old.Version); err != nil {
			return err
		} else {
			replaced[r.Old.Path] = false
		}
	}
	for _, m := range ws.Modules {
		if required[m.Path] && !replaced[m.Path] {
			if err := ws.Work.AddReplace(m.Path, version, "./"+m.Dir, ""); err != nil {
				return err
			}
		}
	}
	ws.Work.Cleanup()
	return os.WriteFile(filepath.Join(ws.Root, "go.work"), modfile.Format(ws.Work.Syntax), 0o644)
}

// printTags prints the tag of every published module at the current
// version, in dependency order: push them in this order.
func (ws *workspace) printTags() error {
	version, err := ws.version()
	if err != nil {
		return err
	}
	if err := ws.verify(version); err != nil {
		return err
	}
	order, err := ws.published()
	if err != nil {
		return err
	}
	for _, m := range order {
		fmt.Println(m.Dir + "/" + version)
	}
	return nil
}

// tidy runs go mod tidy in the given module directories (default: every
// module) outside the workspace, with every sibling temporarily replaced
// by its directory: until a version is on a proxy, that is the only way
// go mod tidy can resolve the siblings. It leaves no replace line behind
// and puts sibling requirements back at the current version.
func (ws *workspace) tidy(dirs []string) error {
	version, err := ws.version()
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		for _, m := range ws.Modules {
			dirs = append(dirs, m.Dir)
		}
	}
	for _, dir := range dirs {
		var m *wmod
		for _, c := range ws.Modules {
			if c.Dir == path.Clean(filepath.ToSlash(dir)) {
				m = c
			}
		}
		if m == nil {
			return fmt.Errorf("%s is not a module of go.work", dir)
		}
		for _, s := range ws.Modules {
			if s != m {
				if err := m.File.AddReplace(s.Path, "", filepath.Join(ws.Root, s.Dir), ""); err != nil {
					return err
				}
			}
		}
		if err := m.write(ws.Root); err != nil {
			return err
		}
		cmd := exec.Command("go", "mod", "tidy")
		cmd.Dir = filepath.Join(ws.Root, m.Dir)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		tidyErr := cmd.Run()
		f, err := readModFile(filepath.Join(ws.Root, m.Dir, "go.mod"))
		if err != nil {
			return err
		}
		for _, s := range ws.Modules {
			if err := f.DropReplace(s.Path, ""); err != nil {
				return err
			}
			for _, r := range f.Require {
				if r.Mod.Path == s.Path && r.Mod.Version != version {
					if err := f.AddRequire(s.Path, version); err != nil {
						return err
					}
				}
			}
		}
		m.File = f
		if err := m.write(ws.Root); err != nil {
			return err
		}
		if tidyErr != nil {
			return fmt.Errorf("go mod tidy in %s: %w", m.Dir, tidyErr)
		}
	}
	return nil
}
