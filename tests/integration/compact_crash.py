#!/usr/bin/python3
"""kill -9 of `strata compact` at random moments, over and over, against a FILESYSTEM bucket of 12
promtool-made 2h blocks: after every kill, queries through `strata store` (syncing every 500ms,
deletion marks honoured at once) and `strata query` answer exactly as they did before any compaction;
and a final uninterrupted run converges to the bucket layout (block ranges, levels, sources) of a
run that was never interrupted.

Each round starts the compactor (one-shot, --delete-delay=0s so its cleanup is exercised too) and
kills it in each phase in turn: up to 3 ms after the n-th log line that starts downloading
and merging, uploading, marking sources or deleting blocks, or at a random moment of the time an
uninterrupted run takes. In the rounds aimed at a phase, an LD_PRELOAD shim (built here with cc) makes
every unlink, rmdir and rename take 5 ms longer, so a fast machine cannot finish a phase between the
log line and the kill (the random-moment rounds run at full speed); the phase it was in (its last log line) is recorded and the test asks that
kills landed in every phase. When a round's compactor got to the end, the bucket is reset to the 12 blocks so
later rounds kill mid-work again (except before the final run). ROUNDS (default 20) and SERIES
(default 300) size it for bench-like runs.
"""
import json, os, random, shutil, signal, subprocess, sys, tempfile, time, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("compact_crash")
result, check = harness.result, harness.check

H = 3600
ROUNDS = int(os.environ.get("ROUNDS", "20"))
SERIES = int(os.environ.get("SERIES", "300"))


def make_blocks(tmp):
    base = (int(time.time()) // (48 * H) - 2) * 48 * H
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE m counter\n")
        for t in range(base, base + 24 * H, 60):
            for s in range(SERIES):
                f.write(f'm_total{{job="j{s % 5}",inst="i{s:04d}"}} {(t - base) // 60 * (s % 7 + 1)} {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, base


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def layout(bdir):
    """Live blocks (meta.json present, no deletion mark) as (minTime, maxTime, level, sources)."""
    out = []
    for d in os.listdir(bdir):
        p = os.path.join(bdir, d)
        if len(d) == 26 and os.path.exists(os.path.join(p, "meta.json")) and \
                not os.path.exists(os.path.join(p, "deletion-mark.json")):
            m = json.load(open(os.path.join(p, "meta.json")))
            out.append((m["minTime"], m["maxTime"], m["compaction"]["level"], tuple(sorted(m["compaction"]["sources"]))))
    return sorted(out)


def queries(base):
    end = base + 24 * H
    return [
        ("query_range", {"query": "sum by (job) (rate(m_total[10m]))", "start": base, "end": end, "step": 900}),
        ("query_range", {"query": 'm_total{inst="i0007"}', "start": base, "end": end, "step": 300}),
        ("query", {"query": "sum(count_over_time(m_total[24h]))", "time": end}),
        ("query", {"query": "count(m_total)", "time": base + 12 * H}),
    ]


def answers(port, base):
    out = []
    for kind, params in queries(base):
        url = f"http://127.0.0.1:{port}/api/v1/{kind}?" + urllib.parse.urlencode(params)
        r = json.loads(urllib.request.urlopen(url, timeout=30).read())
        if r.get("status") != "success" or r.get("warnings"):
            raise RuntimeError(f"{params['query']}: {r}")
        out.append(sorted(r["data"]["result"], key=lambda s: json.dumps(s["metric"], sort_keys=True)))
    return out


PHASES = (("compacting blocks", "download/merge"), ("uploading compacted block", "upload"),
          ("marked block", "marking"), ("deleted block", "deleting"), ("compaction iteration done", "done"))


SLOW_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>
static void slow(void) { struct timespec t = {0, 5000000}; nanosleep(&t, 0); }
#define SLOW(ret, name, params, args) \
	ret name params { static ret(*f) params; if (!f) f = (ret(*) params)dlsym(RTLD_NEXT, #name); slow(); return f args; }
SLOW(int, unlink, (const char *p), (p))
SLOW(int, unlinkat, (int d, const char *p, int fl), (d, p, fl))
SLOW(int, rmdir, (const char *p), (p))
SLOW(int, rename, (const char *a, const char *b), (a, b))
SLOW(int, renameat, (int da, const char *a, int db, const char *b), (da, a, db, b))
"""


def slow_shim(tmp):
    """A shared object that slows the compactor's file-system changes (see the module's docstring)."""
    src, so = os.path.join(tmp, "slow.c"), os.path.join(tmp, "slow.so")
    with open(src, "w") as f:
        f.write(SLOW_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], check=True)
    return so


def phase(logf):
    last = "start"
    for line in open(logf, errors="replace"):
        for key, name in PHASES:
            if key in line:
                last = name
    return last


def wait_line(logf, key, nth, proc, limit):
    """Until the n-th line with key is in logf (or proc ended, or limit seconds passed)."""
    t0 = time.time()
    while time.time() - t0 < limit and proc.poll() is None:
        if sum(key in l for l in open(logf, errors="replace")) >= nth:
            return
        time.sleep(0.002)


def main():
    tmp = tempfile.mkdtemp(prefix="strata-compact-crash.")
    procs = []
    try:
        blocks, base = make_blocks(tmp)
        snap = os.path.join(tmp, "snapshot")
        os.makedirs(snap)
        cfg_of = lambda d: f"type: FILESYSTEM\nconfig:\n  directory: {d}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg_of(snap),
                        "--path=" + blocks, '--label=cluster="eu1"'], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

        def compact_args(bdir, tag):
            return [STRATA, "compact", "--objstore.config=" + cfg_of(bdir), "--data-dir=" + os.path.join(tmp, "data-" + tag),
                    "--consistency-delay=0s", "--delete-delay=0s", f"--http-address=127.0.0.1:{free_port()}"]

        # The uninterrupted reference run, timed.
        ref = os.path.join(tmp, "ref")
        shutil.copytree(snap, ref)
        t0 = time.time()
        rc = subprocess.run(compact_args(ref, "ref"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        full = time.time() - t0
        want = layout(ref)
        result("reference_run", rc == 0 and len(want) == 6, f"exit {rc}, {len(want)} blocks")
        print(f"# uninterrupted run: {full:.2f}s")

        bdir = os.path.join(tmp, "bucket")
        shutil.copytree(snap, bdir)
        gp, hp, qp, qg = free_port(), free_port(), free_port(), free_port()
        log = open(os.path.join(tmp, "store.log"), "w")
        st = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg_of(bdir), "--data-dir=" + os.path.join(tmp, "sd"),
                               f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}", "--sync-block-duration=500ms",
                               "--ignore-deletion-marks-delay=0s", "--http-grace-period=1s"], stdout=log, stderr=subprocess.STDOUT)
        procs.append(st)
        wait_ready(hp, st, "strata store")
        q = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{qp}",
                              f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s"], stdout=log, stderr=subprocess.STDOUT)
        procs.append(q)
        wait_ready(qp, q, "strata query")
        wait_until(lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{qp}/api/v1/stores", timeout=2).read())["data"],
                   q, "store discovered")
        original = answers(qp, base)

        shim = slow_shim(tmp)
        rng = random.Random(os.environ.get("SEED", str(int(time.time()))))
        phases, mismatches, resets = {}, [], 0
        for r in range(ROUNDS):
            logf = os.path.join(tmp, f"compact-{r}.log")
            with open(logf, "w") as lf:
                pick = r % len(PHASES)  # every phase targeted in turn
                env = dict(os.environ)
                if pick < len(PHASES) - 1:
                    env["LD_PRELOAD"] = shim
                c = subprocess.Popen(compact_args(bdir, "crash"), stdout=lf, stderr=subprocess.STDOUT, env=env)
                if pick == len(PHASES) - 1:
                    time.sleep(rng.uniform(0, full * 1.1))
                else:
                    wait_line(logf, PHASES[pick][0], rng.randint(1, 2), c, 10 * full + 5)
                    time.sleep(rng.uniform(0, 0.003))
                if c.poll() is None:
                    c.send_signal(signal.SIGKILL)
                c.wait()
            ph = phase(logf)
            phases[ph] = phases.get(ph, 0) + 1
            syncs = metric(hp, "thanos_blocks_meta_syncs_total")
            wait_until(lambda: metric(hp, "thanos_blocks_meta_syncs_total") >= syncs + 2, st, "store sync", 20)
            got = answers(qp, base)
            if got != original:
                mismatches.append(f"round {r} ({ph}): " + ", ".join(queries(base)[i][1]["query"] for i in range(len(got))
                                                                   if got[i] != original[i]))
            if layout(bdir) == want and r < ROUNDS - 1:  # converged: start over to kill mid-work again
                shutil.rmtree(bdir)
                shutil.copytree(snap, bdir)
                resets += 1
        print(f"# kills by phase: {phases}; bucket reset {resets} times")
        result("queries_equal_after_every_kill", not mismatches, "; ".join(mismatches[:5]))
        missing = [n for _, n in PHASES[:4] if n not in phases]
        result("kills_landed_in_every_phase", not missing, f"none in {missing}: {phases}")

        rc = subprocess.run(compact_args(bdir, "final"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        got = layout(bdir)
        result("final_run_converges", rc == 0 and got == want, f"exit {rc}; {len(got)} blocks vs {len(want)}")
        partial = [d for d in os.listdir(bdir) if len(d) == 26 and not os.path.exists(os.path.join(bdir, d, "meta.json"))]
        print(f"# partial uploads left invisible (deleted after 48h): {len(partial)}")
        syncs = metric(hp, "thanos_blocks_meta_syncs_total")
        wait_until(lambda: metric(hp, "thanos_blocks_meta_syncs_total") >= syncs + 2, st, "store sync", 20)
        result("queries_equal_after_final_run", answers(qp, base) == original, "answers differ")
    finally:
        for p in procs:
            stop(p)
        if harness.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
