#!/bin/bash
# bench/frontend_bench.sh — query frontend benchmark (issue 18); the work is in frontend_bench.py.
exec /usr/bin/python3 "$(dirname "$0")/frontend_bench.py" "$@"
