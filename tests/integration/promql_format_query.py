#!/usr/bin/python3
"""Differential test of /api/v1/format_query: `strata query` against a real Prometheus 2.42.

Prometheus 2.42 prettifies: a node whose one-line form exceeds 100 characters is split over lines with
two-space indentation per level. Both servers (127.0.0.1, free ports, no data needed) get the same
corpus and must answer byte-identical JSON `data` strings:
  - the 218 differential queries of lib_promql_queries.QUERIES (those that parse);
  - hand-written long expressions hitting every node type and modifier (aggregations with by/without
    and parameters, binary operators with bool/on/ignoring/group_left/group_right, calls, parentheses,
    unary operators, subqueries with and without step, offset and @, literals at the 100 limit);
  - 600 random well-typed expressions (fixed seed) of all lengths from a small PromQL generator.
Malformed queries (the corpus's fail cases and more) must fail in both with the same status and
errorType. Prints "PASS promql_format_query:<what>" / "FAIL ...: why"; one line per group, the first
few differing queries in the reason.
"""
import json, os, random, shutil, subprocess, sys, tempfile, urllib.error, urllib.parse, urllib.request

from lib_harness import Harness, free_port, stop, wait_ready
from lib_promql_queries import QUERIES

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("promql_format_query")


def fmt(port, query):
    """(HTTP status, parsed JSON) of format_query; alternately GET and POST."""
    data = urllib.parse.urlencode({"query": query})
    url = f"http://127.0.0.1:{port}/api/v1/format_query"
    req = urllib.request.Request(url, data=data.encode()) if len(query) % 2 else urllib.request.Request(url + "?" + data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


# ---------------------------------------------------------------- corpus
A = "a" * 100
LONG = [
    # the 100-character limit: sum(...) of 100 and 101 characters, nested calls around it
    "sum(" + "a" * 95 + ")", "sum(" + "a" * 96 + ")", "topk(1, abs(" + "a" * 95 + "))", "topk(1, abs(" + "a" * 96 + "))",
    "sum by (job, instance, aaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbb) (rate(http_requests_total{job=\"api\"}[5m]))",
    "sum without (job, instance, aaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbb) (rate(http_requests_total{job=\"api\"}[5m]))",
    f"sum by () ({A})", f"sum without () ({A})", f"sum({A}) by (x)", f"count_values(\"{A}\", x)", f"quantile(0.5, {A})",
    "topk(5, sum by (job, instance, aaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbb) (rate(http_requests_total{job=\"api\"}[5m])))",
    "histogram_quantile(0.9, sum by (le, job, instance, aaaaaaaaaaaaaaaaaaa) (rate(http_requests_total_bucket{job=\"api\"}[5m])))",
    f"histogram_quantile(0.99, sum by (le) (rate({A}_bucket[5m])))",
    "label_replace(http_requests_total_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{job=\"api\"}, \"dst\", \"replacement-$1\", \"src\", \"(.*)\")",
    'label_join(' + "a" * 30 + ', "x", "-", "' + "a" * 30 + '", "' + "a" * 30 + '")',
    'label_replace(sum by (instance) (rate(node_cpu_seconds_total{mode!="idle",job="node"}[5m])), "host", "$1", "instance", "([^:]+):.*")',
    # binary operators and their modifiers
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb + cccccccccccccccccccccccccccccc + dddddddddddddddddd",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb * cccccccccccccccccccccccccccccc + dddddddddddddddddd",
    " + ".join(str(i) for i in range(1, 27)), f"{'a' * 50} > bool on (x) group_right (y, z) {'a' * 50}",
    f"{'a' * 50} + ignoring () {'a' * 50}", f"{'a' * 50} + on () {'a' * 50}", f"{'a' * 50} and on () {'a' * 50}",
    f"{'a' * 50} or ignoring (b) {'a' * 50}", f"{'a' * 50} * on (b) group_left {'a' * 50}",
    f"{'a' * 50} * ignoring (b) group_left {'a' * 50}", f"{'a' * 50} * ignoring (b) group_right (c) {'a' * 50}",
    f"{'a' * 50} == bool {'a' * 50}", f"1 + {'a' * 50} + {'a' * 50}", f"{A} unless {A} and {'a' * 10} or {'a' * 10}",
    f"sum by (a) ({'a' * 50}) + on (a) group_left (b) sum by (a, b) ({'a' * 50}) * 2",
    f"(sum(x) + sum(y)) * ({'a' * 50} / {'a' * 50})", f"sum(rate({A}[5m])) / sum(rate({A}[5m])) > 0.5",
    f"{'a' * 60} ^ {'a' * 60} ^ {'a' * 60}", f"2 ^ 3 ^ {A}", f"vector(time()) + {A}", f"{{__name__=~\"{A}\"}} + 1",
    f"-1 + {A}", f"1 - -{A}", f"{A} atan2 {A}", f"{A} % 3 != bool 2",
    # unary operators (2.42 glues the operator to its operand's first line), parentheses
    f"-{'a' * 60} ^ {'a' * 60}", f"-({'a' * 60} ^ {'a' * 60})", f"-abs({A})", f"sum(-abs({A}))", f"sum(-{'a' * 60} ^ {'a' * 60})",
    f"{'a' * 60} ^ -{'a' * 60}", f"abs(-{A})", f"-(-{A})", f"+{A}", f"-{A}", f"-({A})", f"({A})", f"(({A}))",
    f"+Inf ^ {A}", "+Inf ^ aaaa", "-Inf ^ 2", "-(1)", "- 1", "+(+1)",
    # subqueries (not indented when they fit), selectors, modifiers and literals (never split)
    f"({A})[5m:1m]", f"sum({A})[5m:]", f"rate({A}[5m])[5m:1m]", f"({'a' * 50} + {'a' * 50})[5m:1m]",
    f"max_over_time(rate(http_requests_total_{'a' * 32}{{job=\"api\",instance=\"{'a' * 17}\"}}[5m])[1h:1m] offset 5m)",
    f"quantile_over_time(scalar(sum({'a' * 80})), x[5m:1m])", f"predict_linear(x[5m:1m], scalar(sum({'a' * 80})))",
    f"predict_linear(x[5m], scalar(sum({'a' * 80})))", f"holt_winters(x[1h:1m] @ 100, scalar(sum({'a' * 70})), 0.5)",
    f"max_over_time({A}[5m:30s] offset 1h)", f"max_over_time({A}[5m:] @ 1.5)", f"rate({A}[1h30m])",
    f"{A} @ 100 offset 5m", f"{A}[5m] @ 100 offset 5m", f"sum({A}{{x=\"1\"}} offset -5m @ end())", f"sum({A} @ start())",
    f"{A}{{x=\"1\"}} offset 5m", f"{{__name__=\"{A}\",job=\"x\"}}", f'"{A}"', "1" * 120, "0x" + "f" * 12, "NaN", "-Inf",
    f'{A}{{a="\\n\\t\\"é\\\\",b=~"x|y",c!~"z.*",d!=""}}', f"{A}[1y2w3d4h5m6s7ms]", f"{A}[90m:90s] @ -10.5",
    f"rate({A}[5m]) * on (job) group_left (x, y) sum by (job) (rate({A}[5m]))",
    f"count_values by (x) (\"v\", {A})", f"topk without (x) (scalar(sum({A})), {A})",
    f"sort_desc(sum without (instance) (rate({A}[5m])) / ignoring (code) group_left sum without (instance, code) (rate({A}[5m])))",
    f"absent_over_time(nonexistent{{job=\"{A}\"}}[5m])", f"time() + pi() * {'1' * 95}", f"day_of_week() + scalar({A})",
    # Go strconv.Quote of values: non-printable runes and invalid UTF-8 escaped, the rest kept
    'foo{a="é😀\u3042"}', 'foo{a="\u00a0x\u2028\u00ad\u0085\ufeff\u3000\ue000"}', 'foo{a="\xff\xed\xa0\x80\xc0"}',
    'foo{a="\U0010ffff\U000e0001\ufdd0"}', "foo{a='single\"quote'}", 'foo{a=`raw\\n`}', 'foo{a="\a\b\f\v\x01\x7f"}',
    'label_replace(foo, "\u200b", "\u2066", "b", "(.*)")', "foo # a comment\n + bar",
]
BAD = ["", " ", "sum(", "foo{", "1 +", "foo[5m] + 1", "rate(foo)", "topk(2, 3)", "sum by (job", "{__name__=~\".*\"}",
       "foo offset", "foo @ bar", "1a", "1_000", "5mx", "0x1g",
       "foo[5m:1m:1m]", "-\"a\"", "\"abc", "foo{a=~\"(\"}", "a and on(x) group_left b", "nonexistent_function(x)",
       "foo[5m] offset", "sum without", ")", "x{", "x}", "a b", "count_values(1, x)", "quantile(\"a\", x)",
       "0x" + "f" * 30, "foo offset 0s", "foo[0m]", "foo[5m:0s]", "rate(foo[0s])", "sum(,)", "foo{a=\"\\q\"}",
       "foo{a=\"\\x4g\"}", "foo{a=\"\\777\"}", "foo bool", "foo \"abcdefghijklmnop\"", "on", "é",
       "foo[5]", "foo[1m1h]", "foo[1y2y]", "foo[.5m]", "1m1h", "1e", "0x", "foo offset 5x", "foo[5m:5x]"]


def gen_corpus(n, seed=7):
    """n random well-typed expressions (random structure, long names so many cross the 100 limit)."""
    rnd = random.Random(seed)
    names = ["up", "http_requests_total", "node_cpu_seconds_total", "some_rather_long_metric_name_for_layout_tests_total",
             "x", "latency_seconds_bucket", "process_resident_memory_bytes"]
    labels = ["job", "instance", "le", "code", "mode", "a_fairly_long_label_name", "x"]
    durs = ["5m", "1m", "30s", "1h", "2h30m", "10m", "1d"]

    def pick(xs):
        return xs[rnd.randrange(len(xs))]

    def mods():
        s = ""
        r = rnd.random()
        if r < 0.1:
            s += pick([" @ 1700000000", " @ start()", " @ end()", " @ 1.5"])
        if rnd.random() < 0.15:
            s += " offset " + pick(["5m", "-1h", "30s"])
        return s

    def selector():
        s = pick(names)
        ms = []
        for _ in range(rnd.randrange(4)):
            ms.append(f'{pick(labels)}{pick(["=", "!=", "=~", "!~"])}"{pick(["api", "a.*", "", "some-value-" * rnd.randrange(1, 4)])}"')
        if ms or rnd.random() < 0.2:
            s += "{" + ",".join(ms) + "}"
        return s

    def grouping():
        return "(" + ", ".join(rnd.sample(labels, rnd.randrange(0, 4))) + ")"

    def scalar(d):
        r = rnd.random()
        if d <= 0 or r < 0.4:
            return pick(["1", "0.5", "-2", "100", "1e6", "3.14159", "Inf", "NaN", "0x10", "1e-7", "time()", "pi()"])
        if r < 0.6:
            return f"scalar({vector(d - 1)})"
        if r < 0.8:
            return f"{scalar(d - 1)} {pick(['+', '-', '*', '/', '%', '^'])} {scalar(d - 1)}"
        if r < 0.9:
            return f"({scalar(d - 1)})"
        return f"-{scalar(d - 1)}"

    def matrix(d):
        if d <= 0 or rnd.random() < 0.7:
            return f"{selector()}[{pick(durs)}]{mods()}"
        return f"{vector(d - 1)}[{pick(durs)}:{pick(['', '1m', '30s'])}]{mods()}"

    def vector(d):
        r = rnd.random()
        if d <= 0 or r < 0.2:
            return selector() + mods()
        if r < 0.35:
            f = pick(["rate", "increase", "delta", "irate", "avg_over_time", "max_over_time", "count_over_time",
                      "last_over_time", "changes", "deriv", "quantile_over_time", "predict_linear", "holt_winters"])
            if f == "quantile_over_time":
                return f"{f}({scalar(d - 1)}, {matrix(d - 1)})"
            if f == "predict_linear":
                return f"{f}({matrix(d - 1)}, {scalar(d - 1)})"
            if f == "holt_winters":
                return f"{f}({matrix(d - 1)}, 0.5, {scalar(d - 1)})"
            return f"{f}({matrix(d - 1)})"
        if r < 0.5:
            op = pick(["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
                       "count_values"])
            g = pick(["", "", f" by {grouping()}", f" without {grouping()}"])
            param = ""
            if op in ("topk", "bottomk", "quantile"):
                param = scalar(d - 1) + ", "
            elif op == "count_values":
                param = '"value_label", '
            if rnd.random() < 0.5:
                return f"{op}{g} ({param}{vector(d - 1)})"
            return f"{op}({param}{vector(d - 1)}){g}"
        if r < 0.7:
            op = pick(["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2"])
            setop = op in ("and", "or", "unless")
            cmp = op in ("==", "!=", ">", "<", ">=", "<=")
            kind = rnd.randrange(3) if not setop else 0
            b = " bool" if cmp and rnd.random() < 0.4 else ""
            if kind == 1:
                return f"{vector(d - 1)} {op}{b} {scalar(d - 1)}"
            if kind == 2:
                return f"{scalar(d - 1)} {op}{b} {vector(d - 1)}"
            m = ""
            if rnd.random() < 0.5:
                m = f" {pick(['on', 'ignoring'])} {grouping()}"
                if not setop and rnd.random() < 0.4:
                    m += f" {pick(['group_left', 'group_right'])}" + pick(["", " " + grouping()])
            return f"{vector(d - 1)} {op}{b}{m} {vector(d - 1)}"
        if r < 0.85:
            f = pick(["abs", "ceil", "sort", "sort_desc", "timestamp", "absent", "sgn", "exp", "clamp", "clamp_min",
                      "round", "label_replace", "label_join", "histogram_quantile", "day_of_week", "vector"])
            if f in ("clamp_min", "round"):
                return f"{f}({vector(d - 1)}, {scalar(d - 1)})"
            if f == "clamp":
                return f"{f}({vector(d - 1)}, {scalar(d - 1)}, {scalar(d - 1)})"
            if f == "label_replace":
                return f'{f}({vector(d - 1)}, "dst_label", "$1-replacement", "{pick(labels)}", "(.*)-(.+)")'
            if f == "label_join":
                return f'{f}({vector(d - 1)}, "joined", ",", "{pick(labels)}", "{pick(labels)}")'
            if f == "histogram_quantile":
                return f"{f}({scalar(d - 1)}, {vector(d - 1)})"
            if f == "vector":
                return f"vector({scalar(d - 1)})"
            return f"{f}({vector(d - 1)})"
        if r < 0.93:
            return f"({vector(d - 1)})"
        return f"-{vector(d - 1)}"

    out = []
    while len(out) < n:
        d = rnd.randrange(1, 6)
        out.append(vector(d) if rnd.random() < 0.85 else scalar(d))
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="promqlfmt.")
    procs = []
    try:
        cfg = os.path.join(tmp, "prom.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        pport, sport, sgrpc = free_port(), free_port(), free_port()
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(tmp, 'pdata')}",
                                 f"--web.listen-address=127.0.0.1:{pport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        log = open(os.path.join(tmp, "query.log"), "w")
        st = subprocess.Popen([STRATA, "query", f"--http-address=127.0.0.1:{sport}", f"--grpc-address=127.0.0.1:{sgrpc}",
                               "--http-grace-period=1s", "--grpc-grace-period=1s"], stdout=log, stderr=subprocess.STDOUT)
        procs.append(st)
        wait_ready(pport, prom, "prometheus")
        wait_ready(sport, st, "strata query")

        groups = [("lib_queries", [e for e, fail in QUERIES if not fail]), ("long", LONG), ("random", gen_corpus(600))]
        for name, corpus in groups:
            bad, split = [], 0
            for q in corpus:
                ps, pj = fmt(pport, q)
                ss, sj = fmt(sport, q)
                if ps == 200:
                    split += "\n" in pj["data"]
                if (ps, pj) != (ss, sj):
                    bad.append(f"{q!r}: prometheus {ps} {json.dumps(pj)} strata {ss} {json.dumps(sj)}")
            harness.result(f"{name}_identical", not bad, f"{len(bad)}/{len(corpus)} differ: " + " | ".join(bad[:3]))
            print(f"{name}: {len(corpus)} expressions, {split} split over lines by Prometheus")
        # the corpus must exercise the layout, not only one-liners
        _, pj = fmt(pport, LONG[4])
        harness.result("corpus_has_multiline", pj.get("data", "").endswith(" (\n  rate(http_requests_total{job=\"api\"}[5m])\n)"),
                       json.dumps(pj))

        # errors: same status and errorType (the wording is the parser's; most of it is identical too). The
        # corpus's fail cases that only fail at evaluation format fine, identically.
        errs = [e for e, fail in QUERIES if fail] + BAD
        bad = []
        for q in errs:
            ps, pj = fmt(pport, q)
            ss, sj = fmt(sport, q)
            if ps == 200 and q not in BAD:
                same = (ss, sj) == (ps, pj)
            else:
                same = ps != 200 and (ps, pj.get("status"), pj.get("errorType")) == (ss, sj.get("status"), sj.get("errorType"))
            if not same:
                bad.append(f"{q!r}: prometheus {ps} {json.dumps(pj)} strata {ss} {json.dumps(sj)}")
        harness.result("errors_same_status_and_type", not bad, f"{len(bad)}/{len(errs)} differ: " + " | ".join(bad[:3]))
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a test failure with its message
        harness.result("setup", False, f"{type(e).__name__}: {e}")
    sys.exit(1 if harness.failed else 0)
