#!/usr/bin/python3
"""Writes the dashboard benchmark's data as OpenMetrics text (bench/dashboard_bench.py turns it into four 2h
blocks with promtool): a small multi-tenant service watched by one Prometheus, 8 hours of it.

    dashboard_gen.py <out.om> <start_s> [hours]

Series (2,890): http_requests_total{job="api",instance,handler,code} (320 counters), the
http_request_duration_seconds histogram (960 buckets + 80 _sum + 80 _count), node_cpu_seconds_total (320),
node memory (20), node_network_receive_bytes_total (20), process_resident_memory_bytes, go_goroutines and up
for 3 jobs x 10 instances (90), tenant_active_series and tenant_samples_ingested_total for 500 tenants
(1,000, scraped every 30 s; everything else every 15 s). Instance api-3 restarts at 5h (counter resets).
Values are deterministic (seeded) and shaped like the real thing: integer counters, float second counters,
byte gauges, random walks."""
import math
import random
import sys

out_path, start = sys.argv[1], int(sys.argv[2])
hours = int(sys.argv[3]) if len(sys.argv) > 3 else 8
end = start + hours * 3600
rnd = random.Random(24)
INST = [f"api-{i}" for i in range(10)]
HANDLERS = ["/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/push",
            "/metrics", "/-/ready", "/ui"]
CODES = ["200", "400", "500", "503"]
LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
LEV = [float(x) for x in LE]
MODES = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]
RESTART = start + 5 * 3600  # api-3 restarts: its counters start again from 0


def times(step):
    return range(start, end, step)


def jitter(t):
    return t + rnd.randrange(0, 5) / 1000  # a few ms of scrape jitter, as real scrapes have


def main():
    f = open(out_path, "w", buffering=1 << 20)
    w = f.write

    w("# HELP http_requests Requests served.\n# TYPE http_requests counter\n")
    series = []
    for inst in INST:
        for h in HANDLERS:
            for c in CODES:
                base = rnd.uniform(0.5, 40.0) * (1.0 if c == "200" else rnd.uniform(0.001, 0.05))
                series.append([f'http_requests_total{{job="api",instance="{inst}",handler="{h}",code="{c}"}} ',
                               base, 0, inst == "api-3"])
    for t in times(15):
        ts = jitter(t)
        wave = 1.0 + 0.3 * math.sin((t - start) / 7200 * math.pi)
        for s in series:
            if s[3] and RESTART <= t < RESTART + 15:
                s[2] = 0
            s[2] += int(rnd.expovariate(1.0 / (s[1] * wave * 15)) + 0.5)
            w(f"{s[0]}{s[2]} {ts:.3f}\n")

    w("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n")
    hist = []
    for inst in INST:
        for h in HANDLERS:
            lab = f'job="api",instance="{inst}",handler="{h}"'
            hist.append([lab, rnd.uniform(1.0, 30.0), rnd.uniform(0.01, 0.4), [0] * len(LE), 0.0, 0, inst == "api-3"])
    for t in times(15):
        ts = jitter(t)
        for hs in hist:
            lab, rate, scale, counts = hs[0], hs[1], hs[2], hs[3]
            if hs[6] and RESTART <= t < RESTART + 15:
                hs[3] = counts = [0] * len(LE)
                hs[4], hs[5] = 0.0, 0
            n = int(rnd.expovariate(1.0 / (rate * 15)) + 0.5)
            for _ in range(min(n, 40)):
                d = rnd.expovariate(1.0 / scale)
                hs[4] += d * n / min(n, 40)
                for i, b in enumerate(LEV):
                    if d <= b:
                        counts[i] += n // min(n, 40)
            hs[5] = counts[-1]
            for i, le in enumerate(LE):
                w(f'http_request_duration_seconds_bucket{{{lab},le="{le}"}} {counts[i]} {ts:.3f}\n')
            w(f"http_request_duration_seconds_sum{{{lab}}} {hs[4]!r} {ts:.3f}\n")
            w(f"http_request_duration_seconds_count{{{lab}}} {hs[5]} {ts:.3f}\n")

    w("# HELP node_cpu_seconds Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds counter\n")
    cpu = []
    for inst in INST:
        for c in range(4):
            busy = rnd.uniform(0.05, 0.7)
            for m in MODES:
                share = (1 - busy) if m == "idle" else busy * rnd.uniform(0.01, 0.5)
                cpu.append([f'node_cpu_seconds_total{{instance="{inst}",job="node",cpu="{c}",mode="{m}"}} ', share,
                            rnd.uniform(1e4, 1e6)])
    for t in times(15):
        ts = jitter(t)
        for s in cpu:
            s[2] += 15 * s[1] * rnd.uniform(0.8, 1.2)
            w(f"{s[0]}{round(s[2], 2)!r} {ts:.3f}\n")

    for name, help_ in (("node_memory_MemAvailable_bytes", "Memory available."),
                        ("node_memory_MemTotal_bytes", "Memory installed.")):
        w(f"# HELP {name} {help_}\n# TYPE {name} gauge\n")
        vals = {inst: 16 * 2**30 if "Total" in name else rnd.randrange(2, 12) * 2**30 for inst in INST}
        for t in times(15):
            ts = jitter(t)
            for inst in INST:
                if "Avail" in name:
                    vals[inst] = max(2**28, vals[inst] + rnd.randrange(-2**24, 2**24) // 4096 * 4096)
                w(f'{name}{{instance="{inst}",job="node"}} {vals[inst]} {ts:.3f}\n')

    w("# HELP node_network_receive_bytes Bytes received.\n# TYPE node_network_receive_bytes counter\n")
    net = {(inst, d): 0 for inst in INST for d in ("eth0", "lo")}
    for t in times(15):
        ts = jitter(t)
        for (inst, d), v in net.items():
            net[(inst, d)] = v + rnd.randrange(10**5, 10**7 if d == "eth0" else 10**5 + 10**4)
            w(f'node_network_receive_bytes_total{{instance="{inst}",job="node",device="{d}"}} {net[(inst, d)]} {ts:.3f}\n')

    targets = [(j, f"{j}-{i}") for j in ("api", "node", "worker") for i in range(10)]
    for name, kind in (("process_resident_memory_bytes", "gauge"), ("go_goroutines", "gauge"), ("up", "gauge")):
        w(f"# HELP {name} {name}.\n# TYPE {name} {kind}\n")
        vals = {tg: rnd.randrange(50, 900) * 2**20 if "memory" in name else rnd.randrange(20, 400) for tg in targets}
        for t in times(15):
            ts = jitter(t)
            for j, inst in targets:
                if name == "up":
                    v = 0 if (inst == "api-3" and RESTART <= t < RESTART + 45) else 1
                else:
                    step = rnd.randrange(-2**21, 2**21) if "memory" in name else rnd.randrange(-5, 6)
                    vals[(j, inst)] = max(1, vals[(j, inst)] + step)
                    v = vals[(j, inst)]
                w(f'{name}{{job="{j}",instance="{inst}"}} {v} {ts:.3f}\n')

    w("# HELP tenant_active_series Active series per tenant.\n# TYPE tenant_active_series gauge\n")
    act = [rnd.randrange(1000, 200000) for _ in range(500)]
    for t in times(30):
        ts = jitter(t)
        for i in range(500):
            act[i] = max(0, act[i] + rnd.randrange(-act[i] // 200 - 1, act[i] // 200 + 2))
            w(f'tenant_active_series{{job="ingester",tenant="tenant-{i}"}} {act[i]} {ts:.3f}\n')
    w("# HELP tenant_samples_ingested Samples ingested per tenant.\n# TYPE tenant_samples_ingested counter\n")
    ing = [0] * 500
    for t in times(30):
        ts = jitter(t)
        for i in range(500):
            ing[i] += act[i] * 2 + rnd.randrange(0, 1000)
            w(f'tenant_samples_ingested_total{{job="ingester",tenant="tenant-{i}"}} {ing[i]} {ts:.3f}\n')
    w("# EOF\n")
    f.close()


main()
