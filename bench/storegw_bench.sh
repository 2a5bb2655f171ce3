#!/bin/bash
# bench/storegw_bench.sh — store gateway benchmark (issue 8); the work is in storegw_bench.py (grpcio client,
# /usr/bin/python3 because it has Debian's packages).
exec /usr/bin/python3 "$(dirname "$0")/storegw_bench.py" "$@"
