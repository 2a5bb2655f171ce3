#!/bin/bash
# ui_bench.sh — Strata's web UI vs Prometheus 2.42's own UI (Debian's prometheus serves its classic UI)
# in the same headless chromium: bundle bytes (gzip -9), page load, time to first graph and render time
# of UI_BENCH_SERIES x UI_BENCH_POINTS (default 1000 x 1000) from the same blocks. See bench/ui_bench.py.
exec /usr/bin/python3 "$(dirname "$0")/ui_bench.py" "$@"
