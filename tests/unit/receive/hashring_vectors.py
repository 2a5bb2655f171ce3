#!/usr/bin/python3
"""Independent reference for the hashring placement (reference thanos.md §8.4), written from the spec
and not from src/receive/hashring.c: pure-Python xxhash64, the series hash, hashmod and ketama (1000
sections per endpoint, AZ-aware replicas). It prints the vectors that tests/unit/receive/hashring_test.c
pins; rerun it and compare after touching the placement code:

    /usr/bin/python3 tests/unit/receive/hashring_vectors.py
"""
import bisect
import struct

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def rnd(acc, lane):
    acc = (acc + lane * P2) & M
    return (rotl(acc, 31) * P1) & M


def merge(acc, v):
    acc ^= rnd(0, v)
    return (acc * P1 + P4) & M


def xxh64(data, seed=0):
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h ^= rnd(0, struct.unpack_from("<Q", data, i)[0])
        h = (rotl(h, 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & M
        h = (rotl(h, 23) * P2 + P3) & M
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M
        h = (rotl(h, 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    h ^= h >> 32
    return h


def series_hash(tenant, labels):
    b = tenant.encode() + b"\xff"
    for n, v in labels:
        b += n.encode() + b"\xff" + v.encode() + b"\xff"
    return xxh64(b)


def hashmod(endpoints, h, n):
    eps = sorted(endpoints)
    return eps[(h + n) % len(eps) % (1 << 64)]


def ketama(endpoints, rf):
    """endpoints: [(address, az)] -> (sorted hashes, replicas per section)."""
    secs = []
    for idx, (addr, az) in enumerate(endpoints):
        for i in range(1, 1001):
            secs.append((xxh64(f"{addr}:{i}".encode()), idx, az))
    secs.sort(key=lambda s: (s[0], s[1]))
    azs = {az for _, az in endpoints}
    reps = []
    for i in range(len(secs)):
        chosen, spread, out = set(), {az: 0 for az in azs}, []
        j = i - 1
        while len(out) < rf:
            j = (j + 1) % len(secs)
            _, e, az = secs[j]
            if e in chosen:
                continue
            if len(spread) > 1 and spread[az] > 0 and spread[az] > min(spread.values()):
                continue
            chosen.add(e)
            spread[az] += 1
            out.append(e)
        reps.append(out)
    return [s[0] for s in secs], reps


def ketama_get(ring, endpoints, h, n):
    hashes, reps = ring
    i = bisect.bisect_left(hashes, h)
    if i == len(hashes):
        i = 0
    return endpoints[reps[i][n]][0]


def main():
    for s in [b"", b"a", b"abc", b"Nobody inspects the spammish repetition",
              b"0123456789abcdef0123456789abcdef0123456789"]:
        print(f"xxh64 {s!r} 0x{xxh64(s):016x}")
    series = [("default-tenant", [("__name__", "up"), ("instance", "a:9090"), ("job", "node")]),
              ("team-a", [("__name__", "http_requests_total"), ("code", "200"), ("pod", "web-1")]),
              ("default-tenant", [("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("mode", "idle")]),
              ("t", [("a", "b")])]
    hashes = []
    for t, ls in series:
        h = series_hash(t, ls)
        hashes.append(h)
        print(f"series {t} {ls} 0x{h:016x}")
    eps = ["10.0.0.3:10901", "10.0.0.1:10901", "10.0.0.2:10901", "10.0.0.4:10901"]
    fixed = hashes + [0, 1, 0x8000000000000000, M]
    for h in fixed:
        print(f"hashmod 0x{h:016x}", [hashmod(eps, h, n) for n in range(3)])
    plain = [(e, "") for e in eps]
    ring = ketama(plain, 3)
    for h in fixed:
        print(f"ketama 0x{h:016x}", [ketama_get(ring, plain, h, n) for n in range(3)])
    print(f"ketama first sections 0x{ring[0][0]:016x} 0x{ring[0][1]:016x} last 0x{ring[0][-1]:016x}")
    zoned = [("a1:10901", "a"), ("a2:10901", "a"), ("b1:10901", "b"), ("b2:10901", "b"), ("c1:10901", "c")]
    ringz = ketama(zoned, 3)
    for h in fixed:
        print(f"ketama-az 0x{h:016x}", [ketama_get(ringz, zoned, h, n) for n in range(3)])


if __name__ == "__main__":
    main()
