"""Rewrites a series entry of a TSDB block index in place, for tests that need blocks no writer here makes.

list_chunks_out_of_order(index): the first two chunks of one series listed in reverse time order. Prometheus's
index format allows it (a later chunk's mint is stored as an unsigned varint of the wrapped difference to the
previous chunk's maxt) and some old writers produced it; Thanos's compactor halts on such a block
("out-of-order chunks"). Series entries are 16-byte aligned; the reordered entry is ~8 bytes longer, so only a
series whose padding has room can be rewritten (give the block series with different label counts)."""
import struct


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _uget(b, p):
    x = s = 0
    while True:
        v = b[p]
        p += 1
        x |= (v & 0x7F) << s
        s += 7
        if v < 0x80:
            return x, p


def _uput(x):
    x &= (1 << 64) - 1
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _sget(b, p):
    u, p = _uget(b, p)
    return (u >> 1) ^ -(u & 1), p


def _sput(x):
    return _uput((x << 1) ^ (x >> 63))


def _wrap(u):
    return u - (1 << 64) if u >= 1 << 63 else u


def _entry(nl, refs, metas):
    body = bytearray(_uput(nl))
    for v in refs:
        body += _uput(v)
    body += _uput(len(metas))
    for i, (mint, maxt, ref) in enumerate(metas):
        if i == 0:
            body += _sput(mint) + _uput(maxt - mint) + _uput(ref)
        else:
            pm = metas[i - 1]
            body += _uput(mint - pm[1]) + _uput(maxt - mint) + _sput(ref - pm[2])
    return _uput(len(body)) + body + struct.pack(">I", crc32c(body))


def list_chunks_out_of_order(index_path):
    """Returns the rewritten series' (name, value) symbol ids; raises if no series had room."""
    b = bytearray(open(index_path, "rb").read())
    toc = len(b) - 52
    series_off, label_idx_off = struct.unpack(">QQ", b[toc + 8:toc + 24])
    p = series_off
    while True:
        p = (p + 15) // 16 * 16
        if p >= label_idx_off:
            raise RuntimeError(f"{index_path}: no series with room to list its chunks out of order")
        n, q = _uget(b, p)
        end = q + n
        nl, r = _uget(b, q)
        refs = []
        for _ in range(2 * nl):
            v, r = _uget(b, r)
            refs.append(v)
        nc, r = _uget(b, r)
        metas = []
        for i in range(nc):
            if i == 0:
                mint, r = _sget(b, r)
            else:
                d, r = _uget(b, r)
                mint = metas[-1][1] + _wrap(d)
            dur, r = _uget(b, r)
            if i == 0:
                ref, r = _uget(b, r)
            else:
                dr, r = _sget(b, r)
                ref = metas[-1][2] + dr
            metas.append((mint, mint + dur, ref))
        nxt = (end + 4 + 15) // 16 * 16
        if nc >= 2:
            e = _entry(nl, refs, [metas[1], metas[0]] + metas[2:])
            if p + len(e) <= nxt <= label_idx_off:
                b[p:nxt] = e + bytes(nxt - p - len(e))
                open(index_path, "wb").write(b)
                return refs
        p = nxt
