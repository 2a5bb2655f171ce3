#!/usr/bin/python3
"""The web UI in a real browser: Debian's headless chromium driven by playwright-core (from src/ui's npm
packages) against `strata query` over two `strata store`s, and against the block viewer of
`strata tools bucket web` (with and without --disable-admin-operations) and `strata store`.

Data: promtool blocks over the last ~3h (so the editor's completion, which looks back 12h, sees them):
  ui_temp{sensor="s0".."s4"}      gauge, value = 10*sensor + (minute of the hour % 7), every 30s;
  ui_requests_total{instance=...} counter, scraped by two HA replicas.
Replica A's blocks go to bucket A (external labels cluster="ui", replica="a"), replica B's to bucket B
(replica="b"); `strata query --query.replica-label=replica` over both stores. Bucket A also gets a
compacted (level 2) copy of the gauge data under another stream (cluster="ui-history") so the block
viewer has two levels and two rows. A `strata rule` (an endpoint of the querier, querying it) evaluates a
recording rule and two alerts, one firing, so the rules and alerts pages show what rulers serve.

Downsampled data: bucket D holds one raw block of 42h (ui_ds{sensor}, one sample a minute alternating
0/100, so 5m averages differ from raw values), served by a third `strata store`. `strata compact --wait`
over bucket D downsamples it to 5m and serves the block viewer (/blocks) of bucket D; the query page's
max_source_resolution choice then gives the raw or the 5m answer, each equal to the API's.

A second querier under --web.route-prefix also has an endpoint nobody listens on: its answers carry a
partial-response warning, which the query page shows (and an error without partial response).

Tenancy: bucket T holds three tenants' blocks (external label tenant_id="team-a", "team-b",
"default-tenant"; ui_tenant_up{job} with other jobs per tenant, and ui_only_team_a / ui_only_team_b),
served by a fourth `strata store`; a third querier over it runs with --query.enforce-tenancy and
--query.tenant-header=X-Scope-OrgID, so its UI has a tenant field whose tenant every API call sends in
that header.

The browser steps (tests/integration/ui/ui_test.mjs) print PASS/FAIL lines; screenshots of every page go
to $STRATA_TEST_LOGDIR/screenshots (kept by tests/run). Bounded: every wait has a timeout, and the
whole run is killed after 150 s.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("ui_browser")
procs = []

NOW = int(time.time())
START = (NOW - 3 * 3600) // 60 * 60
END = (NOW - 600) // 60 * 60


def start(tmp, name, argv):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def om_blocks(tmp, name, lines_for):
    om = os.path.join(tmp, name + ".om")
    with open(om, "w") as f:
        f.write("# TYPE ui_temp gauge\n# TYPE ui_requests counter\n")
        for t in range(START, END + 1, 30):
            for line in lines_for(t):
                f.write(f"{line} {t}\n")
        f.write("# EOF\n")
    out = os.path.join(tmp, name)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def temp_lines(t):
    for s in range(5):
        yield f'ui_temp{{sensor="s{s}"}} {10 * s + (t // 60) % 7}'


def req_lines(offset):
    def f(t):
        for i in range(3):
            yield f'ui_requests_total{{instance="10.0.0.{i}:9100"}} {(t - START) // 30 * (i + 1) + offset}'
        yield from temp_lines(t)
    return f


def tenant_blocks(tmp, tenant, jobs):
    om = os.path.join(tmp, tenant + ".om")
    with open(om, "w") as f:
        f.write("# TYPE ui_tenant_up gauge\n")
        for t in range(START, END + 1, 60):
            for i, job in enumerate(jobs):
                f.write(f'ui_tenant_up{{job="{job}"}} {i + 1} {t}\n')
            if tenant.startswith("team-"):
                f.write(f'ui_only_{tenant.replace("-", "_")} 1 {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, tenant)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def upload(bucket_dir, path, *labels):
    cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bucket_dir}\n"
    subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + path] +
                   [f"--label={l}" for l in labels], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cfg


def level2(bucket_dir):
    """Rewrite one uploaded ui-history block's meta.json as a level-2 compaction result (what the viewer
    colours differently); its content stays valid."""
    for ulid in sorted(os.listdir(bucket_dir)):
        mp = os.path.join(bucket_dir, ulid, "meta.json")
        if not os.path.exists(mp):
            continue
        m = json.load(open(mp))
        if m.get("thanos", {}).get("labels", {}).get("cluster") == "ui-history":
            m["compaction"]["level"] = 2
            m["compaction"]["sources"] = [m["ulid"], "01ARZ3NDEKTSV4RRFFQ69G5FAV"]
            json.dump(m, open(mp, "w"), indent="\t")
            return ulid
    raise RuntimeError("no ui-history block uploaded")


def ds_block(tmp, bucket_dir):
    """One raw block of 42h (a 48h-aligned window, so downsampling to 5m applies: span >= 40h)."""
    w = ((NOW - 42 * 3600) // (48 * 3600)) * 48 * 3600
    om = os.path.join(tmp, "ds.om")
    with open(om, "w") as f:
        f.write("# TYPE ui_ds gauge\n")
        for t in range(w, w + 42 * 3600, 60):
            for s in range(2):
                f.write(f'ui_ds{{sensor="d{s}"}} {100 * (((t // 60) + s) % 2)} {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "ds")
    subprocess.run([STRATA, "tools", "block", "write", "--max-block-duration=48h", "--quiet", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return upload(bucket_dir, out, 'cluster="ui-ds"'), w


def resolutions(bucket_dir):
    out = []
    for ulid in sorted(os.listdir(bucket_dir)):
        mp = os.path.join(bucket_dir, ulid, "meta.json")
        if os.path.exists(mp):
            out.append(json.load(open(mp))["thanos"]["downsample"]["resolution"])
    return sorted(out)


def main():
    tmp = tempfile.mkdtemp(prefix="strata-ui-browser.")
    logdir = os.environ.get("STRATA_TEST_LOGDIR") or tmp
    shots = os.path.join(logdir, "screenshots")
    os.makedirs(shots, exist_ok=True)
    out = ""
    try:
        ba, bb = os.path.join(tmp, "bucket-a"), os.path.join(tmp, "bucket-b")
        os.makedirs(ba)
        os.makedirs(bb)
        cfg_a = upload(ba, om_blocks(tmp, "a", req_lines(0)), 'cluster="ui"', 'replica="a"')
        upload(ba, om_blocks(tmp, "hist", temp_lines), 'cluster="ui-history"')
        lvl2 = level2(ba)
        cfg_b = upload(bb, om_blocks(tmp, "b", req_lines(0)), 'cluster="ui"', 'replica="b"')
        bd = os.path.join(tmp, "bucket-d")
        os.makedirs(bd)
        cfg_d, ds_start = ds_block(tmp, bd)
        bt = os.path.join(tmp, "bucket-t")
        os.makedirs(bt)
        for tenant, jobs in (("team-a", ["a1", "a2"]), ("team-b", ["b1"]), ("default-tenant", ["d1"])):
            cfg_t = upload(bt, tenant_blocks(tmp, tenant, jobs), f'tenant_id="{tenant}"')

        stores = []
        for name, cfg, sync in (("a", cfg_a, "15m"), ("b", cfg_b, "15m"), ("d", cfg_d, "1s"), ("t", cfg_t, "15m")):
            gp, hp = free_port(), free_port()
            p = start(tmp, "store-" + name, [STRATA, "store", "--objstore.config=" + cfg,
                                             "--data-dir=" + os.path.join(tmp, "data-" + name),
                                             f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}",
                                             "--http-grace-period=1s", "--sync-block-duration=" + sync])
            stores.append((p, gp, hp, name))
        # The compactor downsamples bucket D's raw block (it is fresh: no consistency delay) and serves
        # bucket D's block viewer.
        cport = free_port()
        comp = start(tmp, "compact", [STRATA, "compact", "--wait", "--wait-interval=1h", "--consistency-delay=0s",
                                      "--objstore.config=" + cfg_d, "--data-dir=" + os.path.join(tmp, "compact"),
                                      f"--http-address=127.0.0.1:{cport}", "--http-grace-period=1s"])
        qport, qgrpc, rgrpc, rhttp = free_port(), free_port(), free_port(), free_port()
        q = start(tmp, "query", [STRATA, "query", f"--http-address=127.0.0.1:{qport}",
                                 f"--grpc-address=127.0.0.1:{qgrpc}", "--query.replica-label=replica",
                                 "--http-grace-period=1s", "--grpc-grace-period=1s", f"--endpoint=127.0.0.1:{rgrpc}"] +
                  [f"--endpoint=127.0.0.1:{gp}" for (_, gp, _, n) in stores if n != "t"])
        # A querier that enforces tenancy, over the tenants' store.
        tport = free_port()
        qt = start(tmp, "query-tenancy", [STRATA, "query", f"--http-address=127.0.0.1:{tport}",
                                          f"--grpc-address=127.0.0.1:{free_port()}", "--query.enforce-tenancy",
                                          "--query.tenant-header=X-Scope-OrgID", "--http-grace-period=1s",
                                          "--grpc-grace-period=1s", f"--endpoint=127.0.0.1:{stores[3][1]}"])
        # The same querier under --web.route-prefix (the UI's links, assets and API calls carry it).
        pport = free_port()
        qp = start(tmp, "query-prefix", [STRATA, "query", f"--http-address=127.0.0.1:{pport}",
                                         f"--grpc-address=127.0.0.1:{free_port()}", "--query.replica-label=replica",
                                         "--web.route-prefix=/strata", "--http-grace-period=1s",
                                         "--grpc-grace-period=1s", f"--endpoint=127.0.0.1:{free_port()}"] +
                   [f"--endpoint=127.0.0.1:{gp}" for (_, gp, _, n) in stores if n != "t"])
        webs = {}
        for name, extra in (("web", []), ("web_ro", ["--disable-admin-operations"])):
            wp = free_port()
            webs[name] = (start(tmp, "bucket-" + name, [STRATA, "tools", "bucket", "web", "--objstore.config=" + cfg_a,
                                                        f"--http-address=127.0.0.1:{wp}", "--http-grace-period=1s"]
                                + extra), wp)
        rules = os.path.join(tmp, "ui.rules.yml")
        with open(rules, "w") as f:
            f.write("""groups:
- name: ui-example
  interval: 1s
  rules:
  - record: ruler:example:one
    expr: vector(1)
  - alert: UIExampleFiring
    expr: vector(1) > 0
    labels: {severity: info}
    annotations: {summary: "value is {{ $value }}"}
  - alert: UIExampleQuiet
    expr: vector(0) > 1
""")
        r = start(tmp, "rule", [STRATA, "rule", f"--rule-file={rules}", f"--data-dir={tmp}/rule",
                                f"--query=127.0.0.1:{qport}", f"--grpc-address=127.0.0.1:{rgrpc}",
                                f"--http-address=127.0.0.1:{rhttp}", "--eval-interval=1s", '--label=ruler="ui"',
                                "--http-grace-period=1s"])
        for p, _, hp, name in stores:
            wait_ready(hp, p, "strata store " + name)
        for name, (p, wp) in webs.items():
            wait_ready(wp, p, "strata tools bucket " + name)
        wait_ready(qport, q, "strata query")
        wait_ready(pport, qp, "strata query --web.route-prefix")
        wait_ready(tport, qt, "strata query --query.enforce-tenancy")
        # The queriers see every store's label sets before the browser starts.
        def stores_known(base):
            d = json.load(urllib.request.urlopen(base + "/api/v1/stores", timeout=2))["data"]
            return sum(1 for s in d.get("store", []) if s["labelSets"]) == 3
        wait_until(lambda: stores_known(f"http://127.0.0.1:{qport}"), q, "strata query's store list")
        wait_until(lambda: stores_known(f"http://127.0.0.1:{pport}/strata"), qp, "the prefixed querier's store list")
        def tenants_known():
            d = json.load(urllib.request.urlopen(f"http://127.0.0.1:{tport}/api/v1/stores", timeout=2))["data"]
            return sum(len(s["labelSets"]) for s in d.get("store", [])) == 3
        wait_until(tenants_known, qt, "the tenancy querier's store list")
        wait_ready(rhttp, r, "strata rule")

        def alert_firing():
            d = json.load(urllib.request.urlopen(f"http://127.0.0.1:{qport}/api/v1/alerts", timeout=5))["data"]
            return any(a["state"] == "firing" for a in d["alerts"])
        wait_until(alert_firing, r, "the ruler's alert firing through the querier")
        # The compactor has made the 5m block and store D has loaded it.
        wait_ready(cport, comp, "strata compact")
        wait_until(lambda: resolutions(bd) == [0, 300000], comp, "strata compact's downsampling", 60)
        def loaded_5m():
            u = f"http://127.0.0.1:{stores[2][2]}/api/v1/blocks?view=loaded&refresh=true"
            d = json.load(urllib.request.urlopen(u, timeout=5))["data"]["blocks"]
            return sorted(b["thanos"]["downsample"]["resolution"] for b in d) == [0, 300000]
        wait_until(loaded_5m, stores[2][0], "store D loading the 5m block", 30)

        env = dict(os.environ, UI_QUERY=f"http://127.0.0.1:{qport}", UI_QUERY_PREFIX_HOST=f"http://127.0.0.1:{pport}",
                   UI_BUCKET_WEB=f"http://127.0.0.1:{webs['web'][1]}",
                   UI_BUCKET_WEB_RO=f"http://127.0.0.1:{webs['web_ro'][1]}",
                   UI_STORE_WEB=f"http://127.0.0.1:{stores[0][2]}", UI_BUCKET_DIR=ba, UI_LEVEL2=lvl2,
                   UI_COMPACT_WEB=f"http://127.0.0.1:{cport}", UI_DS_BUCKET_DIR=bd, UI_DS_START=str(ds_start),
                   UI_STORES=json.dumps([f"127.0.0.1:{gp}" for (_, gp, _, n) in stores if n != "t"] +
                                        [f"127.0.0.1:{rgrpc}"]),
                   UI_QUERY_TENANCY=f"http://127.0.0.1:{tport}",
                   UI_START=str(START), UI_END=str(END), UI_SHOTS=shots)
        r = subprocess.run(["node", os.path.join(ROOT, "tests", "integration", "ui", "ui_test.mjs")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=150)
        out = r.stdout
        sys.stdout.write(out)
        if r.returncode != 0 and "FAIL " not in out:
            harness.result("driver", False, f"ui_test.mjs exited with {r.returncode}")
        print(f"screenshots: {shots}")
    finally:
        for p in procs:
            stop(p)
        if harness.failed:
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".log"):
                    print(f"--- {f}:")
                    print(open(os.path.join(tmp, f)).read()[-2000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if harness.failed or "FAIL " in out else 0


if __name__ == "__main__":
    sys.exit(main())
