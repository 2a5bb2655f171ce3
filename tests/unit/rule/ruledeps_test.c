#include "test.h"

#include "rule/ruledeps.h"

static rule_spec_t rec(const char *name, const char *expr)
{
	return (rule_spec_t){.name = str_c(name), .expr = str_c(expr)};
}

static rule_spec_t alert(const char *name, const char *expr, const char *summary)
{
	static label_t ann[8];
	static size_t n;
	rule_spec_t r = {.alert = true, .name = str_c(name), .expr = str_c(expr)};
	if (summary) {
		ann[n] = (label_t){STR("summary"), str_c(summary)};
		r.annotations = (labels_t){&ann[n++], 1};
	}
	return r;
}

TEST(independent_recording_rules)
{
	rule_spec_t rs[] = {rec("a:sum", "sum by (i) (x{shard=\"1\"})"), rec("b:sum", "sum(rate(y[5m]))"),
	                    rec("c:max", "max(x) / on() group_left count(y offset 1m)")};
	ruledeps_t *d = ruledeps_new(rs, 3);
	CHECK(!ruledeps_conflict(d, 0, 1));
	CHECK(!ruledeps_conflict(d, 0, 2));
	CHECK(!ruledeps_conflict(d, 1, 2));
	ruledeps_free(d);
}

TEST(reading_a_recorded_series_conflicts_both_ways)
{
	rule_spec_t rs[] = {rec("a:sum", "sum(x)"),    rec("a:double", "a:sum * 2"),
	                    rec("other", "sum(z)"),    rec("reads_later", "avg_over_time(late:sum[5m])"),
	                    rec("late:sum", "sum(q)"), rec("by_name", "{__name__=\"a:sum\", job=\"j\"}")};
	ruledeps_t *d = ruledeps_new(rs, 6);
	CHECK(ruledeps_conflict(d, 1, 0));
	CHECK(ruledeps_conflict(d, 0, 1));
	CHECK(!ruledeps_conflict(d, 2, 0));
	CHECK(!ruledeps_conflict(d, 2, 1));
	CHECK(ruledeps_conflict(d, 3, 4)); /* an earlier reader of a later rule's series: not before it */
	CHECK(ruledeps_conflict(d, 5, 0));
	CHECK(!ruledeps_conflict(d, 5, 2));
	ruledeps_free(d);
}

TEST(selectors_without_a_name_read_everything)
{
	rule_spec_t rs[] = {rec("a", "sum(x)"), rec("b", "count({job=\"node\"})"),
	                    rec("c", "sum({__name__=~\"a|z\"})"), rec("d", "sum(y)"),
	                    rec("e", "this is not promql")};
	ruledeps_t *d = ruledeps_new(rs, 5);
	CHECK(ruledeps_conflict(d, 1, 0));
	CHECK(ruledeps_conflict(d, 2, 0));
	CHECK(ruledeps_conflict(d, 4, 0));
	CHECK(!ruledeps_conflict(d, 3, 0));
	ruledeps_free(d);
}

TEST(alerts)
{
	rule_spec_t rs[] = {
	    alert("High", "x > 1", NULL),
	    alert("Low", "x < 1", "{{ $value }}"),
	    rec("firing", "count(ALERTS{alertstate=\"firing\"})"),
	    alert("Q", "y > 1", "{{ with query \"sum(x)\" }}{{ . | first | value }}{{ end }}"),
	    alert("High", "x > 2", NULL),
	    rec("r", "sum(y)"),
	    rec("r", "sum(z)")};
	ruledeps_t *d = ruledeps_new(rs, 7);
	CHECK(!ruledeps_conflict(d, 0, 1)); /* different alerts write different ALERTS series */
	CHECK(ruledeps_conflict(d, 2, 0));
	CHECK(ruledeps_conflict(d, 2, 1));
	CHECK(ruledeps_conflict(d, 3, 0)); /* a template query may read anything */
	CHECK(ruledeps_conflict(d, 3, 5));
	CHECK(ruledeps_conflict(d, 4, 0)); /* the same alert name: the same series */
	CHECK(ruledeps_conflict(d, 6, 5)); /* the same record name */
	CHECK(!ruledeps_conflict(d, 5, 0));
	ruledeps_free(d);
}

TEST(long_operator_chain)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, "m0");
	for (int i = 1; i < 5000; i++)
		buf_printf(&b, " + m%d", i);
	rule_spec_t rs[] = {rec("m4999", "sum(q)"), rec("sum", b.p), rec("m5000", "sum(q)")};
	ruledeps_t *d = ruledeps_new(rs, 3);
	CHECK(ruledeps_conflict(d, 1, 0));
	CHECK(!ruledeps_conflict(d, 1, 2));
	ruledeps_free(d);
	buf_release(&b);
}

TEST_MAIN()
