package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
)

const usage = `usage: idemctl <command> [flags]

commands:
  inspect   show a record's metadata (state, fingerprint, status, sizes, created, expires)
  delete    delete a record, so that its key runs the handler again (-force for a pending claim)
  prune     delete expired records (Postgres; Redis expires its records itself)
  check     ask the store whether it can serve (reachable, safe settings, schema version)

Run "idemctl <command> -h" for a command's flags. Servers: IDEMKIT_REDIS_URL, IDEMKIT_POSTGRES_URL.
`

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// options are the flags every command takes.
type options struct {
	store      string
	json       bool
	timeout    time.Duration
	scope      string
	key        string
	keyHash    string
	secretEnv  string
	force      bool
	prefix     string
	hotPrefix  string
	pgSchema   string
	pgTable    string
	needKey    bool
	getenv     func(string) string
	stdout     io.Writer
	stderr     io.Writer
	pruneBatch int
}

// run is idemctl with its arguments, output streams and environment as
// parameters; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd := args[0]
	o := &options{getenv: getenv, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("idemctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.store, "store", "", "the store: "+storeNames+" (required)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on the whole command")
	fs.StringVar(&o.prefix, "redis-prefix", redisstore.DefaultPrefix, "key prefix of the redis store")
	fs.StringVar(&o.hotPrefix, "hot-prefix", "idem:hot:", "key prefix of the tiered store's Redis tier")
	fs.StringVar(&o.pgSchema, "pg-schema", "", "schema of the Postgres table (default: the connection's search_path)")
	fs.StringVar(&o.pgTable, "pg-table", "", "name of the Postgres table (default idempotency_keys)")
	switch cmd {
	case "inspect", "delete":
		o.needKey = true
		fs.StringVar(&o.scope, "scope", "", "the scope the service's scope function returns for the client (empty without one)")
		fs.StringVar(&o.key, "key", "", "the client's key: the Idempotency-Key header's value, quoted or not, or an Engine.Do call's Key")
		fs.StringVar(&o.keyHash, "key-hash", "", "the storage key itself (the digest that logs and traces show), instead of -scope and -key")
		fs.StringVar(&o.secretEnv, "hmac-secret-env", "", "name of an environment variable holding the service's core.WithHMACSecret secret")
		if cmd == "delete" {
			fs.BoolVar(&o.force, "force", false, "delete a pending claim too (its handler may still be running)")
		}
	case "prune":
		fs.IntVar(&o.pruneBatch, "batch", 0, "rows per DELETE (default: pgxstore's)")
	case "check":
	default:
		fmt.Fprintf(stderr, "idemctl: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "idemctl %s: unexpected arguments %q\n", cmd, fs.Args())
		return exitUsage
	}
	if o.store == "" {
		fmt.Fprintf(stderr, "idemctl %s: -store is required (%s)\n", cmd, storeNames)
		return exitUsage
	}
	if o.timeout <= 0 {
		fmt.Fprintf(stderr, "idemctl %s: -timeout %v: want a positive duration\n", cmd, o.timeout)
		return exitUsage
	}
	if o.pruneBatch < 0 {
		fmt.Fprintf(stderr, "idemctl %s: -batch %d: want a positive number of rows (0: pgxstore's default)\n", cmd, o.pruneBatch)
		return exitUsage
	}
	var key string
	if o.needKey {
		var err error
		if key, err = o.storageKey(); err != nil {
			fmt.Fprintf(stderr, "idemctl %s: %v\n", cmd, err)
			return exitUsage
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	st, closeStore, err := openStore(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "idemctl %s: %v\n", cmd, err)
		return exitUsage
	}
	defer closeStore()
	switch cmd {
	case "inspect":
		err = o.inspect(ctx, st, key)
	case "delete":
		err = o.delete(ctx, st, key)
	case "prune":
		err = o.prune(ctx, st)
	case "check":
		err = o.check(ctx, st)
	}
	if err != nil {
		fmt.Fprintf(stderr, "idemctl %s: %v\n", cmd, err)
		return exitFail
	}
	return exitOK
}

// storageKey returns the key the store holds, from -key-hash or from
// -scope, -key and the secret.
func (o *options) storageKey() (string, error) {
	switch {
	case o.keyHash != "" && (o.key != "" || o.scope != ""):
		return "", errors.New("-key-hash is the storage key itself: give it instead of -key and -scope, not with them")
	case o.keyHash != "":
		return o.keyHash, nil
	case o.key == "":
		return "", errors.New("-key or -key-hash is required")
	}
	key := o.key
	if strings.HasPrefix(key, `"`) {
		// The header's value as sent, a Structured Field String: the engine
		// hashes the string inside the quotes, its escapes undone.
		k, err := core.ParseKey([]string{key}, true, len(key))
		if err != nil {
			return "", fmt.Errorf("-key %s: %w", key, err)
		}
		key = k
	}
	var secret []byte
	if o.secretEnv != "" {
		v := o.getenv(o.secretEnv)
		if v == "" {
			return "", fmt.Errorf("-hmac-secret-env: %s is not set", o.secretEnv)
		}
		secret = []byte(v)
	}
	return core.StorageKey(o.scope, key, secret), nil
}

// recordJSON is a record as -json prints it.
type recordJSON struct {
	Key         string     `json:"key"`
	State       string     `json:"state"`
	Fingerprint string     `json:"fingerprint"`
	Status      int        `json:"status,omitempty"`
	HeaderBytes int        `json:"header_bytes"`
	BodyBytes   int        `json:"body_bytes"`
	BodyOmitted bool       `json:"body_omitted"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func toJSON(info core.RecordInfo) recordJSON {
	r := recordJSON{Key: info.Key, State: string(info.State), Fingerprint: hex.EncodeToString(info.Fingerprint[:]),
		Status: info.Status, HeaderBytes: info.HeaderBytes, BodyBytes: info.BodyBytes, BodyOmitted: info.BodyOmitted}
	if !info.CreatedAt.IsZero() {
		t := info.CreatedAt.UTC()
		r.CreatedAt = &t
	}
	if !info.ExpiresAt.IsZero() {
		t := info.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r
}

func inspector(st core.Store) (core.Inspector, error) {
	in, ok := st.(core.Inspector)
	if !ok {
		return nil, fmt.Errorf("%T cannot inspect records (no core.Inspector)", st)
	}
	return in, nil
}

// lookup inspects key, with a message naming the key when it is absent.
func lookup(ctx context.Context, in core.Inspector, key string) (core.RecordInfo, error) {
	info, err := in.Inspect(ctx, key)
	if errors.Is(err, core.ErrNotFound) {
		return info, fmt.Errorf("no live record under storage key %s (never stored, expired, or released; check -scope, -key and the secret): %w", key, err)
	}
	return info, err
}

func (o *options) inspect(ctx context.Context, st core.Store, key string) error {
	in, err := inspector(st)
	if err != nil {
		return err
	}
	info, err := lookup(ctx, in, key)
	if err != nil {
		return err
	}
	if o.json {
		return o.writeJSON(toJSON(info))
	}
	o.writeRecord(info)
	return nil
}

func (o *options) delete(ctx context.Context, st core.Store, key string) error {
	in, err := inspector(st)
	if err != nil {
		return err
	}
	info, err := lookup(ctx, in, key)
	if err != nil {
		return err
	}
	if info.State == core.RecordPending && !o.force {
		return fmt.Errorf("the record under %s is a pending claim: its handler may still be running, and deleting it lets a retry run the handler a second time; pass -force to delete it anyway", key)
	}
	if err := in.Delete(ctx, key); err != nil {
		return err
	}
	if o.json {
		return o.writeJSON(struct {
			Deleted recordJSON `json:"deleted"`
		}{toJSON(info)})
	}
	fmt.Fprintf(o.stdout, "deleted the %s record under %s: the next request with its key runs the handler\n", info.State, key)
	return nil
}

func (o *options) prune(ctx context.Context, st core.Store) error {
	var pg *pgxstore.Store
	switch s := st.(type) {
	case *pgxstore.Store:
		pg = s
	case *tieredStore:
		pg = s.pg
	}
	if pg == nil {
		note := "Redis expires every record by its TTL: nothing to prune"
		if o.store == "memory" {
			note = "the memory store drops expired records itself: nothing to prune"
		}
		if o.json {
			return o.writeJSON(map[string]any{"store": o.store, "deleted": 0, "note": note})
		}
		fmt.Fprintln(o.stdout, note)
		return nil
	}
	n, err := pg.Prune(ctx)
	if err != nil {
		return fmt.Errorf("pruned %d expired records, then: %w", n, err)
	}
	if o.json {
		return o.writeJSON(map[string]any{"store": o.store, "deleted": n})
	}
	fmt.Fprintf(o.stdout, "deleted %d expired records (and expired steps)\n", n)
	return nil
}

func (o *options) check(ctx context.Context, st core.Store) error {
	status, detail := "ok", ""
	var err error
	if c, ok := st.(core.Checker); ok {
		err = c.Check(ctx)
	}
	switch {
	case err == nil:
	case errors.Is(err, core.ErrDegraded):
		status, detail, err = "degraded", err.Error(), nil
	default:
		status, detail = "down", explain(err)
	}
	if o.json {
		if jerr := o.writeJSON(map[string]any{"store": o.store, "status": status, "detail": detail}); jerr != nil {
			return jerr
		}
	} else {
		tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "STORE\tSTATUS\tDETAIL\n%s\t%s\t%s\n", o.store, status, orDash(detail))
		tw.Flush()
	}
	if err != nil {
		return fmt.Errorf("the %s store cannot serve (status down)", o.store)
	}
	return nil
}

// explain adds what to do to the errors a check reports.
func explain(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, pgxstore.ErrSchema):
		return msg + " — apply the migrations (golang-migrate, module migrations) or pgxstore.EnsureSchema"
	case errors.Is(err, redisstore.ErrEvictionPolicy):
		return msg + " — set maxmemory-policy noeviction"
	case errors.Is(err, redisstore.ErrPolicyUnknown):
		return msg + " — make sure the policy is noeviction"
	}
	return msg
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (o *options) writeJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (o *options) writeRecord(info core.RecordInfo) {
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "- (not kept by this store)"
		}
		d := time.Until(t).Round(time.Second)
		if d > 0 {
			return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
		}
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
	}
	status, sizes := "-", "-"
	if info.State == core.RecordCompleted {
		status = fmt.Sprint(info.Status)
		sizes = fmt.Sprintf("headers %d B, body %d B", info.HeaderBytes, info.BodyBytes)
		if info.BodyOmitted {
			sizes += " (body over the limit: delivered, not stored)"
		}
	}
	rows := [][2]string{
		{"KEY", info.Key},
		{"STATE", string(info.State)},
		{"FINGERPRINT", hex.EncodeToString(info.Fingerprint[:])},
		{"STATUS", status},
		{"SIZE", sizes},
		{"CREATED", when(info.CreatedAt)},
		{"EXPIRES", when(info.ExpiresAt)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
}
