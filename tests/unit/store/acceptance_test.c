/*
 * acceptance_test.c — the StoreAPI acceptance suite: one dataset, one table of requests with their
 * expected answers, run against every store implementation in the tree (store.h semantics):
 *
 *   inmem      the in-memory store
 *   bucket     the store gateway over a FILESYSTEM bucket holding two 2h blocks written by the tsdb
 *              block writer (same dataset, external labels in meta.json)
 *   grpc       grpc_server serving an in-memory store -> grpc_client store (127.0.0.1, free port)
 *   proxy-dup  the proxy over inmem + bucket (every series from both: duplicates merged into one)
 *   proxy-part the proxy over grpc + an in-memory store holding parts of some series (chain merge)
 *   tsdb       the local-TSDB store (receiver, ruler): the dataset appended to a head, then the
 *              first 2h cut into a block, so answers come from a block and the head together
 *
 * Expectations are hand-written (series ids in the sorted order); the exact samples come from a
 * reference model of the dataset (matchers on the labels with external labels merged, samples
 * trimmed to [mint, maxt]). Every chunk returned must decode, hold at most 120 samples, agree with
 * its mint/maxt, overlap [mint, maxt] and come sorted by mint. prom_store needs a live Prometheus:
 * it runs its own unit/integration tests. Mismatches are collected per store and case so one run
 * shows all of them.
 */
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "net/grpc.h"
#include "objstore/config.h"
#include "storegw/bucket_store.h"
#include "store/grpc_client.h"
#include "store/grpc_server.h"
#include "store/inmem.h"
#include "store/proxy.h"
#include "store/tsdbstore.h"
#include "tsdb/block.h"
#include "tsdb/db.h"
#include "tsdb/xor.h"

#define H1 (3600 * 1000ll)
#define H2 (2 * H1)
#define END (2 * H2) /* data in [0, 4h) */

/* ---- the dataset ---- */

typedef struct ds_series {
	char id;
	const char *labels; /* "name=value,..." */
	int64_t from, to, step; /* samples at from, from+step, ... < to */
} ds_series_t;

/* External labels of every store: region="eu". D and E flip order once it is merged in (local
 * {job=api} < {job=api,path=/x}, but {job=api,region=eu} > {job=api,path=/x,region=eu}); I has a
 * local region label the external one overrides; G lives only in the second block, H in the first. */
static const ds_series_t DS[] = {
	{'A', "__name__=up,instance=a,job=api", 0, END, 15000},
	{'B', "__name__=up,instance=b,job=api", 0, END, 15000},
	{'C', "__name__=up,env=prod,instance=a,job=db", 0, END, 15000},
	{'D', "__name__=up,job=api", 0, END, 30000},
	{'E', "__name__=up,job=api,path=/x", 0, END, 15000},
	{'F', "__name__=http_requests_total,code=200,job=api,path=/a b/\xc3\xbc", 0, END, 15000},
	{'G', "__name__=http_requests_total,code=500,job=api", H2, END, 15000},
	{'H', "__name__=process_cpu,job=db", 0, H1, 15000},
	{'I', "__name__=up,instance=b,job=db,region=local", 0, END, 15000},
};
#define NDS (sizeof DS / sizeof DS[0])

static double ds_value(size_t i, int64_t t)
{
	return (double)(i + 1) * 1e6 + (double)t / 1000.0;
}

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

/* Samples of series i within [from, to). */
static size_t ds_samples(size_t i, int64_t from, int64_t to, int64_t *t, double *v)
{
	size_t n = 0;
	for (int64_t x = DS[i].from; x < DS[i].to; x += DS[i].step)
		if (x >= from && x < to) {
			t[n] = x;
			v[n++] = ds_value(i, x);
		}
	return n;
}

#define MAXS ((size_t)(END / 15000))

/* keep(i) picks the series and time range [from, to) of series i an in-memory store gets. */
static inmem_store_t *mk_inmem(const char *name, int64_t from, int64_t to, const char *ids)
{
	arena_t a;
	arena_init(&a, 0);
	labels_t ext = L(&a, "region=eu");
	inmem_store_t *s = inmem_store_new(name, &ext);
	int64_t *t = xcalloc(MAXS, sizeof *t);
	double *v = xcalloc(MAXS, sizeof *v);
	for (size_t i = 0; i < NDS; i++) {
		if (ids && !strchr(ids, DS[i].id))
			continue;
		size_t n = ds_samples(i, from, to, t, v);
		if (!n)
			continue;
		labels_t ls = L(&a, DS[i].labels);
		err_t err = {0};
		if (inmem_store_add(s, &ls, t, v, n, &err))
			die("inmem add: %s", err.msg);
	}
	free(t);
	free(v);
	arena_release(&a);
	return s;
}

/* ---- stores under test ---- */

static char tmp[256], bdir[300], ddir[300];

static void write_block(int64_t from, int64_t to)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	block_writer_t *bw;
	if (block_writer_new(&bw, bdir, NULL, &err))
		die("%s", err.msg);
	int64_t *t = xcalloc(MAXS, sizeof *t);
	double *v = xcalloc(MAXS, sizeof *v);
	for (size_t i = 0; i < NDS; i++) {
		labels_t ls = L(&a, DS[i].labels);
		size_t n = ds_samples(i, from, to, t, v);
		if (block_writer_add_series(bw, &ls, t, v, n, &err))
			die("%s", err.msg);
	}
	block_meta_t m = {0};
	meta_set_label(&m, "region", "eu");
	m.source = xstrdup("test");
	if (block_writer_finish(bw, &m, NULL, &err))
		die("%s", err.msg);
	meta_release(&m);
	free(t);
	free(v);
	arena_release(&a);
}

typedef struct grpc_env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	store_service_t *svc;
	pthread_t th;
	char addr[64];
} grpc_env_t;

static void *loop_thread(void *arg)
{
	loop_run(((grpc_env_t *)arg)->loop);
	return NULL;
}

static void grpc_start(grpc_env_t *e, store_t *served)
{
	memset(e, 0, sizeof *e);
	err_t err = {0};
	if (loop_new(&e->loop, &err))
		die("loop: %s", err.msg);
	e->srv = grpc_server_new(e->loop, NULL);
	e->svc = store_grpc_register(e->srv, served, "store");
	if (grpc_server_listen(e->srv, "127.0.0.1:0", &e->ls, &err))
		die("listen: %s", err.msg);
	snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", listener_port(e->ls));
	pthread_create(&e->th, NULL, loop_thread, e);
}

static void grpc_stop(grpc_env_t *e)
{
	loop_stop(e->loop);
	loop_wakeup(e->loop);
	pthread_join(e->th, NULL);
	listener_free(e->ls);
	store_grpc_service_free(e->svc);
	grpc_server_free(e->srv);
	loop_free(e->loop);
}

enum { S_INMEM, S_BUCKET, S_GRPC, S_PROXY_DUP, S_PROXY_PART, S_TSDB, NSTORES };
static const char *const store_names[NSTORES] = {"inmem", "bucket", "grpc", "proxy-dup", "proxy-part", "tsdb"};

typedef struct fixture {
	store_t *st[NSTORES];
	inmem_store_t *mem, *mem_served, *mem_part;
	bucket_t *bkt;
	bucket_store_t *bs;
	grpc_env_t genv;
	proxy_store_t *pdup, *ppart;
	db_t *db;
	tsdb_store_t *ts;
} fixture_t;

/* The dataset through a head, in time order (a head refuses samples over an hour older than its
 * newest), then cut: [0, 2h) becomes a block, [2h, 4h) stays in the head. */
static void mk_tsdb(fixture_t *f)
{
	char dir[400];
	snprintf(dir, sizeof dir, "%s/tsdb", tmp);
	err_t err = {0};
	if (db_open(&f->db, dir, NULL, NULL, &err))
		die("db_open: %s", err.msg);
	arena_t a;
	arena_init(&a, 0);
	head_input_t in[NDS];
	int64_t t[NDS];
	double v[NDS];
	for (int64_t x = 0; x < END; x += 15000) {
		size_t n = 0;
		for (size_t i = 0; i < NDS; i++)
			if (x >= DS[i].from && x < DS[i].to && (x - DS[i].from) % DS[i].step == 0) {
				t[n] = x;
				v[n] = ds_value(i, x);
				in[n] = (head_input_t){.ls = L(&a, DS[i].labels), .t = &t[n], .v = &v[n], .n = 1};
				n++;
			}
		if (head_append(db_head(f->db), in, n, NULL, 0, &err))
			die("append: %s", err.msg);
		for (size_t i = 0; i < n; i++)
			if (in[i].verdict != HEAD_OK)
				die("append: verdict %d", in[i].verdict);
	}
	arena_release(&a);
	int nb;
	if (db_compact(f->db, false, &nb, &err) || nb != 1)
		die("db_compact: %d blocks: %s", nb, err.msg);
	arena_init(&a, 0);
	labels_t ext = L(&a, "region=eu");
	f->ts = tsdb_store_new("tsdb", f->db, &ext, "receive");
	arena_release(&a);
	f->st[S_TSDB] = tsdb_store_base(f->ts);
}

static void fixture_init(fixture_t *f)
{
	memset(f, 0, sizeof *f);
	snprintf(tmp, sizeof tmp, "/tmp/strata-accept.XXXXXX");
	BUG_ON(!mkdtemp(tmp));
	snprintf(bdir, sizeof bdir, "%s/bucket", tmp);
	snprintf(ddir, sizeof ddir, "%s/data", tmp);
	mkdir(bdir, 0755);
	write_block(0, H2);
	write_block(H2, END);
	char yaml[512];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}", bdir);
	err_t err = {0};
	if (objstore_from_config(yaml, strlen(yaml), &f->bkt, &err))
		die("%s", err.msg);
	bucket_store_config_t cfg = {.bkt = f->bkt, .data_dir = ddir, .min_time = INT64_MIN, .max_time = INT64_MAX,
				     .index_cache_size = 1 << 20};
	if (bucket_store_new(&f->bs, &cfg, &err) || bucket_store_sync(f->bs, &err))
		die("%s", err.msg);

	f->mem = mk_inmem("mem", 0, END, NULL);
	f->mem_served = mk_inmem("served", 0, END, NULL);
	/* Parts of some series only: their chunks overlap the full ones without being identical. */
	f->mem_part = mk_inmem("part", H1, H1 + 3 * H1 / 2, "ACEFG");
	grpc_start(&f->genv, inmem_store_base(f->mem_served));
	store_grpc_client_config_t ccfg = {.timeout_ms = 10000, .backoff_max_ms = 100};
	if (store_grpc_client_new(&f->st[S_GRPC], f->genv.addr, &ccfg, &err))
		die("%s", err.msg);
	f->st[S_INMEM] = inmem_store_base(f->mem);
	f->st[S_BUCKET] = bucket_store_base(f->bs);
	f->pdup = proxy_store_new("proxy-dup");
	proxy_store_add(f->pdup, f->st[S_INMEM]);
	proxy_store_add(f->pdup, f->st[S_BUCKET]);
	f->st[S_PROXY_DUP] = proxy_store_base(f->pdup);
	f->ppart = proxy_store_new("proxy-part");
	proxy_store_add(f->ppart, f->st[S_GRPC]);
	proxy_store_add(f->ppart, inmem_store_base(f->mem_part));
	f->st[S_PROXY_PART] = proxy_store_base(f->ppart);
	mk_tsdb(f);
}

static void fixture_release(fixture_t *f)
{
	proxy_store_free(f->pdup);
	proxy_store_free(f->ppart);
	tsdb_store_free(f->ts);
	db_close(f->db, NULL);
	store_free(f->st[S_GRPC]);
	grpc_stop(&f->genv);
	inmem_store_free(f->mem);
	inmem_store_free(f->mem_served);
	inmem_store_free(f->mem_part);
	bucket_store_free(f->bs);
	bucket_free(f->bkt);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp);
}

/* ---- matchers from "name<op>value;..." ---- */

static size_t parse_matchers(const char *spec, matcher_t *ms, size_t cap, err_t *err)
{
	size_t n = 0;
	char buf[512];
	snprintf(buf, sizeof buf, "%s", spec);
	char *save = NULL;
	for (char *s = strtok_r(buf, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
		BUG_ON(n == cap);
		size_t nl = strcspn(s, "=!");
		match_type_t ty = MATCH_EQ;
		const char *val = s + nl + 1;
		if (s[nl] == '!')
			ty = s[nl + 1] == '~' ? MATCH_NRE : MATCH_NEQ, val = s + nl + 2;
		else if (s[nl + 1] == '~')
			ty = MATCH_RE, val = s + nl + 2;
		if (matcher_init(&ms[n], ty, str_from(s, nl), str_c(val), err))
			die("matcher %s: %s", s, err->msg);
		n++;
	}
	return n;
}

static void release_matchers(matcher_t *ms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		matcher_release(&ms[i]);
}

/* ---- the reference model ---- */

typedef struct model_series {
	labels_t ls;
	size_t idx;
} model_series_t;

static int model_cmp(const void *a, const void *b)
{
	return labels_cmp(&((const model_series_t *)a)->ls, &((const model_series_t *)b)->ls);
}

static void render_samples(buf_t *out, const int64_t *t, const double *v, size_t n)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	if (n)
		buf_printf(out, " n=%zu %lld..%lld sum=%.17g", n, (long long)t[0], (long long)t[n - 1], sum);
	else
		buf_printf(out, " n=0");
}

/* Expected rendering and the ids in order. Series count once some sample lies in [mint, maxt]. */
static void model_series(arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt, bool skip,
			 int64_t limit, buf_t *out, char *ids)
{
	labels_t ext = L(a, "region=eu");
	model_series_t sel[NDS];
	size_t n = 0;
	int64_t *t = ARENA_NEW_ARRAY(a, int64_t, MAXS);
	double *v = ARENA_NEW_ARRAY(a, double, MAXS);
	for (size_t i = 0; i < NDS; i++) {
		labels_t ls = L(a, DS[i].labels);
		labels_t m = store_merge_external(a, &ls, &ext);
		bool ok = true;
		for (size_t j = 0; j < nms && ok; j++)
			ok = matcher_matches_labels(&ms[j], &m);
		int64_t hi = maxt == INT64_MAX ? INT64_MAX : maxt + 1;
		if (ok && ds_samples(i, mint, hi, t, v) > 0)
			sel[n++] = (model_series_t){m, i};
	}
	qsort(sel, n, sizeof *sel, model_cmp);
	if (limit > 0 && (int64_t)n > limit)
		n = (size_t)limit;
	for (size_t k = 0; k < n; k++) {
		ids[k] = DS[sel[k].idx].id;
		labels_format_full(out, &sel[k].ls);
		if (!skip) {
			size_t ns = ds_samples(sel[k].idx, mint, maxt == INT64_MAX ? INT64_MAX : maxt + 1, t, v);
			render_samples(out, t, v, ns);
		}
		buf_puts(out, "\n");
	}
	ids[n] = 0;
}

/* ---- what a store returns, rendered the same way, with its chunks checked ---- */

static void check_chunks(series_set_t *set, int64_t mint, int64_t maxt, buf_t *out)
{
	const chunk_t *cs;
	int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : -1;
	for (int i = 0; i < nc; i++) {
		if (cs[i].maxt < mint || cs[i].mint > maxt)
			buf_printf(out, " [chunk %d %lld..%lld outside the range]", i, (long long)cs[i].mint,
				   (long long)cs[i].maxt);
		if (i && cs[i].mint < cs[i - 1].mint)
			buf_printf(out, " [chunk %d not sorted by mint]", i);
		if (cs[i].enc != CHUNK_ENC_XOR) {
			buf_printf(out, " [chunk %d encoding %d]", i, cs[i].enc);
			continue;
		}
		xor_dec_t d;
		err_t err = {0};
		if (xor_dec_init(&d, cs[i].data, cs[i].len, &err)) {
			buf_printf(out, " [chunk %d: %s]", i, err.msg);
			continue;
		}
		int cnt = xor_dec_count(&d);
		if (cnt > XOR_SAMPLES_PER_CHUNK || cnt == 0)
			buf_printf(out, " [chunk %d has %d samples]", i, cnt);
		int64_t t, first = 0, last = 0;
		double v;
		int k = 0, rc;
		while ((rc = xor_dec_next(&d, &t, &v, &err)) > 0) {
			if (k++ == 0)
				first = t;
			last = t;
		}
		if (rc < 0 || k != cnt)
			buf_printf(out, " [chunk %d decodes %d of %d samples: %s]", i, k, cnt, err.msg);
		else if (cnt && (first != cs[i].mint || last != cs[i].maxt))
			buf_printf(out, " [chunk %d says %lld..%lld, holds %lld..%lld]", i, (long long)cs[i].mint,
				   (long long)cs[i].maxt, (long long)first, (long long)last);
	}
}

/* Returns the call's rc; the rendering (plus warnings "W:...") goes to out. */
static int store_render(store_t *s, arena_t *a, const store_series_req_t *req, buf_t *out, err_t *err)
{
	series_set_t *set;
	int rc = store_series(s, a, req, &set, err);
	if (rc)
		return rc;
	labels_t prev = {0};
	bool have_prev = false;
	int64_t *t = ARENA_NEW_ARRAY(a, int64_t, MAXS + 1);
	double *v = ARENA_NEW_ARRAY(a, double, MAXS + 1);
	while ((rc = series_set_next(set, err)) == 1) {
		const labels_t *ls = series_set_labels(set);
		labels_format_full(out, ls);
		if (have_prev && labels_cmp(&prev, ls) >= 0)
			buf_puts(out, " [not sorted after the previous series]");
		prev = labels_copy(a, ls);
		have_prev = true;
		if (req->skip_chunks) {
			const chunk_t *cs;
			if (set->ops->chunks && set->ops->chunks(set, &cs) > 0)
				buf_puts(out, " [chunks with skip_chunks]");
			buf_puts(out, "\n");
			continue;
		}
		check_chunks(set, req->mint, req->maxt, out);
		sample_iter_t *it = series_set_samples(set);
		size_t n = 0;
		int k;
		while ((k = sample_iter_next_batch(it, t + n, v + n, (int)(MAXS + 1 - n), err)) > 0) {
			n += (size_t)k;
			if (n > MAXS) {
				buf_puts(out, " [too many samples]");
				break;
			}
		}
		if (k < 0) {
			rc = k;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (t[i] < req->mint || t[i] > req->maxt || (i && t[i] <= t[i - 1])) {
				buf_printf(out, " [sample %zu at %lld untrimmed or out of order]", i, (long long)t[i]);
				break;
			}
		render_samples(out, t, v, n);
		buf_puts(out, "\n");
	}
	if (rc == 0 && set->ops->warnings) {
		const char *const *w;
		size_t nw = set->ops->warnings(set, &w);
		for (size_t i = 0; i < nw; i++)
			buf_printf(out, "W:%s\n", w[i]);
	}
	series_set_close(set);
	return rc;
}

/* ---- the table ---- */

typedef struct series_case {
	const char *what;
	const char *ms;
	int64_t mint, maxt;
	bool skip;
	int64_t limit;
	const char *want; /* series ids in the order they must come */
} series_case_t;

static const series_case_t SERIES_CASES[] = {
	{"name equality", "__name__=up", 0, END, false, 0, "CABIED"},
	{"= \"\" matches series without the label", "__name__=up;instance=", 0, END, false, 0, "ED"},
	{"!= \"\" matches series with the label", "__name__=up;instance!=", 0, END, false, 0, "CABI"},
	{"=~ \"\" matches series without the label", "__name__=up;path=~", 0, END, false, 0, "CABID"},
	{"regex matching empty or a value", "__name__=up;path=~|/x", 0, END, false, 0, "CABIED"},
	{"!~ \"\" needs the label", "__name__=up;path!~", 0, END, false, 0, "E"},
	{"=~ .* matches everything", "job=~.*", 0, END, false, 0, "FGHCABIED"},
	{"regex alternation and !=", "job=~api|db;__name__!=up", 0, END, false, 0, "FGH"},
	{"!~ on a label some series lack", "__name__=~http_.*;path!~/x", 0, END, false, 0, "FG"},
	{"value with space and UTF-8", "path=/a b/\xc3\xbc", 0, END, false, 0, "F"},
	{"!~ only", "job!~api", 0, END, false, 0, "HCI"},
	{"several matchers on one name", "job=~a.*;job!=db;instance=~a|b", 0, END, false, 0, "AB"},
	{"no series matches", "__name__=nope", 0, END, false, 0, ""},
	{"external label matches", "region=eu;job=db", 0, END, false, 0, "HCI"},
	{"external label does not match", "region=us;job=db", 0, END, false, 0, ""},
	{"external label regex matches", "region=~e.|us;__name__=process_cpu", 0, END, false, 0, "H"},
	{"external label !~ does not match", "region!~eu;job=db", 0, END, false, 0, ""},
	{"external label = \"\" does not match", "region=;job=db", 0, END, false, 0, ""},
	{"external label != \"\" matches", "region!=;job=db", 0, END, false, 0, "HCI"},
	{"only an external label matcher", "region=eu", 0, END, false, 0, "FGHCABIED"},
	{"external label wins over a local one", "region=local", 0, END, false, 0, ""},
	{"second block only", "job=db", H2, END - 1, false, 0, "CI"},
	{"first block only", "__name__=http_requests_total", 0, H2 - 1, false, 0, "F"},
	{"trimmed inside chunks", "instance=a", 1000000, 1000000 + 599999, false, 0, "CA"},
	{"single instant at a block boundary", "__name__=up;job=api", H2, H2, false, 0, "ABED"},
	{"across the block boundary", "__name__=up;instance=b", H2 - 3 * 60000, H2 + 3 * 60000, false, 0, "BI"},
	{"after the data", "__name__=up", END, END + H1, false, 0, ""},
	{"skip_chunks", "__name__=up", 0, END, true, 0, "CABIED"},
	{"skip_chunks with a time range", "job=db", H2, END - 1, true, 0, "CI"},
	{"limit", "__name__=up", 0, END, false, 2, "CA"},
	{"limit with skip_chunks", "job=~.+", 0, END, true, 4, "FGHC"},
};

typedef struct label_case {
	const char *what;
	const char *ms; /* "" = no matchers */
	int64_t mint, maxt;
	const char *name; /* NULL = label names */
	int64_t limit;
	const char *want; /* "a,b,c" */
} label_case_t;

static const label_case_t LABEL_CASES[] = {
	{"all names", "", 0, END, NULL, 0, "__name__,code,env,instance,job,path,region"},
	{"names with a matcher", "job=db", 0, END, NULL, 0, "__name__,env,instance,job,region"},
	{"names, matcher and time range", "code=500", 0, H2 - 1, NULL, 0, ""},
	{"names, external label mismatch", "region=us", 0, END, NULL, 0, ""},
	{"names, external label match", "region=eu;__name__=process_cpu", 0, END, NULL, 0, "__name__,job,region"},
	{"values", "", 0, END, "job", 0, "api,db"},
	{"values with a matcher", "job=api", 0, END, "instance", 0, "a,b"},
	{"values of the external label", "", 0, END, "region", 0, "eu"},
	{"values, matcher and time range", "job=db", H2, END - 1, "__name__", 0, "up"},
	{"values within the first block", "", 0, H2 - 1, "code", 0, "200"},
	{"values with an empty-value matcher", "__name__=up;instance=", 0, END, "path", 0, "/x"},
	{"values, external label mismatch", "region=us", 0, END, "job", 0, ""},
	{"values of a missing label", "", 0, END, "nope", 0, ""},
	{"values with a limit", "", 0, END, "__name__", 2, "http_requests_total,process_cpu"},
};

static void run_series_cases(fixture_t *f, buf_t *fails)
{
	for (size_t c = 0; c < sizeof SERIES_CASES / sizeof SERIES_CASES[0]; c++) {
		const series_case_t *sc = &SERIES_CASES[c];
		arena_t a;
		arena_init(&a, 0);
		err_t err = {0};
		matcher_t ms[8];
		size_t nms = parse_matchers(sc->ms, ms, 8, &err);
		buf_t want = BUF_INIT;
		char ids[NDS + 1];
		model_series(&a, ms, nms, sc->mint, sc->maxt, sc->skip, sc->limit, &want, ids);
		if (strcmp(ids, sc->want) != 0)
			buf_printf(fails, "table: %s: the model selects \"%s\", the table says \"%s\"\n", sc->what, ids,
				   sc->want);
		store_series_req_t req = {.mint = sc->mint, .maxt = sc->maxt, .ms = ms, .nms = nms,
					  .skip_chunks = sc->skip, .limit = sc->limit};
		for (int s = 0; s < NSTORES; s++) {
			buf_t got = BUF_INIT;
			err_clear(&err);
			int rc = store_render(f->st[s], &a, &req, &got, &err);
			if (rc)
				buf_printf(fails, "%s: %s: rc %d: %s\n", store_names[s], sc->what, rc, err.msg);
			else if (strcmp(got.p ? got.p : "", want.p ? want.p : "") != 0)
				buf_printf(fails, "%s: %s:\n--- got\n%s--- want\n%s", store_names[s], sc->what,
					   got.p ? got.p : "", want.p ? want.p : "");
			buf_release(&got);
		}
		buf_release(&want);
		release_matchers(ms, nms);
		arena_release(&a);
	}
}

static void run_label_cases(fixture_t *f, buf_t *fails)
{
	for (size_t c = 0; c < sizeof LABEL_CASES / sizeof LABEL_CASES[0]; c++) {
		const label_case_t *lc = &LABEL_CASES[c];
		arena_t a;
		arena_init(&a, 0);
		err_t err = {0};
		matcher_t ms[8];
		size_t nms = parse_matchers(lc->ms, ms, 8, &err);
		store_label_req_t req = {.mint = lc->mint, .maxt = lc->maxt, .ms = ms, .nms = nms, .limit = lc->limit};
		if (lc->name)
			req.name = str_c(lc->name);
		for (int s = 0; s < NSTORES; s++) {
			store_strings_t out;
			err_clear(&err);
			int rc = lc->name ? store_label_values(f->st[s], &a, &req, &out, &err)
					  : store_label_names(f->st[s], &a, &req, &out, &err);
			if (rc) {
				buf_printf(fails, "%s: %s: rc %d: %s\n", store_names[s], lc->what, rc, err.msg);
				continue;
			}
			buf_t got = BUF_INIT;
			buf_puts(&got, "");
			for (size_t i = 0; i < out.n; i++)
				buf_printf(&got, "%s%.*s", i ? "," : "", (int)out.v[i].n, out.v[i].p);
			for (size_t i = 0; i < out.nwarnings; i++)
				buf_printf(&got, " W:%s", out.warnings[i]);
			if (strcmp(got.p, lc->want) != 0)
				buf_printf(fails, "%s: %s: got \"%s\", want \"%s\"\n", store_names[s], lc->what, got.p,
					   lc->want);
			buf_release(&got);
		}
		release_matchers(ms, nms);
		arena_release(&a);
	}
}

static void run_info(fixture_t *f, buf_t *fails)
{
	for (int s = 0; s < NSTORES; s++) {
		arena_t a;
		arena_init(&a, 0);
		err_t err = {0};
		store_info_t info;
		if (store_info(f->st[s], &a, &info, &err)) {
			buf_printf(fails, "%s: info: %s\n", store_names[s], err.msg);
			arena_release(&a);
			continue;
		}
		bool eu = info.nlabel_sets > 0;
		for (size_t i = 0; i < info.nlabel_sets; i++) {
			bool found;
			str_t v = labels_get(&info.label_sets[i], STR("region"), &found);
			eu = eu && found && str_eq(v, STR("eu")) && info.label_sets[i].n == 1;
		}
		if (!eu)
			buf_printf(fails, "%s: info: label sets are not all {region=\"eu\"} (%zu sets)\n", store_names[s],
				   info.nlabel_sets);
		if (info.mint > 0 || info.maxt < END - 15000 || info.maxt > END)
			buf_printf(fails, "%s: info: time range %lld..%lld does not cover the data 0..%lld\n",
				   store_names[s], (long long)info.mint, (long long)info.maxt, (long long)(END - 15000));
		arena_release(&a);
	}
}

TEST(every_store_answers_the_table)
{
	fixture_t f;
	fixture_init(&f);
	buf_t fails = BUF_INIT;
	buf_puts(&fails, "");
	run_series_cases(&f, &fails);
	run_label_cases(&f, &fails);
	run_info(&f, &fails);
	char *msg = xstrdup(fails.p);
	buf_release(&fails);
	fixture_release(&f);
	if (msg[0])
		fprintf(stderr, "%s", msg);
	bool ok = msg[0] == 0;
	free(msg);
	CHECK(ok);
}

/* A bad regex never reaches an in-process store (matcher_init refuses it); over gRPC the server
 * refuses it: an error naming the store, directly and through the proxy with partial response off,
 * a warning with it on. */
TEST(bad_regex_is_an_error_not_a_crash)
{
	err_t err = {0};
	matcher_t m;
	CHECK_EQ_INT(matcher_init(&m, MATCH_RE, STR("job"), STR("(a"), &err), ERR_INVALID);
	CHECK(strstr(err.msg, "missing closing )") != NULL);
	err_clear(&err);

	fixture_t f;
	fixture_init(&f);
	arena_t a;
	arena_init(&a, 0);
	/* What a remote peer could send: the client passes name/type/value through unchecked. */
	matcher_t bad = {.type = MATCH_RE, .name = STR("job"), .value = STR("(a"), .re = NULL};
	store_series_req_t req = {.mint = 0, .maxt = END, .ms = &bad, .nms = 1};
	buf_t out = BUF_INIT;
	int rc = store_render(f.st[S_GRPC], &a, &req, &out, &err);
	CHECK(rc < 0);
	CHECK(strstr(err.msg, f.genv.addr) != NULL);
	CHECK(strstr(err.msg, "missing closing )") != NULL);
	store_label_req_t lr = {.mint = 0, .maxt = END, .ms = &bad, .nms = 1, .name = STR("job")};
	store_strings_t sv;
	err_clear(&err);
	CHECK(store_label_values(f.st[S_GRPC], &a, &lr, &sv, &err) < 0);
	CHECK(strstr(err.msg, "missing closing )") != NULL);
	/* proxy-part = grpc + an in-memory store; the in-memory one must not see the bad matcher, so
	 * put the grpc store alone behind a proxy. */
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, f.st[S_GRPC]);
	req.abort_on_error = true;
	err_clear(&err);
	buf_reset(&out);
	rc = store_render(proxy_store_base(p), &a, &req, &out, &err);
	CHECK(rc < 0);
	CHECK(strstr(err.msg, f.genv.addr) != NULL);
	req.abort_on_error = false;
	err_clear(&err);
	buf_reset(&out);
	CHECK_EQ_INT(store_render(proxy_store_base(p), &a, &req, &out, &err), 0);
	CHECK(out.p && strncmp(out.p, "W:store ", 8) == 0 && strstr(out.p, "missing closing )") != NULL);
	buf_release(&out);
	proxy_store_free(p);
	arena_release(&a);
	fixture_release(&f);
}

TEST_MAIN()
