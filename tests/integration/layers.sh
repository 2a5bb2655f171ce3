#!/bin/bash
# The layer order of ARCHITECTURE.md, enforced: a module may include only its own layer and the layers
# below it (base <- net, model <- tsdb, promql, objstore <- store <- api <- cmd).
set -u
cd "${STRATA_ROOT:-$(dirname "$0")/../..}"
declare -A allowed=(
	[base]="base"
	[net]="net base"
	[model]="model base"
	[tsdb]="tsdb model base"
	[promql]="promql model base"
	[objstore]="objstore net base"
	[store]="store tsdb promql objstore net model base"
	[api]="api store tsdb promql objstore net model base"
	[cmd]="cmd api store tsdb promql objstore net model base"
)
bad=0
for layer in "${!allowed[@]}"; do
	for f in src/"$layer"/*.[ch]; do
		[ -f "$f" ] || continue
		while IFS= read -r inc; do
			dep=${inc%%/*}
			case " ${allowed[$layer]} " in
			*" $dep "*) ;;
			*)
				echo "FAIL layers:$f: includes \"$inc\" ($layer may use: ${allowed[$layer]})"
				bad=1
				;;
			esac
		done < <(sed -n 's/^#include "\([a-z_]*\/[^"]*\)".*/\1/p' "$f")
	done
done
# The unchecked allocators are for base/alloc.c only.
while IFS= read -r hit; do
	echo "FAIL layers:unchecked allocation (use base/alloc.h): $hit"
	bad=1
done < <(grep -nE '(^|[^a-z_])(malloc|calloc|realloc|strdup|strndup)\(' src/*/*.c | grep -v '^src/base/alloc.c:' |
	grep -vE '^\S+:\s*(/?\*|//)' || true)
[ "$bad" = 0 ] && echo "PASS layers:include_order_and_checked_allocation"
exit $bad
