#!/bin/bash
# A user's clone stands alone: `git clone` of this commit into an empty temporary directory (no
# ../shared next to it, no PROMQL_TESTDATA, no STRATA_SHARED), built there, then its own tests/run:
#   - the PromQL conformance suite, whose test scripts are Prometheus's and not in the repository, is
#     reported as skipped on the final line, with how to enable it;
#   - an S3 test (objstore_tools_bucket.sh) passes against the S3 server the clone's own
#     scripts/s3-server starts.
# Bounded: only the binaries those two need are built (Debug: compiles fastest). Uncommitted changes
# are not in the clone: this tests the commit. Prints PASS/FAIL lines.
. "$(dirname "$0")/lib.sh"
W=$TEST_TMP/w
mkdir -p "$W"
head=$(git -C "$STRATA_ROOT" rev-parse HEAD) || {
	fail setup "$STRATA_ROOT is not a git checkout"
	finish
}
git clone -q "$STRATA_ROOT" "$W/strata" >"$TEST_TMP/clone.log" 2>&1 && git -C "$W/strata" checkout -q "$head" 2>>"$TEST_TMP/clone.log" || {
	fail clone "git clone failed: $(tail -3 "$TEST_TMP/clone.log" | tr '\n' ' ')"
	finish
}
check no_shared_next_to_clone test ! -e "$W/shared"
C=$W/strata
# Nothing of this workspace may leak into the clone's run.
clean_env=(env -u STRATA_SHARED -u PROMQL_TESTDATA -u STRATA_ROOT -u STRATA_BIN -u STRATA_TEST_BIN
	-u STRATA_BUILD_ASAN STRATA_BUILD=build)
t0=$SECONDS
if cmake -S "$C" -B "$C/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug >"$TEST_TMP/build.log" 2>&1 &&
	ninja -C "$C/build" strata promql_test_runner >>"$TEST_TMP/build.log" 2>&1; then
	pass build
else
	fail build "$(tail -5 "$TEST_TMP/build.log" | tr '\n' ' ')"
	finish
fi
echo "built in $((SECONDS - t0))s"

"${clean_env[@]}" "$C/tests/run" --integration-only promql_conformance >"$TEST_TMP/conformance.out" 2>&1
last=$(tail -n 1 "$TEST_TMP/conformance.out")
echo "conformance run in the clone: $last"
check conformance_skipped_visibly grep -qE '^0 passed, 0 failed, 1 skipped \(promql_conformance: .*PROMQL_TESTDATA=' <<<"$last"

"${clean_env[@]}" "$C/tests/run" --integration-only objstore_tools_bucket >"$TEST_TMP/s3.out" 2>&1
last=$(tail -n 1 "$TEST_TMP/s3.out")
echo "S3 test in the clone: $last"
check s3_test_passes_in_clone grep -qE '^[1-9][0-9]* passed, 0 failed, 0 skipped$' <<<"$last"
[ "$LIB_FAILED" -eq 0 ] || tail -n 30 "$TEST_TMP/s3.out"
finish
