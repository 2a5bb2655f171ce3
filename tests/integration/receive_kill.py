"""`strata receive` crash safety: nothing acknowledged is ever lost, nothing is stored twice.

Load + kill -9: the C load generator (bench/receive_loadgen, --retry like Prometheus) writes 2,000
series in requests of 200 samples and logs every acknowledged request; the receiver is killed with
SIGKILL at random moments under that load, several times, and restarted each time (the sender keeps
retrying). Then: every acknowledged sample is read back over the StoreAPI with its value and no
timestamp twice (receive_loadgen verify), and every restart logged its WAL replay time.

Torn WAL tail: after more acknowledged writes (A), a further batch of writes (B) goes in and the
receiver is killed; the WAL segment it was writing is then cut at a random byte inside the part B
wrote (what a power loss does to writes not yet synced). Start succeeds (the tail is repaired and
logged), every sample acknowledged before B is there, nothing twice.
"""
import glob
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness  # noqa: E402
from lib_receive import LOADGEN, Receiver, loadgen  # noqa: E402

H = Harness("receive_kill")
tmp = tempfile.mkdtemp(prefix="strata-receive-kill-")
rng = random.Random(int(os.environ.get("STRATA_TEST_SEED", time.time())))
SERIES, BATCH, INTERVAL = 2000, 200, 1000
START = (int(time.time()) - 3600) * 1000
r = Receiver(tmp).start()
ack1 = os.path.join(tmp, "ack1.log")
try:
    lg = subprocess.Popen([LOADGEN, "write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}",
                           "--rounds=1000000", f"--start={START}", f"--interval={INTERVAL}", "--concurrency=4",
                           "--retry", f"--ack-log={ack1}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kills = 0
    for i in range(4):
        time.sleep(rng.uniform(1.0, 3.0))
        r.kill9()
        kills += 1
        r.start()
    time.sleep(1.5)
    lg.send_signal(signal.SIGTERM)
    out, _ = lg.communicate(timeout=60)
    H.result("loadgen_ran", lg.returncode == 0 and "samples=" in out, out)
    with open(ack1) as f:
        acked = [tuple(map(int, line.split())) for line in f if line.strip()]
    H.result("acknowledged_under_kills", len(acked) > 40, f"only {len(acked)} requests acknowledged")
    r.kill9()
    r.start()
    replays = re.findall(r"wal_replay_seconds=([0-9.]+)", r.log_text())
    H.result("wal_replay_time_logged", len(replays) >= kills + 1, f"{len(replays)} replay log lines")
    rc, out = loadgen("verify", f"--grpc=127.0.0.1:{r.grpc}", f"--ack-log={ack1}", f"--series={SERIES}",
                      f"--batch={BATCH}", f"--start={START}", f"--interval={INTERVAL}")
    H.result("every_acknowledged_sample_once", rc == 0, out)
    print(f"info: kill rounds={kills} acknowledged_requests={len(acked)} replay_seconds={replays}")

    # ---- torn tail ----
    last_round = max(a[0] for a in acked)
    start2 = START + (last_round + 5) * INTERVAL
    ack2, ack3 = os.path.join(tmp, "ack2.log"), os.path.join(tmp, "ack3.log")
    rc, out = loadgen("write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}", "--rounds=10",
                      f"--start={start2}", f"--interval={INTERVAL}", "--concurrency=4", f"--ack-log={ack2}")
    H.result("writes_A", rc == 0, out)
    wal = os.path.join(r.tsdb, "default-tenant", "wal")
    seg = sorted(p for p in glob.glob(os.path.join(wal, "*")) if os.path.basename(p).isdigit())[-1]
    s0 = os.path.getsize(seg)
    rc, out = loadgen("write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}", "--rounds=10",
                      f"--start={start2 + 10 * INTERVAL}", f"--interval={INTERVAL}", "--concurrency=4",
                      f"--ack-log={ack3}")
    H.result("writes_B", rc == 0, out)
    r.kill9()
    s1 = os.path.getsize(seg)
    cut = rng.randrange(s0, s1) if s1 > s0 else s0
    os.truncate(seg, cut)
    print(f"info: torn tail: segment {seg} cut at byte {cut} (A ended at {s0}, B at {s1})")
    r.start()
    log = r.log_text()
    H.result("torn_tail_repaired_and_logged", "WAL corruption found" in log or cut == s0 or
             "wal_repaired=true" in log, "no repair logged")
    for name, ack, start in (("before_kills", ack1, START), ("writes_A", ack2, start2)):
        rc, out = loadgen("verify", f"--grpc=127.0.0.1:{r.grpc}", f"--ack-log={ack}", f"--series={SERIES}",
                          f"--batch={BATCH}", f"--start={start}", f"--interval={INTERVAL}")
        H.result(f"after_torn_tail_{name}_intact", rc == 0, out)
finally:
    rc = r.stop()
H.result("clean_exit", rc == 0, f"exit status {rc}")
sys.exit(1 if H.failed else 0)
