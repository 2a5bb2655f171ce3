#!/bin/bash
# Prometheus 2.42's own PromQL test scripts (promql/testdata/*.test, read in place, never copied into
# this repository: they are Prometheus's, Apache-2.0) against Strata's engine: one PASS/FAIL line per
# eval statement, per-file counts on stderr.
#
# Where the scripts are read from, first found wins:
#   $PROMQL_TESTDATA                 a Prometheus v2.42.0 source tree's promql/testdata (set but missing: FAIL)
#   <repo>/../shared/promql-tests    the team workspace's copy, next to the checkout
#   <main checkout>/../shared/...    the same for a git worktree (its main checkout's neighbour)
# None of them: one SKIP line saying how to enable it, which tests/run shows in its final line.
set -u
ROOT=${STRATA_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${STRATA_TEST_BIN:-$ROOT/build/tests}/promql_test_runner
if [ ! -x "$BIN" ]; then
	echo "FAIL promql_conformance: $BIN not built"
	exit 1
fi
if [ -n "${PROMQL_TESTDATA:-}" ]; then
	DIR=$PROMQL_TESTDATA
	[ -d "$DIR" ] || {
		echo "FAIL promql_conformance: PROMQL_TESTDATA=$DIR is not a directory"
		exit 1
	}
else
	DIR=""
	cands=("$ROOT/../shared/promql-tests")
	common=$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
		cands+=("$(dirname "$common")/../shared/promql-tests")
	for c in "${cands[@]}"; do
		if [ -d "$c" ]; then
			DIR=$(cd "$c" && pwd)
			break
		fi
	done
	if [ -z "$DIR" ]; then
		echo "SKIP promql_conformance: Prometheus's PromQL test scripts not found;" \
			"run them with PROMQL_TESTDATA=<prometheus v2.42.0 source>/promql/testdata"
		exit 0
	fi
fi
echo "promql_conformance: test scripts from $DIR" >&2
exec timeout 300 "$BIN" "$DIR"
