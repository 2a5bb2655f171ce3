#!/bin/bash
# The demo stack's self-test: `scripts/demo --check` starts node_exporter, two Prometheus 2.42 replicas,
# their sidecars, the store gateway over a FILESYSTEM bucket seeded with promtool-made history, and the
# querier, all in a temp dir on free ports; checks dedup, history from the bucket, the banner's
# commands, idempotent start, the port-in-use message, one Prometheus down and a clean stop; then
# stops everything it started. Prints PASS/FAIL lines.
set -u
ROOT=${STRATA_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
exec timeout -k 10 420 "$ROOT/scripts/demo" --check
