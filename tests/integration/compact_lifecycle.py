#!/usr/bin/python3
"""What `strata compact` and the bucket tools do to blocks besides compacting them, in a FILESYSTEM
bucket of promtool-made 2h blocks (six per stream, cloned with fresh ULIDs for each stream).

never halts:  stream a has a block with a corrupted chunk, stream b one with a truncated (unreadable)
              index, stream c is healthy: both bad blocks get no-compact-mark.json (reason corrupt-block,
              the error in details), stream c and the rest of a and b are compacted, the process keeps
              running (--wait) with thanos_compact_halted 0 and the marks counted; SIGTERM exits 0.
retention:    --retention.resolution-raw marks the blocks whose maxTime is older (and only those) while
              --delete-delay=1h keeps them; a run with --delete-delay=0s deletes them; a partial upload
              (no meta.json) older than 48h is deleted, a fresh one is not, nor an old block (ULID
              3 days old) whose upload is in progress (its objects are fresh).
consistency:  a stream uploaded just now is left alone with --consistency-delay=30m, compacted with 0s.
tools:        `tools bucket mark` puts and removes markers; `tools bucket retention` marks and
              `tools bucket cleanup` deletes; `tools bucket rewrite` prints the series it would change in
              dry-run mode and changes nothing, then (--no-dry-run) writes a block whose promtool dump
              differs from the old one's by exactly the deleted series' samples in the interval, records
              thanos.rewrites and marks the old block.
"""
import json, os, random, shutil, signal, subprocess, sys, tempfile, time, urllib.request
from lib_harness import Harness, free_port, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("compact_lifecycle")
result, check = harness.result, harness.check

H = 3600
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms):
    v = (ms << 80) | random.getrandbits(80)
    return "".join(CROCKFORD[(v >> (5 * i)) & 31] for i in range(25, -1, -1))


def make_blocks(tmp, base):
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE m counter\n")
        for t in range(base, base + 12 * H, 60):
            for s in range(20):
                f.write(f'm_total{{inst="i{s:02d}"}} {(t - base) // 60 * (s + 1)} {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sorted((json.load(open(os.path.join(out, d, "meta.json")))["minTime"], os.path.join(out, d))
                  for d in os.listdir(out) if len(d) == 26)


def add_stream(bdir, blocks, cluster, ulid_ms=None):
    """Copies of the blocks into the bucket with fresh ULIDs and thanos labels; returns ULIDs by time."""
    ids = []
    for _, src in blocks:
        u = ulid(ulid_ms or int(time.time() * 1000))
        dst = os.path.join(bdir, u)
        shutil.copytree(src, dst)
        m = json.load(open(os.path.join(dst, "meta.json")))
        m["ulid"] = u
        m["compaction"]["sources"] = [u]
        m["thanos"] = {"labels": {"cluster": cluster}, "downsample": {"resolution": 0}, "source": "bucket.upload"}
        json.dump(m, open(os.path.join(dst, "meta.json"), "w"), indent="\t")
        os.remove(os.path.join(dst, "tombstones"))
        ids.append(u)
    return ids


def stream(bdir, cluster):
    """Live blocks of a stream: [(minTime, maxTime, level, ulid)] sorted."""
    out = []
    for d in os.listdir(bdir):
        p = os.path.join(bdir, d)
        if len(d) != 26 or not os.path.exists(os.path.join(p, "meta.json")) or \
                os.path.exists(os.path.join(p, "deletion-mark.json")):
            continue
        m = json.load(open(os.path.join(p, "meta.json")))
        if m["thanos"]["labels"].get("cluster") == cluster:
            out.append((m["minTime"], m["maxTime"], m["compaction"]["level"], d))
    return sorted(out)


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def dump(d):
    os.makedirs(os.path.join(d, "wal"), exist_ok=True)
    r = subprocess.run(["promtool", "tsdb", "dump", d], check=True, capture_output=True, text=True)
    shutil.rmtree(os.path.join(d, "wal"))
    shutil.rmtree(os.path.join(d, "chunks_head"), ignore_errors=True)
    return set(l for l in r.stdout.splitlines() if l.startswith("{"))


def main():
    tmp = tempfile.mkdtemp(prefix="strata-compact-life.")
    try:
        base = (int(time.time()) // (48 * H) - 2) * 48 * H
        blocks = make_blocks(tmp, base)
        assert len(blocks) == 6, blocks
        bdir = os.path.join(tmp, "bucket")
        os.makedirs(bdir)
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
        old = int(time.time() * 1000) - 3600 * 1000  # older than any consistency delay used below
        a, b, c = (add_stream(bdir, blocks, x, old) for x in "abc")
        # a: flip a byte inside block 1's first chunk; b: block 2's index cut in half
        seg = os.path.join(bdir, a[1], "chunks", "000001")
        data = bytearray(open(seg, "rb").read())
        data[20] ^= 0xFF
        open(seg, "wb").write(bytes(data))
        ix = os.path.join(bdir, b[2], "index")
        open(ix, "r+b").truncate(os.path.getsize(ix) // 2)

        def compact(*extra, wait=False, port=None):
            args = [STRATA, "compact", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                    f"--http-address=127.0.0.1:{port or free_port()}", "--http-grace-period=1s", *extra]
            log = open(os.path.join(tmp, "compact.log"), "a")
            if wait:
                return subprocess.Popen(args + ["--wait", "--wait-interval=1h"], stdout=log, stderr=subprocess.STDOUT)
            return subprocess.run(args, stdout=log, stderr=subprocess.STDOUT).returncode

        # ---- never halts ----
        port = free_port()
        p = compact("--consistency-delay=0s", "--delete-delay=1h", wait=True, port=port)
        try:
            wait_until(lambda: metric(port, "thanos_compact_iterations_total") >= 1, p, "first iteration", 60)
            result("halts_never:still_running", p.poll() is None and metric(port, "thanos_compact_halted") == 0,
                   "process exited or halted")
            marked = metric(port, "thanos_compact_blocks_marked_total", 'marker="no-compact-mark.json",reason="corrupt-block"')
            result("halts_never:marks_counted", marked == 2, f"{marked} corrupt-block marks counted")
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(20)
        result("halts_never:sigterm_exit_0", rc == 0, f"exit {rc}")
        for name, u, want in (("corrupt_chunk", a[1], "chunk"), ("unreadable_index", b[2], "index")):
            mf = os.path.join(bdir, u, "no-compact-mark.json")
            m = json.load(open(mf)) if os.path.exists(mf) else {}
            result(f"halts_never:{name}_marked", m.get("reason") == "corrupt-block" and m.get("id") == u and
                   want in m.get("details", "").lower() and m.get("version") == 1, json.dumps(m))
        H8 = 8 * H * 1000
        lv = lambda s: [(x[2], (x[0] // 1000 - base) // H) for x in stream(bdir, s)]
        result("halts_never:healthy_stream_compacted", lv("c") == [(2, 0), (1, 8), (1, 10)], str(lv("c")))
        result("halts_never:others_compacted_around", lv("a") == [(1, 0), (1, 2), (2, 4), (1, 8), (1, 10)] and
               lv("b") == [(2, 0), (1, 4), (1, 6), (1, 8), (1, 10)], f"a {lv('a')} b {lv('b')}")
        # a second run leaves the marked blocks alone and fails on nothing
        rc = compact("--consistency-delay=0s", "--delete-delay=1h")
        result("halts_never:second_run_clean", rc == 0 and lv("a")[0][1] == 0, f"exit {rc}")

        # ---- retention, delete delay, partial uploads ----
        now = int(time.time())
        ret = now - (base + 9 * H)  # blocks ending before base+9h are past it
        before = {s: stream(bdir, s) for s in "abc"}
        # old_partial: an upload aborted 49h ago; uploading: a block cut 3 days ago whose upload is in
        # progress (objects written now, meta.json not yet); new_partial: a fresh one.
        old_partial, uploading, new_partial = ulid((now - 49 * H) * 1000), ulid((now - 72 * H) * 1000), ulid(now * 1000)
        for u in (old_partial, uploading, new_partial):
            os.makedirs(os.path.join(bdir, u, "chunks"))
            for f in ("chunks/000001", "index"):
                open(os.path.join(bdir, u, f), "w").write("partial")
                if u == old_partial:
                    os.utime(os.path.join(bdir, u, f), (now - 49 * H, now - 49 * H))
        rc = compact("--consistency-delay=0s", "--delete-delay=1h", f"--retention.resolution-raw={ret}s")
        marked = sorted(d for d in os.listdir(bdir) if os.path.exists(os.path.join(bdir, d, "deletion-mark.json")) and
                        os.path.exists(os.path.join(bdir, d, "meta.json")))
        past = sorted(x[3] for s in "abc" for x in before[s] if x[1] < (base + 9 * H) * 1000)
        result("retention:marks_past_blocks", rc == 0 and set(past) <= set(marked) and
               all(x[1] >= (base + 9 * H) * 1000 for s in "abc" for x in stream(bdir, s)),
               f"exit {rc}; past {len(past)}, marked {len(marked)}")
        result("retention:delete_delay_keeps", all(os.path.exists(os.path.join(bdir, u, "index")) for u in past),
               "a marked block was deleted before its delay")
        result("partial:old_deleted_fresh_kept", not os.path.exists(os.path.join(bdir, old_partial)) and
               os.path.exists(os.path.join(bdir, new_partial)), "partial uploads handled wrongly")
        result("partial:old_block_uploading_kept", os.path.exists(os.path.join(bdir, uploading, "index")),
               "an upload in progress of an old block was deleted")
        rc = compact("--consistency-delay=0s", "--delete-delay=0s")
        result("retention:deleted_after_delay", rc == 0 and not any(os.path.exists(os.path.join(bdir, u)) for u in marked),
               f"exit {rc}; left: {[u for u in marked if os.path.exists(os.path.join(bdir, u))]}")
        shutil.rmtree(os.path.join(bdir, new_partial))
        shutil.rmtree(os.path.join(bdir, uploading))

        # ---- consistency delay ----
        d = add_stream(bdir, blocks, "d")
        rc = compact("--consistency-delay=30m", "--delete-delay=0s")
        result("consistency:fresh_blocks_untouched", rc == 0 and len(stream(bdir, "d")) == 6 and
               all(x[2] == 1 for x in stream(bdir, "d")), str(lv("d")))
        rc = compact("--consistency-delay=0s", "--delete-delay=0s")
        result("consistency:compacted_without_delay", rc == 0 and len(stream(bdir, "d")) == 3, str(lv("d")))

        # ---- tools bucket mark ----
        t = lambda *a: subprocess.run([STRATA, "tools", "bucket", *a, "--objstore.config=" + cfg], capture_output=True,
                                      text=True)
        u = stream(bdir, "d")[-1][3]
        r1 = t("mark", "--id=" + u, "--marker=no-compact-mark.json", "--details=keep it")
        m = json.load(open(os.path.join(bdir, u, "no-compact-mark.json")))
        r2 = t("mark", "--id=" + u, "--marker=no-compact-mark.json", "--remove")
        r3 = t("mark", "--id=" + ulid(0), "--marker=deletion-mark.json", "--details=x")
        result("tools:mark", r1.returncode == 0 and m["reason"] == "manual" and m["details"] == "keep it" and
               r2.returncode == 0 and not os.path.exists(os.path.join(bdir, u, "no-compact-mark.json")) and
               r3.returncode == 1, f"{r1.stderr} {r2.stderr} {r3.returncode}")

        # ---- tools bucket retention + cleanup ----
        e = add_stream(bdir, blocks, "e", old)
        r1 = t("retention", f"--retention.resolution-raw={now - (base + 5 * H)}s", "--consistency-delay=0s")
        em = [x for x in e if os.path.exists(os.path.join(bdir, x, "deletion-mark.json"))]
        r2 = t("cleanup", "--delete-delay=0s", "--consistency-delay=0s")
        result("tools:retention_then_cleanup", r1.returncode == 0 and em == e[:2] and r2.returncode == 0 and
               not any(os.path.exists(os.path.join(bdir, x)) for x in em) and len(stream(bdir, "e")) == 4,
               f"{r1.stdout} marked {len(em)}; {r2.stdout}{r2.stderr}")

        # ---- tools bucket rewrite ----
        target = e[3]
        tdir = os.path.join(tmp, "rw-old")
        shutil.copytree(os.path.join(bdir, target), os.path.join(tdir, target))
        old_dump = dump(tdir)
        lo, hi = (base + 6 * H + 1800) * 1000, (base + 7 * H) * 1000
        conf = (f'- matchers: \'{{inst=~"i0[12]"}}\'\n  intervals: [{{mint: {lo}, maxt: {hi}}}]\n  request_id: r1\n'
                f'- matchers: \'m_total{{inst="i07"}}\'\n')
        files = lambda: sorted(os.listdir(bdir))
        before_files = files()
        r = t("rewrite", "--id=" + target, "--rewrite.to-delete-config=" + conf, "--tmp.dir=" + os.path.join(tmp, "rw"))
        result("tools:rewrite_dry_run", r.returncode == 0 and files() == before_files and
               r.stdout.count("series {") == 3 and "dry run" in r.stdout, r.stdout + r.stderr)
        r = t("rewrite", "--id=" + target, "--rewrite.to-delete-config=" + conf, "--tmp.dir=" + os.path.join(tmp, "rw"),
              "--no-dry-run")
        new = [x for x in files() if x not in before_files]
        ok = r.returncode == 0 and len(new) == 1 and os.path.exists(os.path.join(bdir, target, "deletion-mark.json"))
        result("tools:rewrite_new_block", ok, r.stdout + r.stderr)
        if ok:
            nm = json.load(open(os.path.join(bdir, new[0], "meta.json")))
            rw = nm["thanos"].get("rewrites", [])
            result("tools:rewrite_recorded", len(rw) == 1 and rw[0]["sources"] == [target] and
                   rw[0]["deletions_applied"][0]["request_id"] == "r1" and nm["minTime"] == json.load(
                       open(os.path.join(tdir, target, "meta.json")))["minTime"], json.dumps(nm["thanos"]))
            ndir = os.path.join(tmp, "rw-new")
            shutil.copytree(os.path.join(bdir, new[0]), os.path.join(ndir, new[0]))
            new_dump = dump(ndir)
            gone = old_dump - new_dump

            def deleted(line):
                ts = int(line.rsplit(" ", 1)[1])
                return 'inst="i07"' in line or (('inst="i01"' in line or 'inst="i02"' in line) and lo <= ts <= hi)
            want = {l for l in old_dump if deleted(l)}
            result("tools:rewrite_dump_diff", gone == want and not (new_dump - old_dump) and len(want) == 120 + 2 * 31,
                   f"{len(gone)} gone, {len(want)} expected, {len(new_dump - old_dump)} new")
    finally:
        if harness.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
