#!/usr/bin/python3
"""Seed corpus for promql_eval_fuzz (scripts/fuzz runs it): one file per query, written to OUTDIR.

The queries of the differential tests (tests/integration/lib_promql_queries.py, promql_ties.py,
query_limits.py) and, when $PROMQL_TESTDATA (default ../shared/promql-tests) holds Prometheus 2.42's PromQL test scripts,
every expression they evaluate (read in place, never copied into the repository).
"""
import glob, hashlib, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))


def queries():
    import lib_promql_queries as lq
    out = [e for e, _ in lq.QUERIES + lq.EXTRA]
    import promql_ties
    out += [e for e, _ in promql_ties.queries()]
    import query_limits
    out += [q[0] for q in query_limits.QUERIES]
    tests = os.environ.get("PROMQL_TESTDATA", os.path.join(here, "..", "..", "..", "shared", "promql-tests"))
    scripts = sorted(glob.glob(os.path.join(tests, "*.test")))
    if not scripts:
        print(f"promql_eval_fuzz seeds: no Prometheus PromQL test scripts in {tests} (set PROMQL_TESTDATA to a "
              "Prometheus v2.42.0 source's promql/testdata to add theirs); seeding from Strata's own query sets")
    for f in scripts:
        for line in open(f, encoding="utf-8"):
            m = re.match(r"\s*eval(?:_fail|_ordered)?\s+instant\s+at\s+\S+\s+(.*)$", line)
            if m:
                out.append(m.group(1).strip())
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: promql_eval_fuzz_seeds.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    n = 0
    for q in queries():
        name = hashlib.sha1(q.encode()).hexdigest()[:16]
        with open(os.path.join(sys.argv[1], name), "w", encoding="utf-8") as f:
            f.write(q)
        n += 1
    print(f"promql_eval_fuzz seeds: {n} queries")


if __name__ == "__main__":
    main()
