# lib.sh — shared helpers for integration tests (bash). Source it first:
#
#     . "$(dirname "$0")/lib.sh"
#     port=$(free_port)
#     start_bg srv "$STRATA_TEST_BIN/http_testserver" --http-address=127.0.0.1:$port
#     wait_url "http://127.0.0.1:$port/-/ready" 10 || fail startup "server did not become ready"
#     check healthy test "$(curl -s "http://127.0.0.1:$port/-/healthy")" = OK
#     finish
#
# Every process started with start_bg is stopped by PID on exit (TERM, then KILL after 5s), never
# by name. Output: "PASS <test>:<name>" / "FAIL <test>:<name>: <why>" lines, which tests/run counts;
# finish exits non-zero if anything failed. Everything binds to 127.0.0.1 only.
set -u

: "${STRATA_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${STRATA_BIN:=$STRATA_ROOT/build/strata}"
: "${STRATA_TEST_BIN:=$STRATA_ROOT/build/tests}"
PY=${PYTHON:-/usr/bin/python3}
TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "/tmp/strata-$TEST_NAME.XXXXXX")
BG_PIDS=()
LIB_FAILED=0
LIB_PASSED=0
declare -A BG_PID_OF

lib_cleanup() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		stop_pid "$pid" 5
	done
	if [ "$LIB_FAILED" -eq 0 ]; then
		rm -rf "$TEST_TMP"
	else
		echo "logs kept in $TEST_TMP"
	fi
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

pass() { # name
	echo "PASS $TEST_NAME:$1"
	LIB_PASSED=$((LIB_PASSED + 1))
}

fail() { # name why...
	local n=$1
	shift
	echo "FAIL $TEST_NAME:$n: $*"
	LIB_FAILED=$((LIB_FAILED + 1))
}

# check NAME CMD...: PASS if CMD succeeds, FAIL (showing the command) otherwise.
check() {
	local n=$1
	shift
	if "$@"; then pass "$n"; else fail "$n" "command failed: $*"; fi
}

finish() {
	echo "$LIB_PASSED passed, $LIB_FAILED failed ($TEST_NAME)"
	[ "$LIB_FAILED" -eq 0 ]
	exit $?
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_bg NAME CMD...: run CMD in the background with output in $TEST_TMP/NAME.log; the PID is
# recorded for cleanup and available as ${BG_PID_OF[NAME]} (and echoed into $TEST_TMP/NAME.pid).
start_bg() {
	local n=$1
	shift
	"$@" >"$TEST_TMP/$n.log" 2>&1 &
	local pid=$!
	BG_PIDS+=("$pid")
	BG_PID_OF[$n]=$pid
	echo "$pid" >"$TEST_TMP/$n.pid"
}

# stop_pid PID [GRACE_S]: SIGTERM, wait up to GRACE_S (default 5) seconds, then SIGKILL. Returns the
# process's exit status when it is our child (else 0).
stop_pid() {
	local pid=$1 grace=${2:-5} i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return $?; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# wait_exit PID TIMEOUT_S: wait for a child to exit by itself and set WAIT_STATUS to its exit
# status; returns 1 on timeout. (Not in $(...): a subshell cannot wait for our children.)
WAIT_STATUS=""
wait_exit() {
	local pid=$1 limit=$2 i
	WAIT_STATUS=""
	for ((i = 0; i < limit * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null
			WAIT_STATUS=$?
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wait_url URL [TIMEOUT_S] [WANT_CODE]: poll until the URL answers WANT_CODE (default 200).
wait_url() {
	local url=$1 limit=${2:-10} want=${3:-200} i code
	for ((i = 0; i < limit * 10; i++)); do
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)
		[ "$code" = "$want" ] && return 0
		sleep 0.1
	done
	return 1
}

# http_code URL [curl args...]: print the status code only.
http_code() {
	local url=$1
	shift
	curl -s -o /dev/null -m 10 -w '%{http_code}' "$@" "$url"
}
