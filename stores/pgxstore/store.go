package pgxstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/migrations"
)

var _ core.Store = (*Store)(nil)

// DefaultPruneBatch is the number of rows one [Store.Prune] statement
// deletes at most.
const DefaultPruneBatch = 1000

// DefaultTimeout bounds a store call whose context has no deadline; see
// [WithTimeout].
const DefaultTimeout = 5 * time.Second

// Option configures a [Store] or [EnsureSchema].
type Option func(*config)

type config struct {
	schema     string
	table      string
	pruneBatch int
	onPrune    func(deleted int64, err error)
	timeout    time.Duration
	tolerance  time.Duration
	txOptions  pgx.TxOptions
	// stepRetention: how long a recorded step is kept.
	stepRetention time.Duration
}

// WithTimeout bounds every Claim, Complete, Release and Renew whose context
// carries no deadline [DefaultTimeout], so that a hung server or an
// exhausted pool ends in [core.ErrStoreUnavailable] (503) even though the
// engine sets no deadline of its own by default (see
// [core.WithStoreTimeout]). A context that has a deadline is used as it is.
// d = 0 disables the bound; a negative d is invalid (New panics).
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// bound returns ctx with the store's default deadline when it has none.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.timeout <= 0 {
		return ctx, func() {}
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.timeout)
}

// DefaultLeaseTolerance is how much longer than a claim's own lease the
// remaining lease of another holder may be before the claim judges that
// lease impossible; see [WithLeaseTolerance].
const DefaultLeaseTolerance = time.Hour

// WithLeaseTolerance sets how far a pending record's remaining lease may
// exceed the lease of a claim of its key before that claim counts the
// record as lapsed and takes it over [DefaultLeaseTolerance].
//
// A holder's lease never ends later than its own lease length after the
// last Claim or Renew (both judged by the server's now()), so a record
// whose lease ends, say, in the year 3000 was not written by a live holder
// (a hand edit, a bug, a clock set far ahead when it was written); without
// a bound it would answer "in flight" until then. Instances that share a
// table may configure different leases (a rolling change of
// [core.WithLease]): the tolerance must exceed the largest difference
// between them, or a claim with the shorter lease could take over a live
// holder with the longer one. d must be positive (New panics otherwise).
func WithLeaseTolerance(d time.Duration) Option {
	return func(c *config) { c.tolerance = d }
}

// WithTable sets the table name [default "idempotency_keys"]. The name is
// always quoted, never interpolated as SQL. An empty name is invalid (New
// and EnsureSchema panic).
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// WithSchema sets the schema that holds the table. By default the table name
// is unqualified and resolved through the connection's search_path. The
// name is always quoted, never interpolated as SQL.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// WithPruneBatch sets how many rows one statement of [Store.Prune] deletes
// at most [DefaultPruneBatch]. n must be positive (New panics otherwise).
func WithPruneBatch(n int) Option {
	return func(c *config) { c.pruneBatch = n }
}

// WithPruneReport sets a function that [Store.StartPruner] calls after every
// run with the number of rows deleted and the error, if any. A nil fn is
// the default: runs are not reported.
func WithPruneReport(fn func(deleted int64, err error)) Option {
	return func(c *config) { c.onPrune = fn }
}

func newConfig(opts []Option) config {
	c := config{table: migrations.DefaultTable, pruneBatch: DefaultPruneBatch, timeout: DefaultTimeout, tolerance: DefaultLeaseTolerance, stepRetention: DefaultStepRetention}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if msg := c.validate(); msg != "" {
		panic(msg)
	}
	return c
}

// validate returns the panic message of the first invalid option value,
// or "": the messages name the option and the value, as memstore's do.
func (c config) validate() string {
	switch {
	case c.table == "":
		return `pgxstore: WithTable(""): want a table name`
	case c.pruneBatch < 1:
		return fmt.Sprintf("pgxstore: WithPruneBatch(%d): want a positive count", c.pruneBatch)
	case c.timeout < 0:
		return fmt.Sprintf("pgxstore: WithTimeout(%v): want a duration of 0 (no bound) or more", c.timeout)
	case c.tolerance <= 0:
		return fmt.Sprintf("pgxstore: WithLeaseTolerance(%v): want a positive duration", c.tolerance)
	case c.stepRetention <= 0:
		return fmt.Sprintf("pgxstore: WithStepRetention(%v): want a positive duration", c.stepRetention)
	}
	return ""
}

// stepsIdent returns the quoted, possibly schema-qualified name of the
// steps table (migration 3): the table's name plus "_steps".
func (c config) stepsIdent() string {
	if c.schema == "" {
		return pgx.Identifier{c.table + "_steps"}.Sanitize()
	}
	return pgx.Identifier{c.schema, c.table + "_steps"}.Sanitize()
}

// ident returns the quoted, possibly schema-qualified name of the table.
func (c config) ident() string {
	if c.schema == "" {
		return pgx.Identifier{c.table}.Sanitize()
	}
	return pgx.Identifier{c.schema, c.table}.Sanitize()
}

// Store is a [core.Store] on PostgreSQL through a pgx v5 pool. Create it
// with [New]; it is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	cfg  config

	claimSQL, completeSQL, releaseSQL, renewSQL, pruneSQL, checkSQL string
	completeTxSQL                                                   string
	stepLookupSQL, stepRecordSQL, pruneStepsSQL                     string
}

// New returns a store on pool. The table must exist: apply the migrations
// with golang-migrate or call [EnsureSchema] first. New panics if pool is
// nil or an option's value is invalid (each option's doc says which are),
// naming the option and the value.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	if pool == nil {
		panic("pgxstore: New called with a nil *pgxpool.Pool")
	}
	s := &Store{pool: pool, cfg: newConfig(opts)}
	t := s.cfg.ident()
	s.claimSQL = fmt.Sprintf(claimSQL, t, claimTakeover())
	s.completeSQL = fmt.Sprintf(completeSQL, t)
	s.completeTxSQL = completeTxSQL(s.completeSQL)
	s.releaseSQL = fmt.Sprintf(releaseSQL, t)
	s.renewSQL = fmt.Sprintf(renewSQL, t)
	s.pruneSQL = fmt.Sprintf(pruneSQL, t)
	steps := s.cfg.stepsIdent()
	s.checkSQL = fmt.Sprintf(checkSQL, t, steps)
	s.stepLookupSQL = fmt.Sprintf(stepLookupSQL, t, steps)
	s.stepRecordSQL = fmt.Sprintf(stepRecordSQL, t, steps)
	s.pruneStepsSQL = fmt.Sprintf(pruneStepsSQL, steps)
	return s
}

// claimSQL decides a claim in one statement. $1 key, $2 fingerprint,
// $3 token, $4 lease in microseconds, $5 the lease plus the lease
// tolerance in microseconds.
//
//   - cur reads the live record (expires_at > now()) from the statement's
//     snapshot, unless that record is pending and either held with $3 (the
//     same claim sent again) or leased implausibly far ahead (beyond $5, see
//     [WithLeaseTolerance]). When there is one, nothing is written and cur
//     alone answers: replay, mismatch or in flight.
//   - Otherwise up inserts a pending record. If a row is in the way (an
//     expired one, one cur left out, or one a concurrent statement inserted
//     or took over after our snapshot was taken, which cur cannot see), ON
//     CONFLICT locks its newest committed version and the unconditional DO
//     UPDATE either takes it over (expired by now() or leased beyond $5),
//     extends its lease (held with $3 under the same fingerprint), or
//     rewrites it unchanged;
//     RETURNING then shows the newest version either way. So the statement
//     always yields exactly one row and one decision, with no
//     read-then-write window.
//
// A claim re-sent with the token that holds the key (a client library
// re-sends a statement whose reply it lost) finds its own record: the lease
// is extended to $4 from now and the claim reports acquired again, never a
// second holder nor "in flight" to its own sender.
//
// The row comes back as stored, with the statement's now(), and Claim
// decides in Go (acquired, same fingerprint, time left): PostgreSQL sets up
// every expression and plan node of a statement again at each execution,
// and deciding in SQL cost a replay measurable throughput (see
// docs/performance.md). The one expression kept, in cur, spares a mismatch
// the transfer of a body it will not use (a row returned by up's rare
// conflict path may still carry one).
//
// The token is unique per attempt, so "the row holds $3 and is pending"
// means this statement (or an earlier copy of it) acquired it.
// lease_expires_at is not returned: the table's CHECK constraint keeps it
// equal to expires_at while a row is pending, and NULL once it is
// completed.
const claimSQL = `WITH cur AS (
	SELECT fingerprint, state, lease_token, status, headers,
		CASE WHEN fingerprint = $2 THEN body END, body_omitted, expires_at
	FROM %[1]s
	WHERE key = $1 AND expires_at > now()
		AND (state <> 'pending' OR lease_token <> $3 AND expires_at <= now() + $5::bigint * interval '1 microsecond')
), up AS (
	INSERT INTO %[1]s AS r (key, fingerprint, state, lease_token, lease_expires_at, created_at, expires_at)
	SELECT $1, $2, 'pending', $3,
		now() + $4::bigint * interval '1 microsecond', now(),
		now() + $4::bigint * interval '1 microsecond'
	WHERE NOT EXISTS (SELECT FROM cur)
	ON CONFLICT (key) DO UPDATE SET %[2]s
	RETURNING r.fingerprint, r.state, r.lease_token, r.status, r.headers, r.body, r.body_omitted, r.expires_at
)
SELECT *, now() FROM up
UNION ALL
SELECT *, now() FROM cur`

// claimColumns are all the columns of the table, set by a takeover, each
// with the condition under which it takes the proposed value (and keeps
// its own otherwise); see claimTakeover.
var claimColumns = []struct{ name, when string }{
	{"fingerprint", takeoverStale},
	{"state", takeoverExpired},
	{"lease_token", takeoverStale},
	{"lease_expires_at", takeoverAny},
	{"status", takeoverExpired},
	{"headers", takeoverExpired},
	{"body", takeoverExpired},
	{"body_omitted", takeoverExpired},
	{"created_at", takeoverStale},
	{"completed_at", takeoverExpired},
	{"expires_at", takeoverAny},
	{"completed_token", takeoverExpired},
}

// The conditions of a takeover, on the existing row r. A row is taken over
// when it has expired by now(), when it is pending with a lease beyond $5
// (lease_expires_at is NULL on completed rows, so the test needs no state),
// or when it is pending with the proposed token and fingerprint (the same
// claim again: only its lease changes). Each column tests only the cases
// in which its value can differ from the proposed one, because PostgreSQL
// sets up every expression again at each execution, a replay's included:
// a pending row already holds 'pending', no response, no completed_at and
// no completed_token (the CHECK constraints), and a re-sent claim's row
// holds the same token, fingerprint and (kept) created_at.
const (
	takeoverExpired = "r.expires_at <= now()"
	takeoverStale   = takeoverExpired + " OR r.lease_expires_at > now() + $5::bigint * interval '1 microsecond'"
	takeoverAny     = takeoverStale + " OR r.lease_token = excluded.lease_token AND r.fingerprint = excluded.fingerprint"
)

// claimTakeover renders the DO UPDATE SET list from claimColumns.
func claimTakeover() string {
	parts := make([]string, len(claimColumns))
	for i, c := range claimColumns {
		parts[i] = fmt.Sprintf("%[1]s = CASE WHEN %[2]s THEN excluded.%[1]s ELSE r.%[1]s END", c.name, c.when)
	}
	return strings.Join(parts, ",\n\t\t")
}

// claimRow is one row of claimSQL. The nullable columns scan into pgtype
// values and the row into one struct, so that a claim allocates one
// destination and pgx plans each column without wrapping a pointer to a
// pointer.
type claimRow struct {
	fp, headers, body []byte
	state             string
	token             pgtype.Text // NULL once completed
	status            pgtype.Int4 // NULL while pending
	omitted           bool
	expires, now      pgtype.Timestamptz
}

// completeSQL: $1 key, $2 token, $3 status, $4 headers, $5 body,
// $6 body omitted, $7 ttl in microseconds.
//
// It completes the live pending row held with $2, keeping $2 as the
// row's completed_token, and matches as well the live row that $2 already
// completed, which it leaves as it is (every CASE keeps the stored value):
// a Complete retried after its reply was lost reports success, and never
// overwrites the response or extends the retention. Both cases are one
// WHERE, so a retry that waits on the row lock of a first Complete still in
// progress is judged, under READ COMMITTED, on the row that first Complete
// committed, and succeeds too.
const completeSQL = `UPDATE %s SET
	state = 'completed', lease_token = NULL, lease_expires_at = NULL, completed_token = $2,
	status = CASE WHEN state = 'pending' THEN $3 ELSE status END,
	headers = CASE WHEN state = 'pending' THEN $4 ELSE headers END,
	body = CASE WHEN state = 'pending' THEN $5 ELSE body END,
	body_omitted = CASE WHEN state = 'pending' THEN $6 ELSE body_omitted END,
	completed_at = CASE WHEN state = 'pending' THEN now() ELSE completed_at END,
	expires_at = CASE WHEN state = 'pending' THEN now() + $7::bigint * interval '1 microsecond' ELSE expires_at END
WHERE key = $1 AND expires_at > now()
	AND (state = 'pending' AND lease_token = $2 OR state = 'completed' AND completed_token = $2)`

// releaseSQL deletes the caller's pending row, lapsed or not (nobody else
// holds it), and tells whether the lease was still live.
const releaseSQL = `DELETE FROM %s
WHERE key = $1 AND lease_token = $2 AND state = 'pending'
RETURNING expires_at > now()`

// renewSQL: $1 key, $2 token, $3 lease in microseconds.
const renewSQL = `UPDATE %s SET
	lease_expires_at = now() + $3::bigint * interval '1 microsecond',
	expires_at = now() + $3::bigint * interval '1 microsecond'
WHERE key = $1 AND lease_token = $2 AND state = 'pending' AND expires_at > now()`

// pruneSQL deletes at most $1 expired rows. The rows are locked with SKIP
// LOCKED, so a prune never waits for a claim (or another prune) and a claim
// waits at most for one short batch; ctid = ANY(ARRAY(...)) gives a TID scan.
const pruneSQL = `DELETE FROM %[1]s
WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM %[1]s
	WHERE expires_at <= now()
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)) AND expires_at <= now()`

// Claim implements [core.Store.Claim] in one statement; see the package
// documentation.
func (s *Store) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if err := checkText("key", req.Key); err != nil {
		return core.Claim{}, fmt.Errorf("pgxstore: claim: %w", err)
	}
	if err := checkText("token", string(req.Token)); err != nil {
		return core.Claim{}, fmt.Errorf("pgxstore: claim: %w", err)
	}
	// The longest lease a live holder can plausibly have left (see
	// WithLeaseTolerance); two durations in microseconds never overflow.
	plausible := micros(req.Lease) + micros(s.cfg.tolerance)
	var r claimRow
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.claimSQL, req.Key, req.Fingerprint[:], string(req.Token), micros(req.Lease), plausible).
			Scan(&r.fp, &r.state, &r.token, &r.status, &r.headers, &r.body, &r.omitted, &r.expires, &r.now)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		// Cannot happen: the statement yields one row by construction.
		return core.Claim{}, fmt.Errorf("pgxstore: claim: %w: the claim statement returned no decision", core.ErrStoreUnavailable)
	}
	if err != nil {
		return core.Claim{}, wrap("claim", err)
	}
	if !r.expires.Valid || r.expires.InfinityModifier != pgtype.Finite || !r.now.Valid {
		return core.Claim{}, fmt.Errorf("pgxstore: claim: %w: row without a finite expiry", core.ErrCorruptRecord)
	}
	same := bytes.Equal(r.fp, req.Fingerprint[:])
	acquired := r.state == "pending" && same && r.token.Valid && r.token.String == string(req.Token)
	// Time left on the record, measured against the statement's own now():
	// expires_at is the lease's end while the row is pending (see claimSQL)
	// and the retention's once it is completed.
	remaining := max(0, r.expires.Time.Sub(r.now.Time).Truncate(time.Microsecond))
	switch {
	case acquired:
		return core.Claim{Status: core.ClaimAcquired}, nil
	case !same:
		return core.Claim{Status: core.ClaimMismatch}, nil
	case r.state == "completed":
		resp, err := decode(r.status, r.headers, r.body, r.omitted)
		if err != nil {
			return core.Claim{}, fmt.Errorf("pgxstore: claim: %w", err)
		}
		return core.Claim{Status: core.ClaimReplay, Response: resp, TTL: remaining}, nil
	default:
		// Never more than the claim's own lease: a holder may have a longer
		// one (up to the tolerance), but a retry after this long learns no
		// less.
		return core.Claim{Status: core.ClaimInFlight, RetryAfter: min(remaining, req.Lease)}, nil
	}
}

// Complete implements [core.Store.Complete]: one UPDATE guarded by the
// token and the live record, which completes the pending record held with
// token, or finds the record token already completed and leaves it as it is
// (a retried Complete, nil error).
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("pgxstore: complete: nil response")
	}
	if resp.Status < 100 || resp.Status > 599 {
		return fmt.Errorf("pgxstore: complete: status %d outside 100-599", resp.Status)
	}
	headers := codec.AppendHeader(make([]byte, 0, 64), resp.Header)
	body := resp.Body
	if body == nil || resp.BodyOmitted {
		body = []byte{} // NOT NULL: nil would be sent as NULL
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var tag pgconn.CommandTag
	err := retry(ctx, func() (err error) {
		tag, err = s.pool.Exec(ctx, s.completeSQL, key, string(token), int32(resp.Status), headers, body, resp.BodyOmitted, micros(ttl))
		return err
	})
	if err != nil {
		return wrap("complete", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgxstore: complete: %w", core.ErrLeaseLost)
	}
	return nil
}

// Release implements [core.Store.Release]: one DELETE guarded by the token
// and the pending state. A lapsed lease is reported as lost (the row, dead
// anyway, is deleted).
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var live bool
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.releaseSQL, key, string(token)).Scan(&live)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgxstore: release: %w", core.ErrLeaseLost)
	}
	if err != nil {
		return wrap("release", err)
	}
	if !live {
		return fmt.Errorf("pgxstore: release: %w: the lease had lapsed", core.ErrLeaseLost)
	}
	return nil
}

// Renew implements [core.Store.Renew]: one UPDATE guarded by the token, the
// pending state and the live lease.
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var tag pgconn.CommandTag
	err := retry(ctx, func() (err error) {
		tag, err = s.pool.Exec(ctx, s.renewSQL, key, string(token), micros(lease))
		return err
	})
	if err != nil {
		return wrap("renew", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgxstore: renew: %w", core.ErrLeaseLost)
	}
	return nil
}

func decode(status pgtype.Int4, headers, body []byte, omitted bool) (*core.Response, error) {
	if !status.Valid || headers == nil {
		return nil, fmt.Errorf("%w: completed row without a response", core.ErrCorruptRecord)
	}
	h, n, err := codec.DecodeHeader(headers)
	if err != nil {
		return nil, err
	}
	if n != len(headers) {
		return nil, fmt.Errorf("%w: %d trailing header bytes", core.ErrCorruptRecord, len(headers)-n)
	}
	if h == nil {
		h = http.Header{}
	}
	if body == nil {
		body = []byte{}
	}
	return &core.Response{Status: int(status.Int32), Header: h, Body: body, BodyOmitted: omitted}, nil
}

// micros converts d to whole microseconds, the resolution of timestamptz.
func micros(d time.Duration) int64 { return d.Microseconds() }

// checkText rejects strings PostgreSQL cannot store in a text column.
func checkText(what, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s is not valid UTF-8 text without NUL bytes", what)
	}
	return nil
}

// retry runs fn again, at most twice, after a serialization failure or a
// deadlock: the failed statement was rolled back, so running it again is
// safe. Other errors and a done context end it.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = fn(); err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// wrap adds the operation to err and, when the backend could not answer,
// [core.ErrStoreUnavailable]; when the table or a column is missing,
// [ErrSchema].
func wrap(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("pgxstore: %s: %w: %w", op, core.ErrStoreUnavailable, err)
	}
	if schemaError(err) {
		return fmt.Errorf("pgxstore: %s: %w: %w", op, ErrSchema, err)
	}
	return fmt.Errorf("pgxstore: %s: %w", op, err)
}

// unavailable reports whether err means the database could not answer, as
// opposed to a statement it refused (a missing table, a constraint):
// every error that does not come from the server (connection refused or
// reset, pool closed or exhausted until the deadline, context cancelled),
// and the server's connection (08), transaction rollback (40: serialization
// failure, deadlock), insufficient resources (53), operator intervention
// (57: admin shutdown, cancel, starting up), system (58) and internal (XX)
// classes, read-only transactions (25006), lock timeouts (55P03) and idle or
// transaction timeouts (25P03, 25P04).
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	if len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57", "58", "XX":
			return true
		}
	}
	switch pgErr.Code {
	case "25006", "55P03", "25P03", "25P04":
		return true
	}
	return false
}
