#include "model/relabel.h"
#include "base/alloc.h"
#include "test.h"

static labels_t L(arena_t *a, const char *spec)
{
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, 16), 0};
	char *s = arena_strdup(a, spec), *save = NULL;
	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		*eq = 0;
		ls.v[ls.n++] = (label_t){str_c(tok), str_c(eq + 1)};
	}
	BUG_ON(labels_normalize(&ls) != 0);
	return ls;
}

/* Apply yaml to in; "DROP" when dropped, else the labels as a=b,c=d. */
static char *run(const char *yaml, const char *in)
{
	static char out[1024];
	arena_t a;
	arena_init(&a, 0);
	relabel_t *r;
	err_t err = {0};
	if (relabel_parse(yaml, strlen(yaml), "test", &r, &err))
		TEST_FAILF("parse: %s", err.msg);
	labels_t ls = L(&a, in), res;
	if (!relabel_apply(r, &a, &ls, &res)) {
		snprintf(out, sizeof out, "DROP");
	} else {
		out[0] = 0;
		for (size_t i = 0; i < res.n; i++)
			snprintf(out + strlen(out), sizeof out - strlen(out), "%s" STR_FMT "=" STR_FMT,
			         i ? "," : "", STR_ARG(res.v[i].name), STR_ARG(res.v[i].value));
	}
	relabel_free(r);
	arena_release(&a);
	return out;
}

TEST(relabel_actions)
{
	const char *in = "__name__=up,instance=host:9100,job=node";
	CHECK_STR(run("", in), in);
	CHECK_STR(run("- {action: drop, source_labels: [job], regex: node}", in), "DROP");
	CHECK_STR(run("- {action: drop, source_labels: [job], regex: nod}", in), in); /* anchored */
	CHECK_STR(run("- {action: keep, source_labels: [job], regex: 'n.*'}", in), in);
	CHECK_STR(run("- {action: keep, source_labels: [nope], regex: '.+'}", in), "DROP");
	CHECK_STR(
	    run("- {source_labels: [instance], regex: '(.*):(\\d+)', target_label: host, replacement: '$1'}",
	        in),
	    "__name__=up,host=host,instance=host:9100,job=node");
	/* default regex (.*) and replacement $1; joined with the separator */
	CHECK_STR(run("- {source_labels: [job, __name__], separator: '/', target_label: x}", in),
	          "__name__=up,instance=host:9100,job=node,x=node/up");
	/* an empty result deletes the target */
	CHECK_STR(run("- {source_labels: [nope], target_label: job}", in), "__name__=up,instance=host:9100");
	/* Go's Expand: $1x is the (missing) group named 1x; ${1}x is group 1 then x; $$ is a dollar */
	CHECK_STR(run("- {source_labels: [job], regex: '(.*)', target_label: a, replacement: '$1x'}", in),
	          "__name__=up,instance=host:9100,job=node");
	CHECK_STR(run("- {source_labels: [job], regex: '(.*)', target_label: a, replacement: '${1}x$$'}", in),
	          "__name__=up,a=nodex$,instance=host:9100,job=node");
	CHECK_STR(
	    run("- {source_labels: [job], regex: '(?P<j>.*)', target_label: '${j}_l', replacement: '$j'}",
	        in),
	    "__name__=up,instance=host:9100,job=node,node_l=node");
	CHECK_STR(run("- {action: labeldrop, regex: 'inst.*'}", in), "__name__=up,job=node");
	CHECK_STR(run("- {action: labelkeep, regex: '__name__|job'}", in), "__name__=up,job=node");
	CHECK_STR(run("- {action: labelmap, regex: '(j)ob', replacement: 'new_$1'}", in),
	          "__name__=up,instance=host:9100,job=node,new_j=node");
	CHECK_STR(run("- {action: uppercase, source_labels: [job], target_label: J}", in),
	          "J=NODE,__name__=up,instance=host:9100,job=node");
	CHECK_STR(run("- {action: keepequal, source_labels: [job], target_label: job}", in), in);
	CHECK_STR(run("- {action: dropequal, source_labels: [job], target_label: job}", in), "DROP");
	/* hashmod: the last 8 bytes of md5("node"), big-endian, mod 1000 */
	CHECK_STR(
	    run("- {action: hashmod, source_labels: [job], modulus: 1000, target_label: shard}", "job=node"),
	    "job=node,shard=140");
	/* rules run in order; a series left without labels is dropped */
	CHECK_STR(run("- {action: labeldrop, regex: '.*'}", in), "DROP");
	CHECK_STR(run("- {source_labels: [job], target_label: t}\n- {action: drop, source_labels: [t], "
	              "regex: node}",
	              in),
	          "DROP");
}

TEST(relabel_config_errors)
{
	const char *bad[] = {
	    "- {action: replace}",                              /* no target_label */
	    "- {action: hashmod, target_label: x}",             /* no modulus */
	    "- {action: labeldrop, regex: a, target_label: x}", /* extra field */
	    "- {action: nope}",
	    "- {regex: '(a', target_label: x}",
	    "- {target_label: '1x'}",
	    "- {source_labels: ['bad-name'], target_label: x}",
	    "- {action: drop, frobnicate: 1}",
	    "a: b",
	    "- [",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		relabel_t *r = NULL;
		err_t err = {0};
		if (relabel_parse(bad[i], strlen(bad[i]), "cfg.yaml", &r, &err) != ERR_INVALID)
			TEST_FAILF("accepted: %s", bad[i]);
		CHECK(strstr(err.msg, "cfg.yaml") != NULL);
		CHECK(r == NULL);
	}
}

TEST_MAIN()
