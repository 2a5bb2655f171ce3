"""Blocks cut by `strata receive` and shipped to the bucket.

3 hours of one-minute samples for 300 series go in (no cut yet: the head needs more than 3h); queries
over the first two hours are answered by the receiver's head. One more hour goes in: the head is cut
as Prometheus cuts it (the first 2h-aligned block), the block is uploaded (thanos.shipper.json,
meta.json with the tenant's external labels and source "receive"), deleted locally once past
--tsdb.retention, passes `promtool tsdb analyze` (in the bucket), and `strata store` over the bucket
answers the same queries exactly as the receiver did before the cut. On SIGTERM the rest of the head is cut and uploaded too: the bucket then holds every sample.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, free_port, stop, wait_ready, wait_until  # noqa: E402
from lib_receive import BIN, Receiver, loadgen, query_proc  # noqa: E402

H = Harness("receive_blocks")
tmp = tempfile.mkdtemp(prefix="strata-receive-blocks-")
bucket = os.path.join(tmp, "bucket")
os.makedirs(bucket)
objcfg = f"type: FILESYSTEM\nconfig: {{directory: {bucket}}}\n"
SERIES, BATCH, INTERVAL = 300, 100, 60000
H2 = 2 * 3600 * 1000
START = ((int(time.time() * 1000) - 6 * 3600 * 1000) // H2) * H2 + 30 * 60000  # 30m into a 2h window
procs = []


def query(port, q, t):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{t / 1000:.3f}"})
    d = json.load(urllib.request.urlopen(url, timeout=60))["data"]["result"]
    return sorted((json.dumps(s["metric"], sort_keys=True), s["value"][1]) for s in d)


QUERIES = ["sum(rw_metric_7)", "count_over_time(rw_metric_3[90m])", "max by (zone) (rw_metric_199)",
           "count({__name__=~\"rw_metric_.*\"})"]
block_end = (START // H2) * H2 + H2
TIMES = [START + 20 * INTERVAL, block_end - INTERVAL, block_end - 30 * INTERVAL]

r = Receiver(tmp, args=["--label=replica=\"r0\"", f"--objstore.config={objcfg}", "--tsdb.housekeeping-interval=1s",
                        "--tsdb.retention=3h"])
r.start()
try:
    rc, out = loadgen("write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}", "--rounds=180",
                      f"--start={START}", f"--interval={INTERVAL}", "--concurrency=3")
    H.result("ingest_3h", rc == 0, out)
    time.sleep(2.5)
    tenant = os.path.join(r.tsdb, "default-tenant")
    H.result("no_block_before_1_5_ranges", glob.glob(os.path.join(tenant, "01*")) == [])
    qp, qport = query_proc(tmp, [r.grpc], "query-receiver")
    procs.append(qp)
    before = {(q, t): query(qport, q, t) for q in QUERIES for t in TIMES}
    H.result("receiver_answers", all(before.values()), "empty answers")
    stop(qp)
    rc, out = loadgen("write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}", "--rounds=60",
                      f"--start={START + 180 * INTERVAL}", f"--interval={INTERVAL}", "--concurrency=3")
    H.result("ingest_4th_hour", rc == 0, out)
    shipper = os.path.join(tenant, "thanos.shipper.json")
    wait_until(lambda: json.load(open(shipper))["uploaded"], r.proc, "block upload", timeout=60)
    ulid = json.load(open(shipper))["uploaded"][0]
    meta = json.load(open(os.path.join(bucket, ulid, "meta.json")))
    H.result("block_range_like_prometheus", meta["minTime"] == START and meta["maxTime"] == block_end,
             f"{meta['minTime']}..{meta['maxTime']}, want {START}..{block_end}")
    H.result("block_thanos_meta", meta["thanos"]["source"] == "receive" and
             meta["thanos"]["labels"] == {"replica": "r0", "tenant_id": "default-tenant"}, meta.get("thanos"))
    # the local copy goes once uploaded and past --tsdb.retention (3h; the block ended 4h or more ago)
    wait_until(lambda: not os.path.exists(os.path.join(tenant, ulid)), r.proc, "local block deletion", timeout=30)
    H.result("local_block_deleted_after_upload_past_retention", True)
    an = subprocess.run(["promtool", "tsdb", "analyze", bucket, ulid], capture_output=True, text=True, timeout=120)
    H.result("promtool_analyze", an.returncode == 0 and f"Block ID: {ulid}" in an.stdout,
             an.stdout[-500:] + an.stderr[-500:])
    sport, sgrpc = free_port(), free_port()
    slog = open(os.path.join(tmp, "store.log"), "w")
    sp = subprocess.Popen([BIN, "store", f"--objstore.config={objcfg}", f"--data-dir={tmp}/store-data",
                           f"--http-address=127.0.0.1:{sport}", f"--grpc-address=127.0.0.1:{sgrpc}"],
                          stdout=slog, stderr=subprocess.STDOUT)
    procs.append(sp)
    wait_ready(sport, sp, "store")
    qp, qport = query_proc(tmp, [sgrpc], "query-store")
    procs.append(qp)
    diff = [(q, t) for q in QUERIES for t in TIMES if query(qport, q, t) != before[(q, t)]]
    H.result("store_gateway_equals_receiver_before_cut", not diff,
             f"{len(diff)} differ, e.g. {diff[:1]}: {before[diff[0]][:2] if diff else ''} vs "
             f"{query(qport, diff[0][0], diff[0][1])[:2] if diff else ''}")
    stop(qp)
    stop(sp)
    # SIGTERM: the rest of the head is cut and uploaded
    rc = r.stop()
    H.result("clean_exit", rc == 0, f"exit status {rc}")
    total = 0
    for m in glob.glob(os.path.join(bucket, "*", "meta.json")):
        total += json.load(open(m))["stats"]["numSamples"]
    H.result("bucket_holds_every_sample_after_shutdown", total == SERIES * 240, f"{total} samples, want {SERIES * 240}")
finally:
    for p in procs:
        stop(p)
    if r.proc.poll() is None:
        r.stop()
sys.exit(1 if H.failed else 0)
