// Package docs checks that the repository's documents say what the code
// does: the rule ids of docs/contract.md that code cites, and the tests
// that contract.md says check each rule.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const root = "../.."

var (
	// ruleDef is a rule's definition in contract.md: its id in bold.
	ruleDef = regexp.MustCompile(`\*\*(C-[A-Z]+-[0-9]+)\*\*`)
	// ruleRef is a rule id anywhere.
	ruleRef = regexp.MustCompile(`\bC-[A-Z]+-[0-9]+\b`)
	// testName is a test contract.md names: a conformance suite's subtest
	// (TestMiddleware/Key/Invalid) or, after a directory of this
	// repository, a test of the package there (core: TestParseKey).
	testName = regexp.MustCompile("`(?:([a-z0-9/]+):\\s+)?((?:Test|Fuzz)[A-Za-z0-9_]*)((?:/[A-Za-z0-9_]+)*)`")
	// makeTarget is a make target contract.md names as a check.
	makeTarget = regexp.MustCompile("`make ([a-z-]+)`")
)

// TestContractRules checks that every rule of docs/contract.md has an id
// of its own and names the tests that check it, and that every rule id
// code cites is defined there.
func TestContractRules(t *testing.T) {
	doc := readFile(t, "docs/contract.md")
	defs := ruleDef.FindAllStringSubmatchIndex(doc, -1)
	if len(defs) < 30 {
		t.Fatalf("docs/contract.md defines %d rule ids; want every rule to have one", len(defs))
	}
	defined := map[string]bool{}
	for i, d := range defs {
		id := doc[d[2]:d[3]]
		if defined[id] {
			t.Errorf("docs/contract.md defines %s twice", id)
		}
		defined[id] = true
		// A rule's text runs to the next rule or heading; it names its
		// tests there, or in a sentence "<id> is checked by" (the rows of
		// a table).
		end := len(doc)
		if i+1 < len(defs) {
			end = defs[i+1][0]
		}
		if h := strings.Index(doc[d[1]:end], "\n#"); h >= 0 {
			end = d[1] + h
		}
		text := doc[d[1]:end]
		if !regexp.MustCompile(`Checked\s+by:`).MatchString(text) && !regexp.MustCompile(`\b`+id+`\s+(is\s+checked\s+)?by\s`).MatchString(doc) {
			t.Errorf("docs/contract.md: rule %s names no test that checks it (want \"Checked by: ...\")", id)
		}
	}

	walkGo(t, func(path, src string) {
		if path == "examples/docs/contract_test.go" {
			return // the patterns below
		}
		for _, id := range ruleRef.FindAllString(src, -1) {
			if !defined[id] {
				t.Errorf("%s cites rule %s, which docs/contract.md does not define", path, id)
			}
		}
		// Sections are renumbered as the document grows; rule ids are not.
		if strings.Contains(src, "contract.md §") {
			t.Errorf("%s cites a section of docs/contract.md; cite the rule id instead", path)
		}
		if regexp.MustCompile(`\bSPEC\b`).MatchString(src) {
			t.Errorf("%s cites SPEC, a document users never get; cite docs/contract.md's rule ids", path)
		}
	})
	docs, _ := filepath.Glob(filepath.Join(root, "*.md"))
	more, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, p := range append(docs, more...) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ruleRef.FindAllString(string(src), -1) {
			if !defined[id] {
				t.Errorf("%s cites rule %s, which docs/contract.md does not define", p, id)
			}
		}
	}
}

// TestContractNamesTests checks that every test docs/contract.md names
// exists: a conformance suite's subtest among those the suite runs, any
// other test as a function of the package in the named directory.
func TestContractNamesTests(t *testing.T) {
	doc := readFile(t, "docs/contract.md")
	suites := conformanceSuites(t)
	names := testName.FindAllStringSubmatch(doc, -1)
	if len(names) < 50 {
		t.Fatalf("docs/contract.md names %d tests; want the tests of every rule", len(names))
	}
	for _, m := range names {
		dir, top, sub := m[1], m[2], strings.TrimPrefix(m[3], "/")
		if err := resolve(t, suites, dir, top, sub); err != "" {
			t.Errorf("docs/contract.md names %s: %s", m[0], err)
		}
	}
	makefile := readFile(t, "Makefile")
	for _, m := range makeTarget.FindAllStringSubmatch(doc, -1) {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m[1]) + `:`).MatchString(makefile) {
			t.Errorf("docs/contract.md names %s, which the Makefile has no target for", m[0])
		}
	}
}

// resolve says why a named test does not exist, or "".
func resolve(t *testing.T, suites map[string][]subtest, dir, top, sub string) string {
	if dir == "" {
		if s, ok := suites[top]; ok {
			if sub == "" || slices.ContainsFunc(s, func(n subtest) bool { return n.matches(sub) }) {
				return ""
			}
			return "conformance." + top + " runs no subtest " + sub
		}
	}
	dirs := []string{dir}
	if dir == "" {
		dirs = testDirs(t)
	}
	for _, d := range dirs {
		src := testSources(t, d)
		if !regexp.MustCompile(`(?m)^func ` + top + `\(`).MatchString(src) {
			continue
		}
		for _, seg := range strings.Split(sub, "/") {
			if seg != "" && !strings.Contains(src, strconv.Quote(seg)) {
				return "no subtest named " + strconv.Quote(seg) + " in " + d
			}
		}
		return ""
	}
	if dir == "" {
		return "neither a conformance suite nor a test anywhere in the repository"
	}
	return "no func " + top + " in " + dir + "/*_test.go"
}

// subtest is a subtest name a suite runs, or the fixed start of names it
// computes (prefix).
type subtest struct {
	name   string
	prefix bool
}

// matches reports whether the name n, as contract.md writes it, is this
// subtest or a group of subtests holding it.
func (s subtest) matches(n string) bool {
	if n == s.name || strings.HasPrefix(s.name, n+"/") {
		return true
	}
	return s.prefix && (strings.HasPrefix(n, s.name) || strings.HasPrefix(s.name, n+"/"))
}

// conformanceSuites reads the conformance package's source: the subtests
// of each exported suite function TestX, by the names it passes to run,
// t.Run and runGroups.
func conformanceSuites(t *testing.T) map[string][]subtest {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, "conformance", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed []*ast.File
	vars := map[string]*ast.CompositeLit{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
		for _, d := range af.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, sp := range g.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, v := range vs.Values {
						if cl, ok := v.(*ast.CompositeLit); ok {
							vars[vs.Names[i].Name] = cl
						}
					}
				}
			}
		}
	}
	suites := map[string][]subtest{}
	for _, af := range parsed {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") || fd.Body == nil {
				continue
			}
			var names []subtest
			ranges := map[string]string{} // loop variable → the var it ranges over
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.RangeStmt:
					if v, ok := n.Value.(*ast.Ident); ok {
						if x, ok := n.X.(*ast.Ident); ok {
							ranges[v.Name] = x.Name
						}
					}
				case *ast.CallExpr:
					switch callName(n) {
					case "runGroups":
						if len(n.Args) > 1 {
							if v, ok := n.Args[1].(*ast.Ident); ok && vars[v.Name] != nil {
								names = append(names, tableNames(vars[v.Name], "")...)
							}
						}
					case "run", "Run":
						if len(n.Args) > 0 {
							names = append(names, runNames(n.Args[0], vars, ranges)...)
						}
					}
				}
				return true
			})
			suites[fd.Name.Name] = names
		}
	}
	for _, s := range []string{"TestStore", "TestMiddleware", "TestDo"} {
		if len(suites[s]) == 0 {
			t.Fatalf("found no subtests of conformance.%s: the parse of conformance/ is out of date", s)
		}
	}
	return suites
}

func callName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// runNames is the name a run or t.Run call gives: a literal, a literal
// followed by the name field of a loop variable over a table (each of the
// table's names), or a literal followed by anything else (a prefix).
func runNames(e ast.Expr, vars map[string]*ast.CompositeLit, ranges map[string]string) []subtest {
	if s, ok := stringLit(e); ok {
		return []subtest{{name: s}}
	}
	b, ok := e.(*ast.BinaryExpr)
	if !ok || b.Op != token.ADD {
		return nil
	}
	head, ok := stringLit(b.X)
	if !ok {
		if l := runNames(b.X, vars, ranges); len(l) == 1 {
			head = l[0].name
		} else {
			return nil
		}
	}
	if sel, ok := b.Y.(*ast.SelectorExpr); ok && sel.Sel.Name == "name" {
		if x, ok := sel.X.(*ast.Ident); ok && vars[ranges[x.Name]] != nil {
			return tableNames(vars[ranges[x.Name]], head)
		}
	}
	return []subtest{{name: head, prefix: true}}
}

// tableNames is the names of a table of cases, {"Name", ...}, or of a
// table of groups of cases, {"Group", []case{{"Name", ...}}}.
func tableNames(cl *ast.CompositeLit, prefix string) []subtest {
	var out []subtest
	for _, el := range cl.Elts {
		row, ok := el.(*ast.CompositeLit)
		if !ok || len(row.Elts) < 2 {
			continue
		}
		name, ok := stringLit(row.Elts[0])
		if !ok {
			continue
		}
		if inner, ok := row.Elts[1].(*ast.CompositeLit); ok {
			if _, isSlice := inner.Type.(*ast.ArrayType); isSlice {
				out = append(out, tableNames(inner, prefix+name+"/")...)
				continue
			}
		}
		out = append(out, subtest{name: prefix + name})
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	return "", false
}

// testSources is the text of the _test.go files in a directory of the
// repository.
func testSources(t *testing.T, dir string) string {
	files, err := filepath.Glob(filepath.Join(root, dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	return b.String()
}

// testDirs is every directory of the repository holding a _test.go file.
func testDirs(t *testing.T) []string {
	var dirs []string
	walkGo(t, func(path, _ string) {
		if d := filepath.Dir(path); strings.HasSuffix(path, "_test.go") && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	})
	return dirs
}

// walkGo calls f with the path (relative to the repository) and the text of
// every Go file of the repository.
func walkGo(t *testing.T, f func(path, src string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "out") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		f(filepath.ToSlash(rel), string(src))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
