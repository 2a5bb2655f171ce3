"""`strata receive`: every status code of POST /api/v1/receive from crafted requests, hostile bodies
without memory growth, tenants kept apart, relabelling and hot-reloaded limits.

  200  a good request (twice: samples already stored are accepted again)
  400  garbage body, snappy bomb (tiny body claiming a huge size), protobuf with absurd lengths,
       labels empty / duplicate / unsorted / bad UTF-8, tenant names with '/' or '..'
  409  out-of-order sample, duplicate timestamp with another value, out of bounds (older than the
       head allows), too old for the out-of-order window; the body names the series
  413  request over the size, series or samples limit (limits file, reloaded while running)
  415  remote write 2.0
  429  a new series over the tenant's head_series_limit
  503  a tenant whose TSDB cannot be opened
RSS is compared before and after 200 hostile requests; StoreAPI reads check what was stored.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness  # noqa: E402
from lib_receive import Receiver, varint, write_request  # noqa: E402

H = Harness("receive_status")
tmp = tempfile.mkdtemp(prefix="strata-receive-status-")
NOW = int(time.time() * 1000)
limits = os.path.join(tmp, "limits.yaml")
with open(limits, "w") as f:
    f.write("write:\n  default:\n    head_series_limit: 1000\n  tenants:\n    small:\n      head_series_limit: 2\n")
relabel = os.path.join(tmp, "relabel.yaml")
with open(relabel, "w") as f:
    f.write("- {action: drop, source_labels: [__name__], regex: 'dropme.*'}\n"
            "- {source_labels: [job], target_label: team, regex: '(.*)-svc', replacement: '$1'}\n")
os.makedirs(os.path.join(tmp, "tsdb"))
with open(os.path.join(tmp, "tsdb", "blocked"), "w") as f:
    f.write("a file where the tenant's directory would go\n")

r = Receiver(tmp, args=["--label=replica=\"r0\"", f"--receive.limits-config-file={limits}",
                        "--receive.limits-config-reload-timer=100ms", f"--receive.relabel-config-file={relabel}"]).start()


def up(job, t, v, name="up", extra=()):
    ls = [("__name__", name)] + sorted([("job", job)] + list(extra))
    return (ls, [(t, v)])


def expect(name, status, body, headers=None, raw=False, contains=None):
    st, text = r.post(body, headers, raw)
    ok = st == status and (contains is None or contains in text)
    H.result(name, ok, f"status {st} body {text!r}, want {status}" + (f" containing {contains!r}" if contains else ""))
    return text


try:
    good = write_request([up("a", NOW, 1), up("b", NOW, 2)], [(1, "up", "Up.", "")])
    expect("ok_200", 200, good)
    expect("same_request_again_200", 200, good)
    expect("out_of_order_409", 409, write_request([up("a", NOW - 1000, 5)]), contains="out of order sample for series")
    expect("duplicate_other_value_409", 409, write_request([up("a", NOW, 7)]), contains="duplicate sample")
    expect("out_of_bounds_409", 409, write_request([up("new", NOW - 3600 * 1000 * 3, 1)]), contains="out of bounds")
    # one bad series does not take the good one with it
    expect("mixed_409_good_series_stored", 409, write_request([up("a", NOW - 1000, 5), up("c", NOW, 3)]))
    H.result("good_series_of_mixed_request_stored", any('job="c"' in s for s in r.series('{job="c"}')))
    # labels
    expect("unsorted_labels_400", 400, write_request([([("job", "x"), ("__name__", "up")], [(NOW, 1)])]),
           contains="not sorted")
    expect("duplicate_label_400", 400, write_request([([("__name__", "up"), ("a", "1"), ("a", "2")], [(NOW, 1)])]),
           contains="duplicate label")
    expect("empty_label_name_400", 400, write_request([([("", "x"), ("__name__", "up")], [(NOW, 1)])]))
    expect("empty_label_value_400", 400, write_request([([("__name__", "up"), ("job", "")], [(NOW, 1)])]))
    expect("bad_utf8_400", 400, write_request([([("__name__", "up"), ("job", b"\xc3\x28")], [(NOW, 1)])]),
           contains="UTF-8")
    # bodies
    rss0 = r.rss_kb()
    for i in range(100):
        expect("garbage_400", 400, b"not snappy at all" * 10, raw=True) if i == 0 else r.post(b"x" * 100, raw=True)
        bomb = varint(0x7FFFFFFF) + b"\x00" * 8  # claims 2 GiB
        st, _ = r.post(bomb, raw=True)
        if i == 0:
            H.result("snappy_bomb_rejected", st in (400, 413), f"status {st}")
        absurd = b"\x0a" + varint(1 << 60) + b"\x00" * 16  # a field claiming 2^60 bytes
        st, text = r.post(absurd)
        if i == 0:
            H.result("absurd_protobuf_length_400", st == 400 and "byte" in text, f"{st} {text!r}")
    rss1 = r.rss_kb()
    H.result("hostile_bodies_do_not_grow_memory", rss1 - rss0 < 32 * 1024, f"RSS {rss0} -> {rss1} KiB")
    # tenants
    expect("tenant_slash_400", 400, good, headers={"THANOS-TENANT": "a/b"})
    expect("tenant_dotdot_400", 400, good, headers={"THANOS-TENANT": ".."})
    expect("tenant_a_200", 200, write_request([up("only-a", NOW, 1)]), headers={"THANOS-TENANT": "team-a"})
    expect("tenant_b_200", 200, write_request([up("only-b", NOW, 1)]), headers={"THANOS-TENANT": "team-b"})
    sa = r.series('{tenant_id="team-a"}')
    H.result("tenant_sees_only_its_series", len(sa) == 1 and 'job="only-a"' in sa[0] and 'replica="r0"' in sa[0], sa)
    H.result("default_tenant_label", all('tenant_id="default-tenant"' in s for s in r.series('{job="a"}')))
    expect("tenant_cannot_open_503", 503, good, headers={"THANOS-TENANT": "blocked"})
    # relabelling
    expect("relabel_drop_200", 200, write_request([up("x", NOW, 1, name="dropme_total")]))
    H.result("relabel_dropped_series_absent", r.series('{__name__="dropme_total"}') == [])
    expect("relabel_rewrite_200", 200, write_request([up("api-svc", NOW, 1)]))
    s = r.series('{job="api-svc"}')
    H.result("relabel_added_label", len(s) == 1 and 'team="api"' in s[0], s)
    # head series limit: 2 series for tenant "small"
    expect("limit_first_two_200", 200, write_request([up("1", NOW, 1), up("2", NOW, 1)]),
           headers={"THANOS-TENANT": "small"})
    expect("head_series_limit_429", 429, write_request([up("3", NOW, 1)]), headers={"THANOS-TENANT": "small"},
           contains="head series limit")
    expect("existing_series_still_200", 200, write_request([up("1", NOW + 1000, 1)]), headers={"THANOS-TENANT": "small"})
    # request limits, by hot reload
    with open(limits, "w") as f:
        f.write("write:\n  default:\n    request: {size_bytes_limit: 2KiB, series_limit: 3, samples_limit: 5}\n")
    time.sleep(1.5)
    expect("series_limit_413", 413, write_request([up(str(i), NOW + 2000, 1) for i in range(4)]), contains="series")
    expect("samples_limit_413", 413, write_request([([("__name__", "m")], [(NOW + i, 1) for i in range(6)])]),
           contains="samples")
    expect("size_limit_413", 413, write_request([([("__name__", "m"), ("pad", "x" * 3000)], [(NOW, 1)])]),
           contains="limit")
    expect("within_limits_200", 200, write_request([up("z", NOW + 3000, 1)]))
    H.result("limits_reload_counted", "thanos_receive_limits_config_reload_total 2" in r.metrics())
    expect("remote_write_2_415", 415, good, headers={"X-Prometheus-Remote-Write-Version": "2.0.0",
                                                     "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
    m = r.metrics()
    H.result("metrics", 'prometheus_tsdb_head_series{tenant="default-tenant"}' in m and
             'thanos_receive_write_samples_count{code="409",tenant="default-tenant"}' in m and
             "prometheus_tsdb_wal_fsync_duration_seconds_count" in m, "missing metrics")
finally:
    rc = r.stop()
H.result("clean_exit", rc == 0, f"exit status {rc}: {r.log_text()[-2000:]}")

# The out-of-order window: inside it accepted (and queryable in time order), beyond it 409.
r2 = Receiver(tmp, tsdb=os.path.join(tmp, "tsdb-ooo"), args=["--tsdb.out-of-order.time-window=10m"],
              name="receive-ooo").start()
try:
    r = r2
    expect("ooo_in_order_200", 200, write_request([up("a", NOW, 1), up("a", NOW + 60000, 3)]))
    expect("ooo_in_window_200", 200, write_request([up("a", NOW + 30000, 2)]))
    expect("ooo_too_old_409", 409, write_request([up("a", NOW - 20 * 60000, 0)]), contains="too old sample")
    s = r.series('{job="a"}')
    H.result("ooo_sample_queryable", len(s) == 1 and "samples=3" in s[0] and "sum=6" in s[0], s)
finally:
    rc = r2.stop()
H.result("ooo_clean_exit", rc == 0, f"exit status {rc}")
sys.exit(1 if H.failed else 0)
