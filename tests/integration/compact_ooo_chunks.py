#!/usr/bin/python3
"""A block whose index lists a series' chunks out of time order (Prometheus's format allows it and old writers
made such blocks; Thanos's compactor halts on them with "out-of-order chunks"), among five healthy 2h blocks of
one stream in a FILESYSTEM bucket (`strata tools block write`, the index rewritten by lib_index_patch):

fixture:    promtool's own dump of the rewritten block goes back in time for one series (the listing is real);
read:       `strata tools block dump` and `strata store` + `strata query` return every sample of it once, in
            time order (before the readers put chunk metas in order, one chunk's 120 samples were lost);
compaction: `strata compact` exits 0 without marking anything no-compact, and `promtool tsdb dump` of its
            output equals, line for line and in order, the dump of the blocks as written before the rewrite.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until
from lib_index_patch import list_chunks_out_of_order

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("compact_ooo_chunks")
result, check = harness.result, harness.check
H = 3600


def promtool_dump(dirpath):
    """promtool tsdb dump of a directory of blocks, in its own order (it wants a wal directory next to them)."""
    work = dirpath + ".dump"
    shutil.copytree(dirpath, work)
    os.makedirs(os.path.join(work, "wal"), exist_ok=True)
    r = subprocess.run(["promtool", "tsdb", "dump", work], check=True, capture_output=True, text=True)
    shutil.rmtree(work)
    return [l for l in r.stdout.splitlines() if l.startswith("{")]


def backwards(lines):
    """Series (label text) whose timestamps go back somewhere in lines."""
    last, out = {}, set()
    for l in lines:
        lab, rest = l.rsplit("}", 1)
        t = int(rest.split()[-1])
        if t <= last.get(lab, -1 << 62):
            out.add(lab)
        last[lab] = t
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="strata-compact-ooo.")
    procs = []
    try:
        base = (int(time.time()) // (48 * H) - 2) * 48 * H
        om = os.path.join(tmp, "in.om")
        with open(om, "w") as f:  # label counts 2..7: some series' index entries have room to be rewritten
            f.write("# TYPE m gauge\n")
            for t in range(base, base + 12 * H, 15):
                for s in range(6):
                    extra = "".join(f',x{k}="{k}"' for k in range(s))
                    f.write(f'm{{s="{s}"{extra}}} {(t // 15 * 37 + s * 11) % 1000} {t}\n')
            f.write("# EOF\n")
        blocks = os.path.join(tmp, "blocks")
        subprocess.run([STRATA, "tools", "block", "write", om, blocks], check=True, stdout=subprocess.DEVNULL)
        orig = os.path.join(tmp, "orig")
        shutil.copytree(blocks, orig)
        want = promtool_dump(orig)
        first = sorted(os.listdir(blocks))[0]
        list_chunks_out_of_order(os.path.join(blocks, first, "index"))
        one = os.path.join(tmp, "first")
        os.makedirs(one)
        shutil.copytree(os.path.join(blocks, first), os.path.join(one, first))
        shutil.copytree(os.path.join(orig, first), os.path.join(tmp, "first-orig", first))

        seen = promtool_dump(one)
        result("fixture:promtool_sees_chunks_out_of_order", len(backwards(seen)) == 1 and
               sorted(seen) == sorted(promtool_dump(os.path.join(tmp, "first-orig"))), f"{backwards(seen)}")

        def strata_dump(d):
            r = subprocess.run([STRATA, "tools", "block", "dump", d], check=True, capture_output=True, text=True)
            return [l for l in r.stdout.splitlines() if l.startswith("{")]
        got, exp = strata_dump(os.path.join(one, first)), strata_dump(os.path.join(tmp, "first-orig", first))
        result("read:tools_block_dump_every_sample_in_order", got == exp and len(exp) == 6 * 480,
               f"{len(got)} lines vs {len(exp)}")

        bdir = os.path.join(tmp, "bucket")
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                        '--label=cluster="o"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gp, hp, qp, qg = free_port(), free_port(), free_port(), free_port()
        log = open(os.path.join(tmp, "serve.log"), "w")
        st = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "sd"),
                               f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}",
                               "--http-grace-period=1s"], stdout=log, stderr=subprocess.STDOUT)
        procs.append(st)
        wait_ready(hp, st, "strata store")
        q = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{qp}",
                              f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s"], stdout=log,
                             stderr=subprocess.STDOUT)
        procs.append(q)
        wait_ready(qp, q, "strata query")
        wait_until(lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{qp}/api/v1/stores", timeout=5))["data"],
                   q, "store discovered")

        def store_read():
            t = (base + 2 * H) * 1000 - 1
            url = f"http://127.0.0.1:{qp}/api/v1/query?" + urllib.parse.urlencode({"query": "m[2h]", "time": t / 1000})
            res = json.load(urllib.request.urlopen(url, timeout=30))["data"]["result"]
            assert len(res) == 6, res
            for s in res:
                ts = [p[0] for p in s["values"]]
                assert len(ts) == 480 and ts == sorted(set(ts)), f"{s['metric']}: {len(ts)} samples, in order: {ts == sorted(ts)}"
        check("read:store_gateway_every_sample_in_order", store_read)

        args = [STRATA, "compact", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                "--consistency-delay=0s", "--delete-delay=0s", f"--http-address=127.0.0.1:{free_port()}"]
        with open(os.path.join(tmp, "compact.log"), "w") as lf:
            rc = subprocess.run(args, stdout=lf, stderr=subprocess.STDOUT).returncode
        text = open(os.path.join(tmp, "compact.log")).read()
        live = [d for d in sorted(os.listdir(bdir)) if len(d) == 26 and os.path.exists(os.path.join(bdir, d, "meta.json"))
                and not os.path.exists(os.path.join(bdir, d, "deletion-mark.json"))]
        marks = [d for d in live if os.path.exists(os.path.join(bdir, d, "no-compact-mark.json"))]
        levels = [json.load(open(os.path.join(bdir, d, "meta.json")))["compaction"]["level"] for d in live]
        result("compaction:exit_0_nothing_marked", rc == 0 and not marks and max(levels) > 1,
               f"exit {rc}, no-compact {marks}, levels {levels}: {text[-400:]}")
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        for d in live:
            shutil.copytree(os.path.join(bdir, d), os.path.join(out, d))
        got = promtool_dump(out)
        result("compaction:output_equals_blocks_as_written", got == want,
               f"{len(got)} lines vs {len(want)}; backwards in {backwards(got)}")
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
