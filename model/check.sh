#!/usr/bin/env bash
# Model-checks model/idemkit.pml with spin (make model): the safety properties
# with three workers, the liveness property under weak fairness with two, and
# the negative test: with fencing disabled (-DNOFENCE) the check must fail.
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

verify liveness "-DW=2" "-DNFAIR=3" "-a -f -m200000"
grep -q 'errors: 0' liveness.out || { cat liveness.out >&2; spin -DW=2 -t -p idemkit.pml >&2 || true; echo "model: liveness property violated" >&2; exit 1; }

# Negative test: without fencing a holder whose lease was taken over completes.
# Breadth-first, so the counterexample is a shortest one.
verify nofence "-DNOFENCE" "-DNOCLAIM -DSAFETY -DBFS" ""
if ! grep -q 'errors: [1-9]' nofence.out; then
	cat nofence.out >&2; echo "model: the model without fencing passed: it no longer catches that bug" >&2; exit 1
fi
steps=$(spin -DNOFENCE -t -p idemkit.pml | grep -c '^ *[0-9]*:.*proc' || true)
echo "model: nofence   fails as it must: $(grep -o 'assertion violated.*(at depth [0-9]*)' nofence.out), a counterexample of $steps statements"
echo "model: ok"
