#!/bin/bash
# `strata tools rules-check` against `promtool check rules` (Debian's 2.42) on a set of good and broken rule
# files (tests/integration/rules/*.yml): the same verdict and exit code for every file, the same messages
# (promtool prints a YAML syntax error twice; that repetition aside), several files in one run; and what
# promtool cannot check: Thanos's partial_response_strategy (accepted as warn/abort, refused otherwise with
# its position).
. "$(dirname "$0")/lib.sh"
[ -x "$STRATA_BIN" ] || { fail setup "missing $STRATA_BIN (build first)"; finish; }
command -v promtool >/dev/null || { fail setup "promtool missing (scripts/deps)"; finish; }
cd "$(dirname "$0")/rules" || exit 1

for f in good_*.yml bad_*.yml; do
	case "$f" in *.thanos.yml) continue ;; esac
	promtool check rules "$f" >"$TEST_TMP/promtool.out" 2>&1
	prc=$?
	p=$(grep -v '^lint error\|^Metric:\|^Label(s):\|^Might cause' "$TEST_TMP/promtool.out" | uniq)
	s=$("$STRATA_BIN" tools rules-check --rules="$f" 2>/dev/null)
	src=$?
	[ "$f" = good_thanos.yml ] && continue
	check "exit_${f%.yml}" test "$prc" = "$src"
	if [ "$p" = "$s" ]; then pass "output_${f%.yml}"; else fail "output_${f%.yml}" "promtool: $p // strata: $s"; fi
done

out=$("$STRATA_BIN" tools rules-check --rules='good_*.yml' --rules=bad_name.yml 2>&1)
rc=$?
check several_files_exit1 test $rc -eq 1
check several_files_each_checked test "$(grep -c '^Checking ' <<<"$out")" -eq 4
check several_files_success_count grep -q 'SUCCESS: 4 rules found' <<<"$out"

out=$("$STRATA_BIN" tools rules-check --rules=good_thanos.yml 2>&1)
check thanos_strategy_accepted test $? -eq 0
out=$("$STRATA_BIN" tools rules-check --rules=bad_strategy.thanos.yml 2>&1)
rc=$?
check thanos_strategy_refused test $rc -eq 1
check thanos_strategy_message grep -q '3:30: group g: invalid partial_response_strategy "maybe" (want warn or abort)' <<<"$out"
out=$("$STRATA_BIN" tools rules-check 2>&1)
check no_rules_exit2 test $? -eq 2
out=$("$STRATA_BIN" tools rules-check --rules=/nonexistent/x.yml 2>&1)
check missing_file_exit1 test $? -eq 1
finish
