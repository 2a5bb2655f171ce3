#!/usr/bin/python3
"""Where Thanos's compactor halts, `strata compact` goes on: overlapping blocks of one stream and a plan whose
indexes are too big, in FILESYSTEM buckets of 2h blocks (`strata tools block write`, byte-identical to promtool's).

Each stream holds six 2h blocks of 20 series (one sample a minute) plus two blocks overlapping the
first two (the same series every minute at :30 — and at :00 with the very same values for the first half hour, as
a second producer with identical external labels would write them).

vertical (the default): the overlapping blocks are merged (one-to-one: identical samples collapsed); the stream's
    live blocks no longer overlap and `promtool tsdb dump` of them equals the union of the inputs' samples; a
    healthy stream next to it is compacted in the same run; exit 0.
vertical off (--no-compact.enable-vertical-compaction, --wait): the overlapping blocks are reported (log,
    strata_compact_skipped_blocks{reason="overlap-vertical-compaction-off"}) and left as they are, unmarked;
    the rest of that stream and the healthy stream are compacted; thanos_compact_halted stays 0; SIGTERM exits 0.
index size (--compact.block-max-index-size far below the plan's indexes): blocks of the plan get
    no-compact-mark.json with reason index-size-exceeding instead of a halt; exit 0.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request
from lib_harness import Harness, free_port, stop, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("compact_overlaps")
result, check = harness.result, harness.check

H = 3600


def write_blocks(tmp, name, lines):
    om = os.path.join(tmp, name + ".om")
    with open(om, "w") as f:
        f.write("# TYPE m gauge\n")
        f.writelines(sorted(lines, key=lambda l: int(l.rsplit(" ", 1)[1])))
        f.write("# EOF\n")
    out = os.path.join(tmp, name)
    subprocess.run([STRATA, "tools", "block", "write", om, out], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return out


def samples(base, start_h, end_h, offset, first_half_too):
    out = []
    for t in range(base + start_h * H, base + end_h * H, 60):
        for s in range(20):
            out.append(f'm{{s="{s:02d}"}} {(t // 60 * 37 + s * 11) % 1000} {t + offset}\n')
            if first_half_too and t < base + start_h * H + 1800:  # identical samples in both producers
                out.append(f'm{{s="{s:02d}"}} {(t // 60 * 37 + s * 11) % 1000} {t}\n')
    return out


def dump(dirpath):
    wal = os.path.join(dirpath, "wal")
    os.makedirs(wal, exist_ok=True)  # promtool dump opens the WAL too
    r = subprocess.run(["promtool", "tsdb", "dump", dirpath], check=True, capture_output=True, text=True)
    os.rmdir(wal)
    shutil.rmtree(os.path.join(dirpath, "chunks_head"), ignore_errors=True)
    return sorted(l for l in r.stdout.splitlines() if l.startswith("{"))


def upload(cfg, path, cluster):
    subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + path,
                    f'--label=cluster="{cluster}"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def live(bdir, cluster):
    """(ulid, minTime, maxTime, level, markers) of the stream's complete blocks not marked for deletion."""
    out = []
    for d in sorted(os.listdir(bdir)):
        p = os.path.join(bdir, d)
        if len(d) != 26 or not os.path.exists(os.path.join(p, "meta.json")) or \
                os.path.exists(os.path.join(p, "deletion-mark.json")):
            continue
        m = json.load(open(os.path.join(p, "meta.json")))
        if m["thanos"]["labels"].get("cluster") == cluster:
            out.append((d, m["minTime"], m["maxTime"], m["compaction"]["level"],
                        sorted(f for f in os.listdir(p) if f.endswith("-mark.json"))))
    return sorted(out, key=lambda b: (b[1], b[0]))


def overlapping(blocks):
    return any(blocks[i][2] > blocks[i + 1][1] for i in range(len(blocks) - 1))


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    vals = [float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
            if (l.startswith(name + "{") or l.startswith(name + " ")) and labels in l]
    return sum(vals) if vals else None


def bucket(tmp, name, streams, base):
    """A FILESYSTEM bucket with streams {cluster: overlapping?}; returns (dir, config)."""
    bdir = os.path.join(tmp, name)
    os.makedirs(bdir)
    cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
    for cluster, overlaps in streams.items():
        upload(cfg, write_blocks(tmp, f"{name}-{cluster}-main", samples(base, 0, 12, 0, False)), cluster)
        if overlaps:
            upload(cfg, write_blocks(tmp, f"{name}-{cluster}-extra", samples(base, 1, 3, 30, True)), cluster)
    return bdir, cfg


def compact(tmp, cfg, tag, *extra):
    log = os.path.join(tmp, f"compact-{tag}.log")
    args = [STRATA, "compact", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data-" + tag),
            "--consistency-delay=0s", "--delete-delay=0s", "--http-grace-period=1s", *extra]
    if "--wait" not in extra:
        args.append(f"--http-address=127.0.0.1:{free_port()}")
        return subprocess.run(args, stdout=open(log, "w"), stderr=subprocess.STDOUT).returncode, log
    return args, log


def main():
    tmp = tempfile.mkdtemp(prefix="strata-compact-overlaps.")
    procs = []
    try:
        base = (int(time.time()) // (48 * H) - 2) * 48 * H

        # ---- vertical compaction (default) ----
        bdir, cfg = bucket(tmp, "vertical", {"x": True, "z": False}, base)
        before = live(bdir, "x")
        inputs = os.path.join(tmp, "x-inputs")
        os.makedirs(inputs)
        for b in before:
            shutil.copytree(os.path.join(bdir, b[0]), os.path.join(inputs, b[0]))
        want = sorted(set(dump(inputs)))
        result("vertical:inputs_overlap", overlapping(before) and len(before) == 8, str(before))
        rc, log = compact(tmp, cfg, "vertical")
        after = live(bdir, "x")
        result("vertical:exit_0", rc == 0, f"exit {rc}: {open(log).read()[-300:]}")
        result("vertical:no_overlaps_left", not overlapping(after) and len(after) < len(before), str(after))
        out = os.path.join(tmp, "x-outputs")
        os.makedirs(out)
        for b in after:
            shutil.copytree(os.path.join(bdir, b[0]), os.path.join(out, b[0]))
        got = dump(out)
        result("vertical:dump_is_union_of_inputs", got == want,
               f"{len(got)} lines vs {len(want)}; first difference: {next((a, b) for a, b in zip(got + [''], want + ['']) if a != b)}"
               if got != want else "")
        text = open(log).read()
        result("vertical:logged_as_vertical", "vertical=true" in text, text[-300:])
        result("vertical:healthy_stream_compacted", any(b[3] == 2 for b in live(bdir, "z")), str(live(bdir, "z")))

        # ---- vertical compaction off: reported, left alone, the rest compacted ----
        bdir, cfg = bucket(tmp, "novertical", {"y": True, "z": False}, base)
        before = live(bdir, "y")
        hp = free_port()
        args, log = compact(tmp, cfg, "novertical", "--wait", "--wait-interval=1h", f"--http-address=127.0.0.1:{hp}",
                            "--no-compact.enable-vertical-compaction")
        p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        procs.append(p)
        wait_until(lambda: (metric(hp, "thanos_compact_iterations_total") or 0) >= 1, p, "first iteration", 60)
        skipped = metric(hp, "strata_compact_skipped_blocks", 'reason="overlap-vertical-compaction-off"')
        halted = metric(hp, "thanos_compact_halted")
        p.terminate()
        rc = p.wait(20)
        result("novertical:overlaps_reported", (skipped or 0) >= 4 and halted == 0, f"skipped {skipped}, halted {halted}")
        result("novertical:sigterm_exit_0", rc == 0, f"exit {rc}")
        text = open(log).read()
        result("novertical:logged", "overlapping blocks left alone" in text, text[-300:])
        first4h = lambda bs: [b for b in bs if b[1] < (base + 4 * H) * 1000]
        result("novertical:overlapping_blocks_untouched", first4h(live(bdir, "y")) == first4h(before) and
               len(first4h(before)) == 4, f"{before} -> {live(bdir, 'y')}")
        result("novertical:rest_of_stream_compacted", any(b[3] == 2 for b in live(bdir, "y")), str(live(bdir, "y")))
        result("novertical:healthy_stream_compacted", any(b[3] == 2 for b in live(bdir, "z")), str(live(bdir, "z")))

        # ---- a plan whose indexes are too big: no-compact marks, no halt ----
        bdir, cfg = bucket(tmp, "indexsize", {"w": False}, base)
        rc, log = compact(tmp, cfg, "indexsize", "--compact.block-max-index-size=1KB")
        reasons = [json.load(open(os.path.join(bdir, b[0], "no-compact-mark.json")))["reason"]
                   for b in live(bdir, "w") if "no-compact-mark.json" in b[4]]
        result("indexsize:exit_0", rc == 0, f"exit {rc}: {open(log).read()[-300:]}")
        result("indexsize:marked_not_halted", reasons and all(r == "index-size-exceeding" for r in reasons) and
               all(b[3] == 1 for b in live(bdir, "w")), f"reasons {reasons}; {live(bdir, 'w')}")
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
