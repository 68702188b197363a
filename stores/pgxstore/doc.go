// Package pgxstore is the PostgreSQL store of idemkit: a [core.Store] on a
// pgx v5 connection pool, for deployments that want idempotency records to
// be durable and shared by every instance.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	store := pgxstore.New(pool, pgxstore.WithSchema("idem"))
//	engine := core.New(store)
//
// # Guarantees
//
//   - Claim is one SQL statement, one round trip. It inserts a pending record,
//     takes over an expired record or a pending one whose lease lapsed, or
//     returns the live record (replay, mismatch, in flight) — atomically, with
//     no read-then-write window. Under any number of concurrent claims of one
//     key, exactly one acquires it.
//   - Complete, Release and Renew are one statement each, a compare-and-set on
//     the fencing token of a live pending record: a holder whose lease lapsed
//     (and was perhaps taken over) gets an error wrapping [core.ErrLeaseLost]
//     and changes nothing. Completing is idempotent for its holder: a
//     completed row keeps the token that completed it (completed_token), so
//     a Complete retried with that token after a lost reply returns nil and
//     leaves the record as it is.
//   - Time is PostgreSQL's: leases, TTLs and expiry are judged by now() on the
//     server, never by the application's clock. Expired records count as
//     absent everywhere; [Store.Prune] deletes them.
//   - Stored bytes come back exactly: the body is bytea (binary, NUL bytes,
//     invalid UTF-8, empty, large), headers keep every value in order (the
//     [codec.AppendHeader] encoding).
//   - A backend failure (connection refused or reset, pool exhausted until
//     the context deadline, a cancelled context, serialization failure,
//     deadlock, read-only transaction, admin shutdown, insufficient
//     resources) returns an error wrapping both [core.ErrStoreUnavailable]
//     and the driver's error, so the engine answers 503 and errors.As still
//     finds the *pgconn.PgError. Serialization failures and deadlocks are
//     retried twice first. A statement the server refuses for another
//     reason (a missing table, say) is returned wrapped but not as
//     unavailable. pgx.ErrNoRows never escapes.
//   - In transactional mode ([core.WithTransactions]) the handler's writes
//     in this database and the stored response commit in one transaction:
//     exactly-once for those writes across crashes too (see below).
//   - [Store.Check] ([core.Checker]) tells a readiness probe whether the
//     server answers and the table is at [SchemaVersion].
//   - A call whose context has no deadline gets one of [DefaultTimeout]
//     ([WithTimeout]): the engine sets none by default, and a hung server
//     or an exhausted pool must still end in a 503.
//
// # Transactional mode
//
// With [core.WithTransactions], the Engine runs each guarded handler in a
// transaction of this store (the Store implements [core.Transactor]), so
// that the handler's writes in the same database and the stored response
// commit together:
//
//	engine := core.New(pgxstore.New(pool), core.WithTransactions(true))
//	…
//	func pay(w http.ResponseWriter, r *http.Request) {
//	    tx, _ := pgxstore.Tx(r.Context())
//	    tx.Exec(r.Context(), "INSERT INTO payments …")
//	    w.WriteHeader(http.StatusCreated)
//	}
//
// The claim is committed first, with its lease and token, as without
// transactions; [Store.Begin] then opens the transaction ([WithTxOptions])
// and [Tx] hands it to the handler, which writes on it and neither commits
// nor rolls it back. Once the handler has returned a response to store, the
// Engine completes the record in the transaction ([Store.CompleteTx]) and
// commits; a response it releases rolls the transaction back. The
// completing UPDATE is the Complete statement judged at
// statement_timestamp() instead of now() (the transaction's start): it
// matches only the record still pending with the claim's token under a
// lease live at that moment, so a holder whose lease lapsed during the
// handler — and was perhaps taken over — completes nothing, gets
// [core.ErrLeaseLost] and rolls back its writes. Lease renewals run on
// other connections meanwhile; the record row is locked only from the
// completing statement to the commit. A crash anywhere before the commit
// leaves a pending claim, which lapses after one lease, and no writes: the
// retry runs the handler once. A crash after it leaves a completed record,
// which the retry replays. docs/contract.md has the table of crash points.
// Each request in flight holds one pool connection for its transaction
// (and briefly another for each [Store.Step]), while claims and renewals
// need connections of their own: size the pool above the handlers in
// flight, or a claim waits for a connection until its timeout (503).
//
// Code that manages its own transaction calls [Store.CompleteTx] (pgx) or
// [Store.CompleteSQLTx] (database/sql on pgx's stdlib) with the key and
// token of its claim ([core.HeldClaim]) before it commits. A later
// [Store.Complete] with the same token returns nil and leaves the record
// as CompleteTx stored it.
//
// # Recovery points
//
// [Store.Step] records a named step of the request the handler runs under,
// in the same transaction as the step's own writes; a retry after a crash
// finds the steps of the same request (same key and fingerprint) and
// resumes after the last one, Step returning each recorded payload without
// running its function again:
//
//	id, err := store.Step(ctx, "payment-created", func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
//	    … INSERT INTO payments … RETURNING id
//	})
//
// Steps are rows of the table's _steps table (migration 3), not columns of
// the record: a pending record whose lease lapsed counts as expired (a
// claim takes it over, the prune deletes it), while its steps must wait
// for the retry. Recording a step is fenced like a completion. Steps expire
// after [WithStepRetention]; [Store.Prune] deletes them.
//
// # The claim statement
//
// One statement with two common table expressions:
//
//	WITH cur AS (SELECT … FROM t WHERE key = $1 AND expires_at > now()),
//	up AS (
//	    INSERT INTO t AS r (…) SELECT $1, $2, 'pending', $3, now() + lease, …
//	    WHERE NOT EXISTS (SELECT FROM cur)
//	    ON CONFLICT (key) DO UPDATE SET
//	        col = CASE WHEN r.expires_at <= now() THEN excluded.col ELSE r.col END, …
//	    RETURNING r.…)
//	SELECT … FROM up UNION ALL SELECT … FROM cur
//
// When the statement's snapshot holds a live record, cur answers and nothing
// is written: a replay or a conflict is a plain index lookup. Otherwise the
// INSERT runs. Under READ COMMITTED a record inserted (or taken over) by a
// concurrent statement after our snapshot is invisible to cur, but ON
// CONFLICT sees and locks its newest committed version; the DO UPDATE has no
// WHERE, so it always yields that row: taken over when it has expired,
// rewritten unchanged when it is live. RETURNING therefore reports the
// winner's record and every claim gets a decision from the same statement.
// The claim acquired the key when the returned record is pending with the
// caller's token and fingerprint (tokens are unique per attempt). A Claim
// re-sent with the token that already holds the key, after a lost reply,
// is the same claim: cur leaves that record out, and the DO UPDATE extends
// its lease to the re-sent lease, so the claim reports acquired again. A
// mismatch is reported before an in-flight conflict.
//
// A pending record whose lease ends later than the claim's own lease plus
// [WithLeaseTolerance] [1 h] from now cannot belong to a live holder
// (Claim and Renew set a lease from now(), never further): cur leaves it
// out and the DO UPDATE takes it over, so a record leased until the year
// 3000 by a hand edit or a bug no longer answers "in flight" until then.
// An in-flight answer's RetryAfter is at most the claim's own lease. Keys and
// tokens are stored as text, so they must be valid UTF-8 without NUL bytes
// (the engine's hex digests always are); Claim refuses others with a plain
// error.
//
// # Schema
//
// The table comes from module github.com/idemkit/idemkit/migrations
// (golang-migrate files, embedded): key text primary key (the scoped key
// digest, never a raw client key), fingerprint bytea (32 bytes), state
// ('pending' or 'completed'), lease_token, lease_expires_at, status, headers
// and body (bytea), body_omitted, created_at, completed_at and expires_at,
// with CHECK constraints that make impossible rows impossible (a pending row
// carries a token and lease and no response; a completed row carries a
// status between 100 and 599, headers, a body and no lease), an index on
// expires_at for the prune, and a view <table>_json exposing bodies that are
// valid JSON as jsonb for operators (bytea stays the truth for replay).
// Migration 2 adds completed_token, the token that completed a row (NULL
// on pending rows and on rows completed before it); migration 3 the
// <table>_steps table of [Store.Step] (key, step name, fingerprint,
// payload, created_at, expires_at). The store's statements
// need the newest migration, [SchemaVersion]: apply it before deploying a
// store that needs it. [Store.Check] reports a missing or older table as
// [ErrSchema], as every statement the server refuses for that reason does.
// An older store still running on the migrated table works, except that it
// cannot take over an expired row a newer store completed (its takeover
// leaves completed_token set, which the CHECK refuses): that only happens
// when the retention is shorter than the rollout.
//
// [WithTable] and [WithSchema] choose the names; both are quoted as
// identifiers, never spliced into SQL. Apply the migrations with
// golang-migrate in production (the schema through the URL's search_path;
// a custom table name needs the files rendered as [EnsureSchema] does), or
// call [EnsureSchema] for quick starts and tests.
//
// # Pruning
//
// [Store.Prune] deletes expired rows in batches of [WithPruneBatch] rows
// (DELETE … WHERE ctid = ANY(ARRAY(SELECT ctid … LIMIT n FOR UPDATE SKIP
// LOCKED))), each a short transaction that skips rows a claim holds, so a
// prune of millions of rows never holds long locks. [Store.StartPruner] runs
// it periodically.
package pgxstore
