#!/bin/bash
# bench/rule_bench.sh — `strata rule` vs Prometheus 2.42 evaluating the same recording rules over the same
# data (issue 17): see rule_bench.py. Sizes: RULE_BENCH_RULES (1000), RULE_BENCH_SERIES (100000).
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/rule_bench.py" "$@"
