package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// forbidden are the module path fragments no consumer's module graph may
// hold: the test-only dependencies of idemkit's own tests.
var forbidden = []string{"testcontainers", "docker", "moby", "otel", "opentelemetry", "idemkit/svctest", "idemkit/conformance"}

// check builds a file-system proxy from the tree at the current version
// and, in fresh modules outside the repository with no workspace, fetches
// the published modules from it as a user would, builds and runs each
// consumer (a key sent twice must be replayed), checks its module graph,
// and prints a table of module counts next to the framework and driver
// alone.
func (ws *workspace) check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	keep := fs.Bool("keep", false, "keep the temporary proxy and consumer modules")
	only := fs.String("run", "", "run only the consumers whose name contains this")
	fs.Parse(args)

	for _, v := range []string{"IDEMKIT_REDIS_URL", "IDEMKIT_POSTGRES_URL"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s is unset: the redisstore and pgxstore consumers need a server", v)
		}
	}
	start := time.Now()
	version, err := ws.version()
	if err != nil {
		return err
	}
	if err := ws.verify(version); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "idemkit-release-check-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Println("release-check: files kept in", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	proxy := filepath.Join(tmp, "proxy")
	if err := ws.buildProxy(proxy, version); err != nil {
		return err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return err
	}
	unlock, err := lockCache(filepath.Join(cache, "idemkit-release-check"))
	if err != nil {
		return err
	}
	defer unlock()
	env, err := consumerEnv(proxy)
	if err != nil {
		return err
	}
	fmt.Printf("release-check: proxy of %s at %s in %v\n", ws.Root, version, time.Since(start).Round(time.Millisecond))

	type row struct {
		name, aloneName string
		count, alone    int
	}
	var rows []row
	var errs []error
	for _, c := range consumers {
		if *only != "" && !strings.Contains(c.Name, *only) {
			continue
		}
		t0 := time.Now()
		n, alone, err := c.run(filepath.Join(tmp, c.dirName()), version, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			fmt.Printf("release-check: %-24s FAIL (%v)\n", c.Name, time.Since(t0).Round(time.Millisecond))
			continue
		}
		fmt.Printf("release-check: %-24s ok, replayed (%v)\n", c.Name, time.Since(t0).Round(time.Millisecond))
		rows = append(rows, row{c.Name, c.AloneName, n, alone})
	}
	if *only == "" {
		t0 := time.Now()
		if err := ws.vetPublished(filepath.Join(tmp, "vet"), version, env); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Printf("release-check: %-24s ok (%v)\n", "go vet, as a dependency", time.Since(t0).Round(time.Millisecond))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("| consumer | modules in `go list -m all` | framework + driver alone |")
	fmt.Println("|---|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %s | %d | %d (%s) |\n", r.name, r.count, r.alone, r.aloneName)
	}
	fmt.Printf("\nrelease-check: ok in %v\n", time.Since(start).Round(time.Second))
	return nil
}

// consumerEnv is the environment of the consumer builds: no workspace,
// -mod=mod, the file proxy first, then the download directory of the
// machine's module cache (itself a file proxy: what the tests downloaded
// is not fetched again) and then the machine's own GOPROXY,
// idemkit's modules exempt from the checksum database (they are not
// published yet), and a module cache of its own, cleared of idemkit's
// modules and not indexed, so that a module version rebuilt from a changed
// tree is never served from a stale cache.
func consumerEnv(proxy string) ([]string, error) {
	goproxy, err := goEnv("GOPROXY")
	if err != nil {
		return nil, err
	}
	gomodcache, err := goEnv("GOMODCACHE")
	if err != nil {
		return nil, err
	}
	goflags, err := goEnv("GOFLAGS")
	if err != nil {
		return nil, err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	modcache := filepath.Join(cache, "idemkit-release-check", "mod")
	for _, d := range []string{
		filepath.Join(modcache, "github.com", "idemkit"),
		filepath.Join(modcache, "cache", "download", "github.com", "idemkit"),
	} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	return append(os.Environ(),
		"GOWORK=off",
		"GOFLAGS="+strings.TrimSpace("-mod=mod -modcacherw "+goflags),
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(gomodcache, "cache", "download"))+","+goproxy,
		"GONOSUMDB=github.com/idemkit",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOMODCACHE="+modcache,
		"GOTOOLCHAIN=local",
		// The go command indexes a module cache directory once, by its
		// path, trusting path@version never to change; here the idemkit
		// modules do change between runs at the same version.
		"GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",goindex=0", ","),
	), nil
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// goCmd runs the go command in dir with env and returns its standard
// output; a failure carries the command's output.
func goCmd(dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// writeModule writes a module example.com/name in dir with the given
// files besides go.mod.
func writeModule(dir, name string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files["go.mod"] = "module example.com/" + name + "\n\ngo 1.25.0\n"
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// run fetches, tidies, builds and runs the consumer in dir and returns its
// module count and that of a module needing only its framework and driver.
func (c consumer) run(dir, version string, env []string) (count, alone int, err error) {
	if err := writeModule(dir, c.dirName(), map[string]string{"main.go": c.Main, "replayed.go": replayedSource}); err != nil {
		return 0, 0, err
	}
	get := []string{"get"}
	for _, m := range c.Modules {
		get = append(get, repoPath+m+"@"+version)
	}
	if _, err := goCmd(dir, env, get...); err != nil {
		return 0, 0, err
	}
	if _, err := goCmd(dir, env, "mod", "tidy"); err != nil {
		return 0, 0, err
	}
	if _, err := goCmd(dir, env, "build", "-o", "consumer", "."); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "consumer"))
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("running the consumer: %w\n%s", err, out)
	}
	all, err := goCmd(dir, env, "list", "-m", "all")
	if err != nil {
		return 0, 0, err
	}
	lines := strings.Split(strings.TrimSpace(all), "\n")
	for _, l := range lines {
		for _, f := range forbidden {
			if strings.Contains(strings.ToLower(l), f) {
				return 0, 0, fmt.Errorf("go list -m all holds %q (matches %q): a test-only dependency leaks to users", l, f)
			}
		}
	}

	// The same framework and driver, at the versions the consumer got,
	// with nothing of idemkit.
	adir := dir + "-alone"
	var imports strings.Builder
	aget := []string{"get"}
	if len(c.Alone) > 0 {
		listed, err := goCmd(dir, env, append([]string{"list", "-f", "{{.Module.Path}}@{{.Module.Version}}"}, c.Alone...)...)
		if err != nil {
			return 0, 0, err
		}
		aget = append(aget, strings.Fields(listed)...)
	}
	for _, p := range c.Alone {
		fmt.Fprintf(&imports, "\t_ %q\n", p)
	}
	main := "package main\n\nfunc main() {}\n"
	if imports.Len() > 0 {
		main = "package main\n\nimport (\n" + imports.String() + ")\n\nfunc main() {}\n"
	}
	if err := writeModule(adir, c.dirName()+"-alone", map[string]string{"main.go": main}); err != nil {
		return 0, 0, err
	}
	if len(aget) > 1 {
		if _, err := goCmd(adir, env, aget...); err != nil {
			return 0, 0, err
		}
	}
	if _, err := goCmd(adir, env, "mod", "tidy"); err != nil {
		return 0, 0, err
	}
	aall, err := goCmd(adir, env, "list", "-m", "all")
	if err != nil {
		return 0, 0, err
	}
	return len(lines), len(strings.Split(strings.TrimSpace(aall), "\n")), nil
}

// vetPublished gets every published module from the proxy into one fresh
// module and runs go vet on all their packages, tests included, with
// -mod=readonly: a test file that imports a module its go.mod does not
// require (the workspace would hide that) fails here, as it would for a
// user running the module's tests.
func (ws *workspace) vetPublished(dir, version string, env []string) error {
	order, err := ws.published()
	if err != nil {
		return err
	}
	if err := writeModule(dir, "vet", map[string]string{}); err != nil {
		return err
	}
	get := []string{"get"}
	getTests := []string{"get", "-t"}
	vet := []string{"vet", "-mod=readonly"}
	for _, m := range order {
		get = append(get, m.Path+"@"+version)
		getTests = append(getTests, m.Path+"/...@"+version)
		vet = append(vet, m.Path+"/...")
	}
	if _, err := goCmd(dir, env, get...); err != nil {
		return err
	}
	graph := func() (map[string]bool, error) {
		out, err := goCmd(dir, env, "list", "-m", "-f", "{{.Path}}", "all")
		paths := map[string]bool{}
		for _, p := range strings.Fields(out) {
			paths[p] = true
		}
		return paths, err
	}
	before, err := graph()
	if err != nil {
		return err
	}
	// go get -t records the checksums the tests' imports need; it must not
	// have to add a module: every module a published test imports is in
	// the graph its go.mod files give.
	if _, err := goCmd(dir, env, getTests...); err != nil {
		return err
	}
	after, err := graph()
	if err != nil {
		return err
	}
	var added []string
	for p := range after {
		if !before[p] {
			added = append(added, p)
		}
	}
	if len(added) > 0 {
		return fmt.Errorf("the published modules' tests import modules their go.mod files do not require: %v", added)
	}
	if _, err := goCmd(dir, env, vet...); err != nil {
		return fmt.Errorf("published modules as a dependency: %w", err)
	}
	return nil
}
