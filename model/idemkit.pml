/*
 * idemkit's claim protocol, one scoped key, in Promela (spin 6.5).
 *
 * What is modelled (docs/contract.md §3, core/store.go, core/engine.go,
 * core/background.go):
 *   - the store: one record (absent / pending with a holder token and a
 *     lease / completed with the completer's token), each operation one
 *     atomic step, as Claim, Complete, Release and Renew are atomic in
 *     every store; a lapsed lease counts as absent; Complete, Release and
 *     Renew are compare-and-set on the fencing token; a claim re-sent with
 *     the holder's own token is the same claim; Complete is idempotent for
 *     its holder; a completed record is never replaced;
 *   - time: leases are judged by the store's clock. A clock process takes
 *     a tick off a live pending lease at any moment, so a lease may lapse
 *     under a holder that is crashed, stalled or simply slow: the model
 *     assumes nothing about timing (the takeover of a slow-but-alive
 *     holder is in the explored behaviour);
 *   - W workers: W requests of one client for one key, each served by the
 *     engine of some instance, each with its own fencing token. A worker
 *     may crash at every step (its background work dies with it);
 *   - a lost reply: a claim lands but its reply is lost and the client
 *     library re-sends it with the same token; a Complete lands but its
 *     reply is lost and the engine retries it with the same token;
 *   - a slow store: a claim is delayed in the network, the worker's call
 *     fails (503), the engine releases the orphan claim in the background
 *     with its token (a few attempts, at any moment), and the delayed
 *     claim lands at any later moment, before, between or after them;
 *   - the engine after acquiring: the handler runs while the lease is
 *     renewed (a renewal that finds the lease lost changes nothing, the
 *     handler goes on); a 5xx outcome releases; a stored outcome is
 *     completed, retried while the store does not answer, renewing the
 *     claim when it answers, and given up (completion-lost, then a
 *     release) after a few attempts; a Complete that finds the claim lost
 *     sends the response unstored (store-failed).
 *
 * Properties (assertions, all checked in one safety run):
 *   P1 no two holders complete one key: one token at most ever completes;
 *   P2 a completed record is never overwritten or removed (monitor);
 *   P3 a worker whose lease was taken over (or released by another) never
 *      completes;
 *   P4 never twice while leases hold: a second handler run with a stored
 *      outcome happens only after a lease lapsed or a completion was given
 *      up (the documented at-least-once cases);
 *   P5 one answer: every client that saw a response saw the stored one,
 *      unless a lease lapsed or a completion was given up;
 *   P6 a claim never answers in flight to its own token.
 * and one liveness property (LTL; no fairness assumption is needed, as
 * every process but the clock ends):
 *   L1 a key is never stuck pending forever: eventually it is completed,
 *      free, or its lease has lapsed, and stays so.
 *
 * Variants, each of which the check must fail (make model runs them):
 *   -DNOFENCE      Complete, Release and Renew compare no token: they act on
 *                  whatever claim is pending (PITFALLS 4);
 *   -DLIVETAKEOVER a claim takes over a pending record whose lease is still
 *                  live (the takeover bug of PITFALLS 3);
 *   -DNOLAPSE      the store's clock never ends a lease: a crashed holder's
 *                  claim stays pending forever (L1 must fail).
 * W (default 3), LEASE (default 2), RENEWS and TRIES bound the state space.
 */

#ifndef W
#define W 3
#endif
#ifndef LEASE
#define LEASE 2
#endif
#ifndef RENEWS
#define RENEWS 1 /* renewals while the handler runs */
#endif
#ifndef TRIES
#define TRIES 2 /* Complete attempts before giving up */
#endif
#ifndef ORPHANS
#define ORPHANS 2 /* orphan-release attempts after a failed claim */
#endif

#ifdef NOFENCE
#define HELD(tok) (st == PENDING && lease > 0)
#else
#define HELD(tok) (st == PENDING && lease > 0 && holder == tok)
#endif

#define ABSENT  0
#define PENDING 1
#define DONE    2

/* results of a store call */
#define ACQUIRED 1
#define REPLAY   2
#define INFLIGHT 3
#define OK       4
#define LOST     5 /* ErrLeaseLost */
#define ERR      6 /* the call failed: ErrStoreUnavailable, the engine saw no answer */

/* the record of the key; tokens are 1..W, 0 is none */
byte st = ABSENT;
byte holder;
byte lease;
byte doneTok;

/* ghost state, for the properties only */
byte completer;     /* the token whose Complete turned the record completed */
bool evicted[W];    /* worker i's claim was taken over or released by another */
byte applied;       /* handler runs with a stored-class outcome */
byte lapses;        /* leases that lapsed under their holder */
byte gaveUp;        /* completions given up (completion-lost) */
byte seen;          /* the response (its token) the first client was shown */

#define UNGUARANTEED (lapses > 0 || gaveUp > 0)

inline claim(tok, res) {
	if
	:: st == ABSENT ->
		st = PENDING; holder = tok; lease = LEASE; res = ACQUIRED;
		evicted[tok - 1] = false
	:: st == PENDING && lease == 0 ->
		/* a lapsed lease counts as absent: take over */
		if
		:: holder != tok -> evicted[holder - 1] = true
		:: else
		fi;
		holder = tok; lease = LEASE; res = ACQUIRED;
		evicted[tok - 1] = false
	:: st == PENDING && lease > 0 && holder == tok ->
		/* the same claim, re-sent: acquired again, the lease extended */
		lease = LEASE; res = ACQUIRED
#ifdef LIVETAKEOVER
	:: st == PENDING && lease > 0 && holder != tok ->
		evicted[holder - 1] = true;
		holder = tok; lease = LEASE; res = ACQUIRED;
		evicted[tok - 1] = false
#endif
	:: st == PENDING && lease > 0 && holder != tok ->
		res = INFLIGHT;
		assert(holder != tok) /* P6 */
	:: st == DONE ->
		res = REPLAY
	fi
}

inline complete(tok, res) {
	if
	:: HELD(tok) ->
		assert(completer == 0 || completer == tok);  /* P1 */
		assert(!evicted[tok - 1]);                     /* P3 */
		completer = tok;
		st = DONE; doneTok = tok; res = OK
	:: st == DONE && doneTok == tok ->
		res = OK /* retried after a lost reply: idempotent */
	:: else ->
		res = LOST
	fi
}

inline release(tok, res) {
	if
	:: HELD(tok) ->
		if
		:: holder != tok -> evicted[holder - 1] = true
		:: else
		fi;
		st = ABSENT; holder = 0; lease = 0; res = OK
	:: else ->
		res = LOST
	fi
}

inline renew(tok, res) {
	if
	:: HELD(tok) -> lease = LEASE; res = OK
	:: else -> res = LOST
	fi
}

/* a client is shown response r (a token: whose execution produced it) */
inline shown(r) {
	if
	:: seen == 0 -> seen = r
	:: else -> assert(seen == r || UNGUARANTEED) /* P5 */
	fi
}

/* a crash: at this point the worker may die, with its background work */
#define MAYCRASH if :: skip :: goto crashed fi

proctype Worker(byte me) {
	byte tok = me + 1;
	byte r, i;

	/* the claim */
	MAYCRASH;
	if
	:: atomic { true -> claim(tok, r) }
	:: /* it lands, its reply is lost, the client library re-sends it */
		atomic { claim(tok, r) };
		MAYCRASH;
		atomic { claim(tok, r) }
	:: /* the store is slow: the call fails, the claim lands later */
		run Late(tok); r = ERR
	fi;

	if
	:: r == ERR ->
		/* 503 (no response shown); the engine releases the orphan claim
		   in the background, a few times, each a compare-and-set */
		i = 0;
		do
		:: i < ORPHANS -> MAYCRASH; atomic { release(tok, r) }; i++
		:: i >= ORPHANS -> break
		od
	:: r == INFLIGHT -> skip /* 409 */
	:: r == REPLAY -> atomic { shown(doneTok) }
	:: r == ACQUIRED ->
		/* the handler runs; the renewer renews, and a lost lease does
		   not stop the handler */
		i = 0;
		do
		:: i < RENEWS -> MAYCRASH; atomic { renew(tok, r) }; i++
		:: break
		od;
		MAYCRASH;
		if
		:: /* a 5xx, a panic or MarkNotApplied: release */
			atomic { true -> release(tok, r) }
		:: /* a stored outcome */
			atomic {
				applied++;
				assert(applied <= 1 || UNGUARANTEED) /* P4 */
			};
			i = 0;
			do
			:: i < TRIES ->
				MAYCRASH;
				if
				:: atomic { true -> complete(tok, r) }          /* answered */
				:: atomic { true -> complete(tok, r); r = ERR } /* landed, reply lost */
				:: r = ERR                                       /* never landed */
				:: atomic { true -> renew(tok, r); r = ERR }    /* the store answers a renewal, not the Complete */
				fi;
				if
				:: r == OK -> atomic { shown(tok) }; break
				:: r == LOST -> atomic { shown(tok) }; break /* store-failed: sent unstored */
				:: r == ERR -> i++
				fi
			:: i >= TRIES ->
				/* completion-lost: reported, the claim released */
				gaveUp++;
				atomic { release(tok, r) };
				break
			od
		fi
	fi;
crashed:
	skip
}

/* the network: a delayed claim lands at any later moment, or never */
proctype Late(byte tok) {
	byte res;
	if
	:: atomic { true -> claim(tok, res) }
	:: skip
	fi
}

/* the store's clock: a tick off a live lease, at any moment */
proctype Clock() {
#ifdef NOLAPSE
	skip
#else
end:
	do
	:: atomic {
		st == PENDING && lease > 0 ->
			lease--;
			if
			:: lease == 0 -> lapses++
			:: else
			fi
	}
	od
#endif
}

/* P2: once completed, the record stays completed with the same token */
proctype Completed() {
	byte t;
end0:
	atomic { st == DONE -> t = doneTok };
end:
	do
	:: !(st == DONE && doneTok == t) -> assert(false) /* P2 */
	od
}

#define STUCK (st == PENDING && lease > 0)
ltl L1 { <> [] !STUCK }

init {
	atomic {
		byte w;
		run Clock();
		run Completed();
		for (w : 0 .. W - 1) {
			run Worker(w)
		}
	}
}
