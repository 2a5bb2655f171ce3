#!/bin/bash
# ui_serve.sh — the embedded web UI as HTTP serves it (no browser: ui_browser.py drives the pages):
# "/" redirects to the first page; every page is index.html with the component's config, no-cache with
# an ETag that answers 304; the content-hashed bundle is immutable, sent gzipped as stored to clients
# that take gzip and inflated (byte-identical to build/ui/) to those that do not; unknown assets 404;
# HEAD works; Prometheus's /classic/graph opens the query page; the querier's /api/v1/rules and
# /api/v1/alerts answer Prometheus's empty shapes; `strata tools bucket web` and `strata compact` serve
# the block viewer only (compact's also under a route prefix, with admin operations off, or not at all).
. "$(dirname "$0")/lib.sh"

[ -x "$STRATA_BIN" ] || { fail setup "missing $STRATA_BIN (build first)"; finish; }
UI_DIST=$(dirname "$STRATA_BIN")/ui
hp=$(free_port)
gp=$(free_port)
start_bg query "$STRATA_BIN" query --http-address=127.0.0.1:$hp --grpc-address=127.0.0.1:$gp --http-grace-period=1s
wait_url "http://127.0.0.1:$hp/-/ready" 20 || { fail setup "strata query not ready: $(tail -5 "$TEST_TMP/query.log")"; finish; }
U=http://127.0.0.1:$hp
H=$TEST_TMP/headers

check root_redirects_to_graph test "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$U/")" = "302 $U/graph"

page=$(curl -s -D "$H" "$U/graph")
check page_is_html grep -qi '^content-type: text/html' "$H"
check page_no_cache grep -qi '^cache-control: no-cache' "$H"
check page_config grep -q '"component":"query".*"pages":\["graph","stores","rules","alerts","status","flags"\]' <<<"$page"
etag=$(sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p' "$H")
check page_etag_304 test "$(http_code "$U/graph" -H "If-None-Match: $etag")" = 304
check page_other_etag_200 test "$(http_code "$U/graph" -H 'If-None-Match: "other"')" = 200
for p in stores rules alerts status flags classic/graph; do
	check "page_$(tr / _ <<<"$p")" test "$(http_code "$U/$p")" = 200
done
check head_page test "$(curl -s -o /dev/null -w '%{http_code}' -I "$U/graph")" = 200
check block_pages_absent test "$(http_code "$U/blocks")" = 404

js=$(grep -o '/static/app-[0-9A-Za-z]*\.js' <<<"$page")
css=$(grep -o '/static/app-[0-9A-Za-z]*\.css' <<<"$page")
check bundle_named test -n "$js" -a -n "$css"
curl -s -D "$H" -H 'Accept-Encoding: gzip' -o "$TEST_TMP/app.js.gz" "$U$js"
check bundle_gzip grep -qi '^content-encoding: gzip' "$H"
check bundle_immutable grep -qi '^cache-control: public, max-age=31536000, immutable' "$H"
check bundle_gzip_content cmp -s <(gzip -dc "$TEST_TMP/app.js.gz") "$UI_DIST/$(basename "$js")"
curl -s -D "$H" -o "$TEST_TMP/app.js" "$U$js"
check bundle_identity_inflated bash -c "! grep -qi '^content-encoding' '$H' && cmp -s '$TEST_TMP/app.js' '$UI_DIST/$(basename "$js")'"
check css_served cmp -s <(curl -s "$U$css") "$UI_DIST/$(basename "$css")"
jetag=$(sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p' "$H")
check bundle_etag_304 test "$(http_code "$U$js" -H "If-None-Match: $jetag")" = 304
# Every module the app imports (the editor chunk, fetched after the first paint, the chart's, fetched
# with the first range query, and the shared one).
chunks=$(grep -o '[A-Za-z_.]*-[0-9A-Z]*\.js' "$TEST_TMP/app.js" | sort -u)
check editor_chunk_imported grep -q '^code_editor-' <<<"$chunks"
check chart_chunk_imported grep -q '^uPlot\.esm-' <<<"$chunks"
for c in $chunks; do
	check "chunk_${c%%-*}_served" cmp -s <(curl -s --compressed "$U/static/$c") "$UI_DIST/$c"
done
check unknown_asset_404 test "$(http_code "$U/static/app-0000.js")" = 404

check rules_empty test "$(curl -s "$U/api/v1/rules")" = '{"status":"success","data":{"groups":[]}}'
check rules_bad_type test "$(http_code "$U/api/v1/rules?type=bogus")" = 400
check alerts_empty test "$(curl -s "$U/api/v1/alerts")" = '{"status":"success","data":{"alerts":[]}}'

# --web.route-prefix: the UI, its assets and the API under the prefix, "/" and the bare prefix
# redirected into it, /metrics and the probes at the root (as in Thanos); --web.external-prefix alone
# (a reverse proxy strips it): served at the root, links under the prefix.
rp=$(free_port)
start_bg query_prefix "$STRATA_BIN" query --http-address=127.0.0.1:$rp --grpc-address=127.0.0.1:$(free_port) \
	--http-grace-period=1s --web.route-prefix=/thanos/
wait_url "http://127.0.0.1:$rp/-/ready" 20 || { fail setup "prefixed query not ready: $(tail -5 "$TEST_TMP/query_prefix.log")"; finish; }
R=http://127.0.0.1:$rp
check prefix_root_redirect test "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$R/")" = "302 $R/thanos/"
check prefix_bare_redirect test "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$R/thanos")" = "302 $R/thanos/"
check prefix_home_redirect test "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$R/thanos/")" = "302 $R/thanos/graph"
ppage=$(curl -s "$R/thanos/graph")
check prefix_page_config grep -q '"component":"query","prefix":"/thanos"' <<<"$ppage"
pjs=$(grep -o '/thanos/static/app-[0-9A-Za-z]*\.js' <<<"$ppage")
pcss=$(grep -o '/thanos/static/app-[0-9A-Za-z]*\.css' <<<"$ppage")
check prefix_assets_linked test -n "$pjs" -a -n "$pcss"
check prefix_js_served cmp -s <(curl -s --compressed "$R$pjs") "$UI_DIST/$(basename "$pjs")"
check prefix_css_served cmp -s <(curl -s --compressed "$R$pcss") "$UI_DIST/$(basename "$pcss")"
check prefix_api grep -q '^{"status":"success","data":\[' <(curl -s "$R/thanos/api/v1/labels")
check prefix_api_label_values grep -q '^{"status":"success","data":\[' <(curl -s "$R/thanos/api/v1/label/job/values")
for p in graph stores static/$(basename "$pjs") api/v1/labels; do
	check "prefix_unprefixed_${p%%/*}_404" test "$(http_code "$R/$p")" = 404
done
check prefix_probes_at_root test "$(http_code "$R/-/ready") $(http_code "$R/-/healthy") $(http_code "$R/metrics")" = "200 200 200"
check prefix_metrics_handler grep -q 'http_requests_total{code="200",handler="/api/v1/labels",method="get"}' <(curl -s "$R/metrics")

ep=$(free_port)
start_bg query_external "$STRATA_BIN" query --http-address=127.0.0.1:$ep --grpc-address=127.0.0.1:$(free_port) \
	--http-grace-period=1s --web.external-prefix=/proxy/ --web.route-prefix=/
wait_url "http://127.0.0.1:$ep/-/ready" 20 || { fail setup "external-prefix query not ready"; finish; }
E=http://127.0.0.1:$ep
epage=$(curl -s "$E/graph")
check external_links_prefixed grep -q '"prefix":"/proxy".*src="/proxy/static/app-' <<<"$(tr -d '\n' <<<"$epage")"
check external_assets_at_root test "$(http_code "$E$(grep -o '/static/app-[0-9A-Za-z]*\.js' <<<"$epage")")" = 200
check external_home_redirect test "$(curl -s -o /dev/null -w '%{redirect_url}' "$E/")" = "$E/proxy/graph"
check external_api_at_root test "$(http_code "$E/api/v1/labels")" = 200

# Tenancy: with --query.enforce-tenancy the page's config names the tenant header and the default tenant
# (the UI's tenant field); not without it, nor when a client certificate names the tenant.
check page_config_no_tenancy test -z "$(grep -o tenancy <<<"$page")"
tp=$(free_port)
start_bg query_tenancy "$STRATA_BIN" query --http-address=127.0.0.1:$tp --grpc-address=127.0.0.1:$(free_port) \
	--http-grace-period=1s --query.enforce-tenancy --query.tenant-header=X-Scope-OrgID --query.default-tenant-id=team-x
cp=$(free_port)
start_bg query_tenancy_cert "$STRATA_BIN" query --http-address=127.0.0.1:$cp --grpc-address=127.0.0.1:$(free_port) \
	--http-grace-period=1s --query.enforce-tenancy --query.tenant-certificate-field=organization
wait_url "http://127.0.0.1:$tp/-/ready" 20 || { fail setup "tenancy query not ready"; finish; }
wait_url "http://127.0.0.1:$cp/-/ready" 20 || { fail setup "certificate tenancy query not ready"; finish; }
check tenancy_page_config grep -q '"tenancy":{"header":"X-Scope-OrgID","defaultTenant":"team-x"}' \
	<(curl -s "http://127.0.0.1:$tp/graph")
cpage=$(curl -s "http://127.0.0.1:$cp/graph")
check tenancy_cert_page_config test -n "$(grep -o '"component":"query"' <<<"$cpage")" -a -z "$(grep -o tenancy <<<"$cpage")"

check bad_route_prefix grep -q "web.route-prefix thanos must start with '/'" \
	<("$STRATA_BIN" query --web.route-prefix=thanos --check-config 2>&1)
check bad_external_prefix grep -q "web.external-prefix /a<b: '<' is not allowed" \
	<("$STRATA_BIN" query --web.external-prefix='/a<b' --check-config 2>&1)

# The block viewer of `strata tools bucket web` over an empty FILESYSTEM bucket: its pages only, the
# blocks API's empty answer, and marking's bad_data errors (ui_browser.py marks real blocks).
mkdir -p "$TEST_TMP/bucket"
wp=$(free_port)
start_bg web "$STRATA_BIN" tools bucket web --objstore.config="type: FILESYSTEM
config:
  directory: $TEST_TMP/bucket" --http-address=127.0.0.1:$wp --http-grace-period=1s
wait_url "http://127.0.0.1:$wp/-/ready" 20 || { fail setup "tools bucket web not ready: $(tail -5 "$TEST_TMP/web.log")"; finish; }
W=http://127.0.0.1:$wp
check web_root_redirects_to_blocks test "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$W/")" = "302 $W/blocks"
check web_blocks_page grep -q '"component":"bucket".*"pages":\["blocks"\]' <(curl -s "$W/blocks")
check web_no_query_page test "$(http_code "$W/graph")" = 404
check web_blocks_empty grep -q '^{"status":"success","data":{"blocks":\[\],"label":"","refreshedAt":"[0-9T:.Z-]*","err":null,"markers":{}}}$' \
	<(curl -s "$W/api/v1/blocks?view=global")
mark() { curl -s -w ' %{http_code}' -X POST "$W/api/v1/blocks/mark" "$@"; }
check mark_needs_id grep -q '"errorType":"bad_data","error":"ID cannot be empty"} 400' <(mark -d action=DELETION)
check mark_bad_ulid grep -q '"error":"ULID nope is not valid"} 400' <(mark -d id=nope -d action=DELETION)
check mark_bad_action grep -q '"error":"not supported marker SOON.*} 400' <(mark -d id=01ARZ3NDEKTSV4RRFFQ69G5FAV -d action=SOON)
check mark_unknown_block grep -q 'is not in the bucket.*} 400' <(mark -d id=01ARZ3NDEKTSV4RRFFQ69G5FAV -d action=DELETION)
check mark_get_405 test "$(http_code "$W/api/v1/blocks/mark")" = 405

# The block viewer under --web.route-prefix: page, assets and its API under the prefix.
bp=$(free_port)
start_bg web_prefix "$STRATA_BIN" tools bucket web --objstore.config="type: FILESYSTEM
config:
  directory: $TEST_TMP/bucket" --http-address=127.0.0.1:$bp --http-grace-period=1s --web.route-prefix=/bkt
wait_url "http://127.0.0.1:$bp/-/ready" 20 || { fail setup "prefixed bucket web not ready"; finish; }
B=http://127.0.0.1:$bp/bkt
check web_prefix_home_redirect test "$(curl -s -o /dev/null -w '%{redirect_url}' "$B/")" = "$B/blocks"
bpage=$(curl -s "$B/blocks")
check web_prefix_page grep -q '"component":"bucket","prefix":"/bkt"' <<<"$bpage"
check web_prefix_js test "$(http_code "$B$(grep -o '/static/app-[0-9A-Za-z]*\.js' <<<"$bpage")")" = 200
check web_prefix_blocks_api grep -q '^{"status":"success","data":{"blocks":\[\]' <(curl -s "$B/api/v1/blocks?view=global")
check web_prefix_mark_api grep -q 'ID cannot be empty"} 400' <(curl -s -w ' %{http_code}' -X POST "$B/api/v1/blocks/mark" -d action=DELETION)

# `strata compact --wait` serves the viewer of the bucket it compacts (under a route prefix here, with
# admin operations disabled); --web.disable leaves only /metrics and the probes.
compact() { # name port flags...
	local name=$1 port=$2
	shift 2
	start_bg "$name" "$STRATA_BIN" compact --wait --objstore.config="type: FILESYSTEM
config:
  directory: $TEST_TMP/bucket" --data-dir="$TEST_TMP/$name" --http-address=127.0.0.1:$port --http-grace-period=1s "$@"
	wait_url "http://127.0.0.1:$port/-/ready" 20 || fail setup "strata compact ($name) not ready: $(tail -5 "$TEST_TMP/$name.log")"
}
cp=$(free_port)
compact compact $cp --web.route-prefix=/c --disable-admin-operations --bucket-web-label=cluster
C=http://127.0.0.1:$cp/c
check compact_home_redirect test "$(curl -s -o /dev/null -w '%{redirect_url}' "$C/")" = "$C/blocks"
check compact_blocks_page grep -q '"component":"compact","prefix":"/c".*"adminDisabled":true,"pages":\["blocks","loaded"\]' <(curl -s "$C/blocks")
check compact_blocks_api grep -q '^{"status":"success","data":{"blocks":\[\],"label":"cluster"' <(curl -s "$C/api/v1/blocks?view=global")
check compact_mark_refused grep -q '"errorType":"bad_data".*} 400' <(curl -s -w ' %{http_code}' -X POST "$C/api/v1/blocks/mark" \
	-d id=01ARZ3NDEKTSV4RRFFQ69G5FAV -d action=DELETION)
check compact_metrics_at_root test "$(http_code "http://127.0.0.1:$cp/metrics")" = 200
dp=$(free_port)
compact compact_noweb $dp --web.disable
check compact_web_disabled test "$(http_code "http://127.0.0.1:$dp/blocks") $(http_code "http://127.0.0.1:$dp/api/v1/blocks")" = "404 404"
check compact_web_disabled_metrics test "$(http_code "http://127.0.0.1:$dp/metrics")" = 200
check compact_bad_route_prefix grep -q "web.route-prefix c must start with '/'" \
	<("$STRATA_BIN" compact --web.route-prefix=c --objstore.config="type: FILESYSTEM
config:
  directory: $TEST_TMP/bucket" --check-config 2>&1)
finish
