/*
 * rulesrv.c — see rulesrv.h. The snapshot never waits for an evaluation (rulemgr_snapshot), so the
 * handler runs on the gRPC loop.
 */
#include "rule/rulesrv.h"

#include <stdlib.h>

#include "base/alloc.h"

struct rulesrv {
	rulemgr_t *m;
	arena_t arena;
	labels_t ext;
};

static void handle(grpc_call_t *call, str_t msg, void *arg)
{
	rulesrv_t *s = arg;
	err_t err = {0};
	int type;
	if (rules_request_unpack(msg, &type, &err)) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, err.msg);
		return;
	}
	arena_t a;
	arena_init(&a, 0);
	rules_group_t *g;
	size_t n = rulemgr_snapshot(s->m, &a, &g);
	buf_t b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		/* keep only rules of the type asked for */
		size_t k = 0;
		for (size_t j = 0; j < g[i].nrules; j++)
			if (type == RULES_ALL || (type == RULES_ALERT) == g[i].rules[j].alert)
				g[i].rules[k++] = g[i].rules[j];
		g[i].nrules = k;
		buf_reset(&b);
		rules_group_pack(&b, &g[i], &s->ext);
		grpc_call_send(call, b.p, b.n);
	}
	buf_release(&b);
	arena_release(&a);
	grpc_call_finish(call, GRPC_OK, NULL);
}

rulesrv_t *rulesrv_register(grpc_server_t *srv, rulemgr_t *m, const labels_t *ext)
{
	rulesrv_t *s = xcalloc(1, sizeof *s);
	s->m = m;
	arena_init(&s->arena, 0);
	s->ext = labels_copy(&s->arena, ext);
	grpc_server_register(srv, "/thanos.Rules/Rules", handle, s);
	return s;
}

void rulesrv_free(rulesrv_t *s)
{
	if (!s)
		return;
	arena_release(&s->arena);
	free(s);
}
