#!/bin/bash
# `make install PREFIX=/usr DESTDIR=<tmp>`: the binary, a man page for every command of `strata --help`
# (groups included) that `man -l` renders with every flag of the command's --help, bash completion
# that completes subcommands, flags and flag values, the systemd units with ExecStart pointing at the
# installed binary, and the example configuration files; `make uninstall` removes them all. Prints
# PASS/FAIL lines.
. "$(dirname "$0")/lib.sh"
BUILD_DIR=$(dirname "$STRATA_BIN")
D=$TEST_TMP/root

make -C "$STRATA_ROOT" --no-print-directory install BUILD="$BUILD_DIR" PREFIX=/usr DESTDIR="$D" >"$TEST_TMP/install.log" 2>&1 ||
	fail install "make install failed: $(tail -5 "$TEST_TMP/install.log" | tr '\n' ' ')"
check binary "$D/usr/bin/strata" --version

# Every command and group of the command tree, from --help, as "words" lines.
tree() { # words...
	local h
	h=$("$STRATA_BIN" "$@" --help) || return 1
	echo "$*"
	grep -q '^Commands:$' <<<"$h" || return 0
	sed -n '/^Commands:$/,$p' <<<"$h" | grep '^  [^ ]' | while read -r -a w; do
		[ $# -gt 0 ] && [ "${w[*]:0:$#}" = "$*" ] && w=("${w[@]:$#}")
		echo "${w[0]}"
	done | awk '!seen[$0]++' | while read -r k; do tree "$@" "$k"; done
}
mapfile -t CMDS < <(tree)
[ "${#CMDS[@]}" -ge 10 ] || fail command_tree "only ${#CMDS[@]} commands found"
missing=() unrendered=()
for c in "${CMDS[@]}"; do
	page=$D/usr/share/man/man1/strata${c:+-${c// /-}}.1
	if [ ! -f "$page" ]; then
		missing+=("${page#"$D"}")
		continue
	fi
	# the rendered page names every flag the command's --help lists
	# shellcheck disable=SC2086
	out=$(MANWIDTH=200 man -l "$page" 2>&1 | col -b)
	for f in $("$STRATA_BIN" $c --help | grep -o '^  --[^=]*' | sed 's/^  //'); do
		grep -qF -- "$f" <<<"$out" || unrendered+=("$page: $f")
	done
done
check man_page_per_command test "${#missing[@]}" -eq 0 -a "$(ls "$D/usr/share/man/man1" | wc -l)" -eq "${#CMDS[@]}"
[ "${#missing[@]}" -eq 0 ] || echo "missing pages: ${missing[*]}"
check man_pages_list_every_flag test "${#unrendered[@]}" -eq 0
[ "${#unrendered[@]}" -eq 0 ] || printf 'not in the rendered page: %s\n' "${unrendered[@]}" | head
man -l "$D/usr/share/man/man1/strata-store.1" 2>/dev/null | col -b >"$TEST_TMP/store.txt"
check man_renders grep -q '^NAME' "$TEST_TMP/store.txt"
check man_store_default grep -q 'objstore.config-file' "$TEST_TMP/store.txt"

# bash completion: source it and complete as readline would (COMP_LINE up to the cursor).
COMP=$D/usr/share/bash-completion/completions/strata
complete_line() { # line -> the candidates, space-separated
	bash -c '. "$1"; COMP_LINE=$2; COMP_POINT=${#2}; _strata; echo "${COMPREPLY[*]}"' _ "$COMP" "$1"
}
completes() { # name line expected-words...
	local name=$1 line=$2 got w
	shift 2
	got=" $(complete_line "$line") "
	for w in "$@"; do
		[[ $got == *" $w "* ]] || {
			fail "completion_$name" "'$line' completed to '$got', missing '$w'"
			return
		}
	done
	pass "completion_$name"
}
check completion_installed test -f "$COMP"
completes subcommands "strata " query sidecar store tools
completes prefix "strata st" store
completes nested "strata tools bucket " ls inspect verify upload-blocks
completes flags "strata store --objstore.c" --objstore.config= --objstore.config-file=
completes bool_flags "strata query --no-query.p" --no-query.partial-response
completes enum_after_equals "strata store --log.level=" debug info warn error
completes enum_after_space "strata query --log.format " logfmt json
completes receive_flags "strata receive --receive.rep" --receive.replica-header= --receive.replication-factor=
completes rule_flags "strata rule --alertmanagers." --alertmanagers.url= --alertmanagers.config-file=
completes compact_flags "strata compact --deduplication." --deduplication.replica-label= --deduplication.func=
check completion_narrows test "$(complete_line "strata st")" = store
mkdir -p "$TEST_TMP/cfgdir" && touch "$TEST_TMP/cfgdir/objstore.yml"
completes file_values "strata store --objstore.config-file=$TEST_TMP/cfgdir/obj" "$TEST_TMP/cfgdir/objstore.yml"

# systemd units and examples
units=$(ls "$D/usr/lib/systemd/system/"strata-*.service 2>/dev/null | wc -l)
check units_installed test "$units" -eq "$(ls "$STRATA_ROOT"/deploy/systemd/*.service | wc -l)"
check units_point_at_installed_binary test -z "$(grep -h '^ExecStart=' "$D"/usr/lib/systemd/system/strata-*.service | grep -v '^ExecStart=/usr/bin/strata ')"
check examples_installed test -f "$D/usr/share/doc/strata/examples/objstore.yml" -a -f "$D/usr/share/doc/strata/examples/store.env"
missing=()
for f in $(cd "$STRATA_ROOT/deploy" && ls examples/*.yml examples/*.json examples/*/*.yml systemd/*.env); do
	[ -f "$D/usr/share/doc/strata/examples/${f#*/}" ] || missing+=("${f#*/}")
done
check examples_installed_all test "${#missing[@]}" -eq 0
[ "${#missing[@]}" -eq 0 ] || echo "not installed under share/doc/strata/examples: ${missing[*]}"

make -C "$STRATA_ROOT" --no-print-directory uninstall BUILD="$BUILD_DIR" DESTDIR="$D" >"$TEST_TMP/uninstall.log" 2>&1
check uninstall_removes_everything test -z "$(find "$D" -type f)"
finish
