#!/usr/bin/python3
"""`strata tools query` over a block whose XOR chunk is corrupt but carries a valid CRC (so it passes the
chunk file's check and fails only when decoded, on a worker thread): the query must fail with an error
naming the series, never crash or answer. Prints "PASS promql_corrupt:<case>" / "FAIL ...".
"""
import os, shutil, subprocess, sys, tempfile

STRATA = os.environ.get("STRATA_BIN", "build/strata")
T0 = 1700006400


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def uvarint(buf, off):
    x = s = 0
    while True:
        b = buf[off]
        off += 1
        x |= (b & 0x7F) << s
        if b < 0x80:
            return x, off
        s += 7


def main():
    tmp = tempfile.mkdtemp(prefix="promqlcorrupt.")
    try:
        om = os.path.join(tmp, "in.om")
        with open(om, "w") as f:
            f.write("# TYPE c counter\n")
            for s in range(300):  # enough series for the batch to go to the worker pool
                for i in range(0, 400):
                    f.write(f'c_total{{s="{s:03d}"}} {i * 3 + s} {T0 + i * 15}\n')
            f.write("# EOF\n")
        data = os.path.join(tmp, "data")
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data],
                           capture_output=True, text=True)
        if r.returncode:
            print(f"FAIL promql_corrupt:setup: promtool: {r.stderr.strip()}")
            return 1
        block = os.path.join(data, os.listdir(data)[0])
        seg = os.path.join(block, "chunks", "000001")
        buf = bytearray(open(seg, "rb").read())
        # segment header (8 bytes), then chunks: uvarint len, encoding, data, crc32c(encoding + data)
        off, n = 8, 0
        while off < len(buf) and n < 200:  # corrupt the 200th chunk (a series in the middle)
            ln, p = uvarint(buf, off)
            off = p + 1 + ln + 4
            n += 1
        ln, p = uvarint(buf, off)
        enc, d = p, p + 1
        # claim far more samples than the chunk holds: the decoder runs off its end
        buf[d], buf[d + 1] = 0x7F, 0xFF
        buf[d + ln: d + ln + 4] = crc32c(bytes(buf[enc:d + ln])).to_bytes(4, "big")
        open(seg, "wb").write(bytes(buf))
        failed = 0
        for name, args in [("range", [f"--start={T0 + 600}", f"--end={T0 + 5900}", "--step=60"]),
                           ("instant", [f"--time={T0 + 1200}"])]:
            for expr in ["sum(rate(c_total[5m]))", "c_total", "max_over_time(c_total[1h])"]:
                p = subprocess.run([STRATA, "tools", "query", f"--data-dir={data}"] + args + ["--", expr],
                                   capture_output=True, text=True, timeout=60)
                case = f"promql_corrupt:{name}:{expr}"
                if p.returncode == 1 and "decoding series c_total{" in p.stderr and "xor chunk" in p.stderr:
                    print(f"PASS {case}")
                else:
                    print(f"FAIL {case}: exit {p.returncode}, stderr {p.stderr.strip()[:300]!r}")
                    failed += 1
        return 1 if failed else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
