#!/bin/bash
# The layer order of ARCHITECTURE.md, enforced on src/: a folder may include only itself and the layers
# below it, and component folders never include each other:
#   base <- net, model <- tsdb, promql, objstore <- store, block
#        <- storegw, sidecar, receive, rule, compact, query, frontend (components) <- api, ui <- cmd
# Also: the unchecked allocators are for base/alloc.c only. A self-test first proves that a wrong
# include and an unchecked malloc in a scratch tree are caught.
set -u
ROOT=$(cd "${STRATA_ROOT:-$(dirname "$0")/../..}" && pwd)

LOW="store block tsdb promql objstore net model base"
COMPONENTS="storegw sidecar receive rule compact query frontend"
declare -A allowed=(
	[base]="base"
	[net]="net base"
	[model]="model base"
	[tsdb]="tsdb model base"
	[promql]="promql model base"
	[objstore]="objstore net base"
	[store]="store tsdb promql objstore net model base"
	[block]="block tsdb objstore net model base"
	[api]="api $COMPONENTS $LOW"
	[ui]="ui api $COMPONENTS $LOW"
	[cmd]="cmd ui api $COMPONENTS $LOW"
)
for c in $COMPONENTS; do allowed[$c]="$c $LOW"; done

# check <root>: prints one FAIL line per violation under <root>/src, returns 1 if any.
check() {
	local root=$1 bad=0 dir layer f inc dep hit
	for dir in "$root"/src/*/; do
		layer=$(basename "$dir")
		if [ -z "${allowed[$layer]+x}" ]; then
			echo "FAIL layers:src/$layer/ is not in the layer order (add it to layers.sh and ARCHITECTURE.md)"
			bad=1
			continue
		fi
		for f in "$dir"*.[ch]; do
			[ -f "$f" ] || continue
			while IFS= read -r inc; do
				dep=${inc%%/*}
				case " ${allowed[$layer]} " in
				*" $dep "*) ;;
				*)
					echo "FAIL layers:${f#"$root"/}: includes \"$inc\" ($layer may use: ${allowed[$layer]})"
					bad=1
					;;
				esac
			done < <(sed -n 's/^#include "\([a-z_]*\/[^"]*\)".*/\1/p' "$f")
		done
	done
	while IFS= read -r hit; do
		echo "FAIL layers:unchecked allocation (use base/alloc.h): ${hit#"$root"/}"
		bad=1
	done < <(grep -nE '(^|[^a-z_])(malloc|calloc|realloc|strdup|strndup)\(' "$root"/src/*/*.c |
		grep -v "^$root/src/base/alloc.c:" | grep -vE '^\S+:\s*(/?\*|//)' || true)
	return $bad
}

# Self-test: a scratch tree with one violation of each kind must fail with exactly those lines.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch"/src/{base,tsdb,storegw,sidecar,cmd}
printf '#include "base/alloc.h"\n#include "sidecar/prom_store.h"\n' >"$scratch/src/storegw/a.c"
printf '#include "store/store.h"\n' >"$scratch/src/tsdb/b.c"
printf '#include "storegw/bucket_store.h"\n#include "sidecar/prom_store.h"\n' >"$scratch/src/cmd/ok.c"
printf 'void *f(void) { return malloc(1); }\n' >"$scratch/src/sidecar/c.c"
out=$(check "$scratch")
st=0
for want in 'src/storegw/a.c: includes "sidecar/prom_store.h"' 'src/tsdb/b.c: includes "store/store.h"' \
	'unchecked allocation (use base/alloc.h): src/sidecar/c.c:1'; do
	case "$out" in
	*"$want"*) ;;
	*)
		echo "FAIL layers:self_test: a violation was not caught: $want"
		st=1
		;;
	esac
done
if [ "$(printf '%s\n' "$out" | grep -c '^FAIL')" != 3 ]; then
	echo "FAIL layers:self_test: expected exactly 3 violations in the scratch tree, got:"
	printf '%s\n' "$out"
	st=1
fi
[ "$st" = 0 ] && echo "PASS layers:self_test_catches_wrong_includes"

check "$ROOT" && echo "PASS layers:include_order_and_checked_allocation" || st=1
exit $st
