#!/bin/bash
# PromQL engine vs Prometheus 2.42 on the same 100k-series x 1 day blocks (see bench/promql_bench.py).
# Needs the strata binary and the promql_blockgen / promql_benchq test programs built.
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/promql_bench.py" "$@"
