#include "test.h"

#include "rule/tmpl.h"

static int fake_query(void *arg, arena_t *a, str_t q, tmpl_sample_t **out, size_t *n, err_t *err)
{
	(void)arg;
	if (str_eq_c(q, "empty")) {
		*n = 0;
		return 0;
	}
	if (str_eq_c(q, "fail"))
		return err_set(err, ERR_INVALID, "boom");
	tmpl_sample_t *s = arena_calloc(a, 2, sizeof *s);
	label_t *l1 = arena_calloc(a, 2, sizeof *l1), *l2 = arena_calloc(a, 2, sizeof *l2);
	l1[0] = (label_t){STR("__name__"), STR("up")};
	l1[1] = (label_t){STR("instance"), STR("b:9100")};
	l2[0] = (label_t){STR("__name__"), STR("up")};
	l2[1] = (label_t){STR("instance"), STR("a:9100")};
	s[0] = (tmpl_sample_t){{l1, 2}, 0.25};
	s[1] = (tmpl_sample_t){{l2, 2}, 1};
	*out = s;
	*n = 2;
	return 0;
}

static const char *expand(const char *text)
{
	static arena_t a;
	static bool init;
	if (init)
		arena_release(&a);
	arena_init(&a, 0);
	init = true;
	label_t ls[] = {{STR("alertname"), STR("HighLoad")}, {STR("instance"), STR("node-1:9100")}, {STR("job"), STR("node")}};
	label_t ext[] = {{STR("cluster"), STR("eu1")}};
	tmpl_env_t env = {.labels = {ls, 3}, .ext_labels = {ext, 1}, .external_url = STR("http://x"), .value = 0.8734,
	                  .query = fake_query};
	str_t out;
	tmpl_alert_expand(&a, "HighLoad", str_c(text), &env, &out);
	return arena_strndup(&a, out.p, out.n);
}

TEST(basics)
{
	CHECK_STR(expand("plain"), "plain");
	CHECK_STR(expand("{{ $labels.instance }} of {{ .Labels.job }}"), "node-1:9100 of node");
	CHECK_STR(expand("{{ $value }}"), "0.8734");
	CHECK_STR(expand("{{ $externalLabels.cluster }}/{{ $externalURL }}"), "eu1/http://x");
	CHECK_STR(expand("{{ $labels.missing }}|"), "|");
	CHECK_STR(expand("{{ $value | humanizePercentage }}"), "87.34%");
	CHECK_STR(expand("{{ printf \"%.2f\" $value }}"), "0.87");
	CHECK_STR(expand("{{ printf \"%s is %d\" \"x\" 3 }}"), "x is 3");
	CHECK_STR(expand("{{ printf \"%d\" $value }}"), "%!d(float64=0.8734)");
	CHECK_STR(expand("{{- \"a\" -}}  b  {{- \"c\" }}"), "abc");
	CHECK_STR(expand("{{/* comment */}}x"), "x");
	CHECK_STR(expand("{{ $x := \"v\" }}{{ $x }}"), "v");
	CHECK_STR(expand("{{ \"node exporter\" | title }} {{ toUpper \"ab\" }} {{ toLower \"AB\" }}"), "Node Exporter AB ab");
}

TEST(control)
{
	CHECK_STR(expand("{{ if gt $value 0.5 }}high{{ else }}low{{ end }}"), "high");
	CHECK_STR(expand("{{ if lt $value 0.5 }}low{{ else if gt $value 0.8 }}vhigh{{ else }}mid{{ end }}"), "vhigh");
	CHECK_STR(expand("{{ if eq $labels.job \"node\" \"x\" }}y{{ end }}"), "y");
	CHECK_STR(expand("{{ with $labels.job }}job={{ . }}{{ end }}"), "job=node");
	CHECK_STR(expand("{{ with $labels.nope }}x{{ else }}none{{ end }}"), "none");
	CHECK_STR(expand("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
	          "alertname=HighLoad;instance=node-1:9100;job=node;");
	CHECK_STR(expand("{{ if and (gt $value 0.1) (lt $value 1.0) }}in{{ end }}"), "in");
	CHECK_STR(expand("{{ if not false }}t{{ end }}"), "t");
	/* Go refuses float64 vs int */
	const char *e = expand("{{ if gt $value 80 }}x{{ end }}");
	CHECK(strstr(e, "<error expanding template: error executing template __alert_HighLoad: template: __alert_HighLoad:1:") == e);
	CHECK(strstr(e, "error calling gt: incompatible types for comparison>"));
}

TEST(query)
{
	CHECK_STR(expand("{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}"), "250m");
	CHECK_STR(expand("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }} {{ .Value }};{{ end }}"),
	          "a:9100 1;b:9100 0.25;");
	CHECK_STR(expand("{{ query \"up\" | first | label \"instance\" }}"), "b:9100");
	CHECK(strstr(expand("{{ query \"empty\" | first | value }}"), "first() called on vector with no elements"));
	CHECK(strstr(expand("{{ query \"fail\" }}"), "error calling query: boom"));
	CHECK_STR(expand("{{ range query \"empty\" }}x{{ else }}none{{ end }}"), "none");
}

TEST(humanize)
{
	CHECK_STR(expand("{{ 1234567.0 | humanize }}"), "1.235M");
	CHECK_STR(expand("{{ 0.0 | humanize }}"), "0");
	CHECK_STR(expand("{{ 0.001234 | humanize }}"), "1.234m");
	CHECK_STR(expand("{{ 1048576.0 | humanize1024 }}"), "1Mi");
	CHECK_STR(expand("{{ 1.0 | humanize1024 }}"), "1");
	CHECK_STR(expand("{{ 90061.0 | humanizeDuration }}"), "1d 1h 1m 1s");
	CHECK_STR(expand("{{ 3661.0 | humanizeDuration }}"), "1h 1m 1s");
	CHECK_STR(expand("{{ 1.5 | humanizeDuration }}"), "1.5s");
	CHECK_STR(expand("{{ 0.0015 | humanizeDuration }}"), "1.5ms");
	CHECK_STR(expand("{{ 0.0 | humanizeDuration }}"), "0s");
	CHECK_STR(expand("{{ 1435065584.128 | humanizeTimestamp }}"), "2015-06-23 13:19:44.128 +0000 UTC");
	CHECK_STR(expand("{{ \"1.5\" | humanize }}"), "1.5");
	CHECK(strstr(expand("{{ \"abc\" | humanize }}"), "strconv.ParseFloat: parsing \"abc\": invalid syntax"));
	CHECK_STR(expand("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}"), "node-1");
	CHECK_STR(expand("{{ if match \"^node\" $labels.instance }}m{{ end }}"), "m");
	CHECK_STR(expand("{{ $labels.instance | stripPort }}"), "node-1");
}

TEST(parse_errors)
{
	err_t err = {0};
	CHECK(tmpl_alert_check("A", STR("{{ humanise $value }}"), &err) != 0);
	CHECK_STR(err.msg, "template: __alert_A:1: function \"humanise\" not defined");
	CHECK(tmpl_alert_check("A", STR("{{ if $value }}x"), &err) != 0);
	CHECK(strstr(err.msg, "unexpected EOF"));
	CHECK(tmpl_alert_check("A", STR("{{ $nope }}"), &err) != 0);
	CHECK(strstr(err.msg, "undefined variable \"$nope\""));
	CHECK(tmpl_alert_check("A", STR("{{ end }}"), &err) != 0);
	CHECK(tmpl_alert_check("A", STR("{{ .Labels.x "), &err) != 0);
	CHECK(tmpl_alert_check("A", STR("{{ $labels.instance }} ok {{ humanize 1.0 }}"), &err) == 0);
}

TEST_MAIN()
