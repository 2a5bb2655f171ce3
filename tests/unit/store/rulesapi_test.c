#include "test.h"

#include "store/rulesapi.h"

static rules_group_t group(arena_t *a, const char *replica, int state)
{
	rules_group_t g = {.name = STR("g"), .file = STR("/r.yml"), .interval_s = 30, .eval_s = 0.0000012,
	                   .last_eval_ms = 1700000000123, .strategy = RULES_WARN};
	g.rules = arena_calloc(a, 2, sizeof *g.rules);
	g.nrules = 2;
	g.rules[0] = (rules_rule_t){.name = STR("job:up:sum"), .query = STR("sum by (job) (up)"),
	                            .health = RULES_HEALTH_OK, .eval_s = 0.5, .last_eval_ms = 1700000000123};
	rules_rule_t *al = &g.rules[1];
	*al = (rules_rule_t){.alert = true, .name = STR("Down"), .query = STR("up == 0"), .for_s = 300,
	                     .health = RULES_HEALTH_ERR, .last_error = STR("boom"), .state = state};
	label_t *ls = arena_calloc(a, 3, sizeof *ls);
	ls[0] = (label_t){STR("alertname"), STR("Down")};
	ls[1] = (label_t){STR("instance"), STR("a")};
	ls[2] = (label_t){STR("replica"), str_c(replica)};
	label_t *an = arena_calloc(a, 1, sizeof *an);
	an[0] = (label_t){STR("summary"), STR("a is \"down\"")};
	al->alerts = arena_calloc(a, 1, sizeof *al->alerts);
	al->alerts[0] = (rules_alert_t){.ls = {ls, 3}, .ann = {an, 1}, .state = state, .active_at_ms = 1700000000500, .value = 0};
	al->nalerts = 1;
	return g;
}

TEST(json_shapes)
{
	arena_t a;
	arena_init(&a, 0);
	rules_group_t g = group(&a, "r0", RULES_FIRING);
	buf_t b = BUF_INIT;
	rules_json(&b, &g, 1, RULES_ALL);
	CHECK_STR(b.p, "{\"groups\":[{\"name\":\"g\",\"file\":\"/r.yml\",\"rules\":["
	               "{\"name\":\"job:up:sum\",\"query\":\"sum by (job) (up)\",\"health\":\"ok\",\"evaluationTime\":0.5,"
	               "\"lastEvaluation\":\"2023-11-14T22:13:20.123Z\",\"type\":\"recording\"},"
	               "{\"state\":\"firing\",\"name\":\"Down\",\"query\":\"up == 0\",\"duration\":300,\"keepFiringFor\":0,"
	               "\"labels\":{},\"annotations\":{},\"alerts\":[{\"labels\":{\"alertname\":\"Down\",\"instance\":\"a\","
	               "\"replica\":\"r0\"},\"annotations\":{\"summary\":\"a is \\\"down\\\"\"},\"state\":\"firing\","
	               "\"activeAt\":\"2023-11-14T22:13:20.500Z\",\"value\":\"0e+00\"}],\"health\":\"err\",\"lastError\":\"boom\","
	               "\"evaluationTime\":0,\"lastEvaluation\":\"0001-01-01T00:00:00Z\",\"type\":\"alerting\"}],"
	               "\"interval\":30,\"limit\":0,\"evaluationTime\":0.0000012,\"lastEvaluation\":\"2023-11-14T22:13:20.123Z\","
	               "\"partialResponseStrategy\":\"WARN\"}]}");
	buf_reset(&b);
	rules_json(&b, &g, 1, RULES_RECORD);
	CHECK(!strstr(b.p, "alerting"));
	buf_reset(&b);
	rules_alerts_json(&b, &g, 1);
	CHECK(strstr(b.p, "{\"alerts\":[{\"labels\":{\"alertname\":\"Down\"") == b.p);
	buf_release(&b);
	arena_release(&a);
}

TEST(pack_roundtrip_and_dedup)
{
	arena_t a;
	arena_init(&a, 0);
	label_t e[] = {{STR("cluster"), STR("eu1")}};
	labels_t ext = {e, 1};
	rules_set_t set = {0};
	set.v = arena_calloc(&a, 2, sizeof *set.v);
	for (int i = 0; i < 2; i++) {
		rules_group_t g = group(&a, i ? "r1" : "r0", i ? RULES_FIRING : RULES_PENDING);
		buf_t b = BUF_INIT;
		rules_group_pack(&b, &g, &ext);
		char *w = NULL;
		err_t err = {0};
		CHECK_EQ_INT(rules_response_unpack(&a, buf_str(&b), &set.v[i], &w, &err), 1);
		buf_release(&b);
	}
	set.n = 2;
	rules_group_t *u = &set.v[0];
	CHECK(str_eq_c(u->name, "g") && u->nrules == 2 && u->strategy == RULES_WARN);
	CHECK(u->rules[1].alert && u->rules[1].for_s == 300 && str_eq_c(u->rules[1].last_error, "boom"));
	CHECK_EQ_INT(u->rules[1].alerts[0].ls.n, 4); /* + cluster */
	CHECK_EQ_INT(u->rules[1].alerts[0].active_at_ms, 1700000000500);
	CHECK_EQ_INT(u->last_eval_ms, 1700000000123);
	const char *rl[] = {"replica"};
	rules_dedup(&a, &set, rl, 1);
	CHECK_EQ_INT(set.n, 1);
	CHECK_EQ_INT(set.v[0].nrules, 2);
	rules_rule_t *r = &set.v[0].rules[1];
	CHECK_EQ_INT(r->nalerts, 1);
	CHECK_EQ_INT(r->alerts[0].state, RULES_FIRING);
	CHECK_EQ_INT(r->alerts[0].ls.n, 3);
	CHECK_EQ_INT(r->state, RULES_FIRING);
	err_t err = {0};
	char *w;
	rules_group_t g;
	CHECK(rules_response_unpack(&a, STR("\xff\xff\xff"), &g, &w, &err) < 0);
	arena_release(&a);
}

TEST_MAIN()
