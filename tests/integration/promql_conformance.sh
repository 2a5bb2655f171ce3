#!/bin/bash
# Prometheus 2.42 PromQL test scripts ($STRATA_SHARED/promql-tests, read in place) against Strata's
# engine: one PASS/FAIL line per eval statement, per-file counts on stderr.
set -u
BIN=${STRATA_TEST_BIN:-build/tests}/promql_test_runner
DIR=${STRATA_SHARED:-/work/shared}/promql-tests
if [ ! -x "$BIN" ]; then
	echo "FAIL promql_conformance: $BIN not built"
	exit 1
fi
if [ ! -d "$DIR" ]; then
	echo "FAIL promql_conformance: $DIR missing"
	exit 1
fi
STRATA_SHARED=${STRATA_SHARED:-/work/shared} exec timeout 300 "$BIN"
