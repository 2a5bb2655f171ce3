#!/bin/bash
# http_cli.sh — the `strata` command line: --help, --version, unknown commands/flags exit 2, and
# every command listed in --help (nested groups included) answers its own --help with exit 0.
. "$(dirname "$0")/lib.sh"

[ -x "$STRATA_BIN" ] || { fail setup "missing $STRATA_BIN (build first)"; finish; }

out=$("$STRATA_BIN" --help 2>&1); rc=$?
check help_exit0 test "$rc" -eq 0
check help_usage grep -q '^usage: strata' <<<"$out"
out=$("$STRATA_BIN" --version 2>&1); rc=$?
check version_exit0 test "$rc" -eq 0
check version_text grep -q '^strata, version [0-9]' <<<"$out"
"$STRATA_BIN" >/dev/null 2>&1
check no_command_exit2 test $? -eq 2
out=$("$STRATA_BIN" no-such-component 2>&1); rc=$?
check unknown_command_exit2 test "$rc" -eq 2
check unknown_command_named grep -q 'no-such-component' <<<"$out"
out=$("$STRATA_BIN" --no-such-flag 2>&1); rc=$?
check unknown_global_flag_exit2 test "$rc" -eq 2
check unknown_global_flag_named grep -q -- '--no-such-flag' <<<"$out"

# Every listed command: `--help` exits 0, an unknown flag exits 2 naming it. Groups ("tools",
# "tools bucket") list their commands.
cmds=$("$STRATA_BIN" --help | sed -n '/^Commands:/,$p' | tail -n +2 | grep -v '(none yet' |
	sed 's/^  //; s/  .*//')
n=0
while IFS= read -r c; do
	[ -n "$c" ] || continue
	n=$((n + 1))
	# shellcheck disable=SC2086
	"$STRATA_BIN" $c --help >"$TEST_TMP/help.out" 2>&1
	check "help_${c// /_}" test $? -eq 0
	# shellcheck disable=SC2086
	out=$("$STRATA_BIN" $c --no-such-flag-xyz 2>&1); rc=$?
	if [ "$rc" -eq 2 ] && grep -q -- 'no-such-flag-xyz' <<<"$out"; then
		pass "bad_flag_${c// /_}"
	else
		fail "bad_flag_${c// /_}" "exit $rc, output: $(head -2 <<<"$out")"
	fi
	if [[ "$c" == *" "* ]]; then
		group=${c% *}
		# shellcheck disable=SC2086
		"$STRATA_BIN" $group --help | grep -q "^  $c " && pass "group_lists_${c// /_}" ||
			fail "group_lists_${c// /_}" "'strata $group --help' does not list '$c'"
	fi
done <<<"$cmds"
echo "# $n commands listed"
finish
