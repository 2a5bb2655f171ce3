#!/usr/bin/python3
"""`strata tools query` over a data directory whose blocks overlap in time (two promtool blocks with
interleaved samples of the same series) must answer exactly as over one block holding all samples;
blocks that do not overlap (split in time) must too. The first case takes the merge's sample path
(overlapping chunks), the second its chunk path (chunks handed to parallel decoding).
Prints "PASS promql_merge:<case>:<query>" / "FAIL ...".
"""
import json, os, shutil, subprocess, sys, tempfile

STRATA = os.environ.get("STRATA_BIN", "build/strata")
T0 = 1700006400  # 2h aligned: promtool puts each file's samples in one block
N = 400          # samples per series at 15s


def write_om(path, keep):
    lines = ["# TYPE c counter"]
    for s in range(4):
        v = 0
        for i in range(N):
            v += (i * 7 + s) % 13
            if s == 2 and i == 200:
                v = 3  # a reset
            if keep(i):
                lines.append(f'c_total{{s="{s}"}} {v} {T0 + i * 15}')
    lines.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def blocks(tmp, name, keeps):
    d = os.path.join(tmp, name)
    os.mkdir(d)
    for k, keep in enumerate(keeps):
        om = os.path.join(tmp, f"{name}{k}.om")
        write_om(om, keep)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, d],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr)
    return d


def query(data, expr, rng):
    args = [STRATA, "tools", "query", f"--data-dir={data}"]
    if rng:
        args += [f"--start={T0 + 600}", f"--end={T0 + N * 15}", "--step=37"]
    else:
        args += [f"--time={T0 + 3000}"]
    p = subprocess.run(args + ["--", expr], capture_output=True, text=True, timeout=60)
    return p.stdout if p.returncode == 0 else "error: " + p.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="promqlmerge.")
    failed = 0
    try:
        one = blocks(tmp, "one", [lambda i: True])
        cases = {
            "overlapping": blocks(tmp, "inter", [lambda i: i % 2 == 0, lambda i: i % 2 == 1]),
            "split": blocks(tmp, "split", [lambda i: i < 150, lambda i: i >= 150]),
        }
        nblocks = {k: len(os.listdir(v)) for k, v in cases.items()}
        for k, n in nblocks.items():
            if n < 2:
                print(f"FAIL promql_merge:{k}: promtool wrote {n} block(s), the case needs 2")
                failed += 1
        for expr in ["c_total", "sum(rate(c_total[5m]))", "rate(c_total[2m])", "max_over_time(c_total[10m])",
                     "count_over_time(c_total[1h])", "resets(c_total[1h])"]:
            for rng in (False, True):
                want = query(one, expr, rng)
                for k, d in cases.items():
                    got = query(d, expr, rng)
                    name = f"promql_merge:{k}:{expr}:{'range' if rng else 'instant'}"
                    if want.startswith("error") or '"result":[]' in want:
                        print(f"FAIL {name}: reference query gave no data: {want[:200]}")
                        failed += 1
                    elif json.loads(got) != json.loads(want) if not got.startswith("error") else True:
                        print(f"FAIL {name}: {got[:200]} vs {want[:200]}")
                        failed += 1
                    else:
                        print(f"PASS {name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
