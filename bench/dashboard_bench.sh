#!/bin/bash
# Dashboard set through store + query vs Prometheus 2.42 (issue 24); see bench/dashboard_bench.py.
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/dashboard_bench.py" "$@"
