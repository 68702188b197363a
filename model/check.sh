#!/usr/bin/env bash
# Model-checks model/idemkit.pml with spin (make model): the safety properties
# and the liveness property, with three workers, and the negative tests: each
# variant that reintroduces a bug (-DNOFENCE, -DLIVETAKEOVER, -DNOLAPSE) must
# fail the check.
set -euo pipefail
command -v spin >/dev/null 2>&1 || { echo "model: spin not found; install it (Debian: apt-get install spin)" >&2; exit 1; }
command -v "${CC:-gcc}" >/dev/null 2>&1 || { echo "model: ${CC:-gcc} not found: spin's verifiers are C programs" >&2; exit 1; }
CC=${CC:-gcc}
src=$(cd "$(dirname "$0")" && pwd)/idemkit.pml
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
cp "$src" idemkit.pml

# verify NAME SPIN-FLAGS CC-FLAGS PAN-FLAGS: prints pan's figures, leaves its output in NAME.out
verify() {
	local name=$1 sflags=$2 cflags=$3 pflags=$4 start end
	rm -f pan pan.* idemkit.pml.trail
	spin $sflags -a idemkit.pml >/dev/null
	$CC -O2 $cflags -o pan pan.c
	start=$(date +%s.%N)
	./pan $pflags >"$name.out" 2>&1 || true
	end=$(date +%s.%N)
	printf 'model: %-9s %s; %s; %.1f s\n' "$name" \
		"$(grep -o 'errors: [0-9]*' "$name.out")" \
		"$(grep -o '[0-9.e+]* states, stored' "$name.out" | head -1)" "$(awk "BEGIN{print $end - $start}")"
	if grep -q 'Search not completed' "$name.out" && ! grep -q 'errors: [1-9]' "$name.out"; then
		echo "model: $name: search not completed" >&2; cat "$name.out" >&2; exit 1
	fi
}

verify safety "" "-DNOCLAIM -DSAFETY -DCOLLAPSE" "-m200000"
grep -q 'errors: 0' safety.out || { cat safety.out >&2; spin -t -p idemkit.pml >&2 || true; echo "model: safety properties violated" >&2; exit 1; }

# No fairness assumption is needed: every process but the clock ends, so
# the only infinite runs are the clock's ticks and the final state.
verify liveness "" "-DCOLLAPSE" "-a -m200000"
grep -q 'errors: 0' liveness.out || { cat liveness.out >&2; spin -t -p idemkit.pml >&2 || true; echo "model: liveness property violated" >&2; exit 1; }

# Negative tests: each variant reintroduces a bug and must fail the check.
# Breadth-first for the safety ones, so the counterexample is a shortest one.
# must_fail NAME SPIN-FLAGS CC-FLAGS PAN-FLAGS
must_fail() {
	local name=$1 sflags=$2 steps
	verify "$name" "$sflags" "$3" "$4"
	if ! grep -q 'errors: [1-9]' "$name.out"; then
		cat "$name.out" >&2; echo "model: the variant $sflags passed: the model no longer catches that bug" >&2; exit 1
	fi
	steps=$(spin $sflags -t -p idemkit.pml | grep -c '^ *[0-9]*:.*proc' || true)
	echo "model: $name fails as it must: $(grep -o -m1 '\(assertion violated.*\|acceptance cycle\).*(at depth [0-9]*)' "$name.out"), a counterexample of $steps statements"
}
must_fail nofence "-DNOFENCE" "-DNOCLAIM -DSAFETY -DBFS" ""
must_fail takeover "-DLIVETAKEOVER" "-DNOCLAIM -DSAFETY -DBFS" ""
must_fail nolapse "-DNOLAPSE" "" "-a -m200000"
echo "model: ok"
