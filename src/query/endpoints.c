/*
 * endpoints.c — endpoint discovery, Info polling and per-query snapshots (see endpoints.h).
 */
#include "query/endpoints.h"

#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/vec.h"
#include "net/dnsname.h"
#include "store/proxy.h"

/* ------------------------------------------------------------------ endpoints (refcounted) */

typedef struct endpoint {
	store_t base; /* name = address */
	atomic_int refs;
	char *address;
	pthread_mutex_t mu; /* guards everything below */
	store_t *inner;
	arena_t info_arena;
	bool have_info;
	store_info_t info;
	int64_t last_check_ms;
	char *last_error;
	bool keep;   /* refresh sweep mark */
	bool redial; /* endpoint_set_redial: replace at the next round (guarded by the set's mu) */
} endpoint_t;

static void ep_ref(endpoint_t *e)
{
	atomic_fetch_add(&e->refs, 1);
}

static void ep_unref(endpoint_t *e)
{
	if (atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	store_free(e->inner);
	arena_release(&e->info_arena);
	pthread_mutex_destroy(&e->mu);
	free(e->last_error);
	free(e->address);
	free(e);
}

/* The inner store, or an ERR_UNAVAILABLE naming the endpoint. */
static store_t *ep_inner(endpoint_t *e, err_t *err)
{
	pthread_mutex_lock(&e->mu);
	store_t *s = e->inner;
	if (!s)
		err_set(err, ERR_UNAVAILABLE, "store %s: not connected: %s", e->address,
			e->last_error ? e->last_error : "not dialled yet");
	pthread_mutex_unlock(&e->mu);
	return s;
}

static int ep_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	store_t *s = ep_inner((endpoint_t *)base, err);
	return s ? store_series(s, a, req, out, err) : ERR_UNAVAILABLE;
}

static int ep_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	store_t *s = ep_inner((endpoint_t *)base, err);
	return s ? store_label_names(s, a, req, out, err) : ERR_UNAVAILABLE;
}

static int ep_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	store_t *s = ep_inner((endpoint_t *)base, err);
	return s ? store_label_values(s, a, req, out, err) : ERR_UNAVAILABLE;
}

static void copy_info(arena_t *a, const store_info_t *in, store_info_t *out)
{
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, in->nlabel_sets ? in->nlabel_sets : 1);
	for (size_t i = 0; i < in->nlabel_sets; i++)
		sets[i] = labels_copy(a, &in->label_sets[i]);
	out->label_sets = sets;
	out->nlabel_sets = in->nlabel_sets;
	out->mint = in->mint;
	out->maxt = in->maxt;
	out->component_type = in->component_type ? arena_strdup(a, in->component_type) : NULL;
	out->supports_without_replica_labels = in->supports_without_replica_labels;
}

/* Cached Info; an endpoint that never answered fails (a partial-response warning naming it). */
static int ep_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	endpoint_t *e = (endpoint_t *)base;
	int rc = 0;
	pthread_mutex_lock(&e->mu);
	if (e->have_info) {
		copy_info(a, &e->info, out);
	} else {
		/* The cause usually names the endpoint already. */
		const char *cause = e->last_error ? e->last_error : "";
		size_t pre = strlen("store ") + strlen(e->address) + 2;
		if (strncmp(cause, "store ", 6) == 0 && strncmp(cause + 6, e->address, strlen(e->address)) == 0 &&
		    strncmp(cause + pre - 2, ": ", 2) == 0)
			cause += pre;
		rc = err_set(err, ERR_UNAVAILABLE, "store %s: no Info received yet%s%s", e->address, *cause ? ": " : "",
			     cause);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

static void ep_free_base(store_t *base)
{
	(void)base; /* endpoints are reference-counted; the set owns them */
}

static const struct store_ops ep_ops = {
	.series = ep_series,
	.label_names = ep_label_names,
	.label_values = ep_label_values,
	.info = ep_info,
	.free = ep_free_base,
};

static endpoint_t *ep_new(const char *address)
{
	endpoint_t *e = xcalloc(1, sizeof *e);
	e->base.ops = &ep_ops;
	e->address = xstrdup(address);
	e->base.name = e->address;
	atomic_init(&e->refs, 1);
	pthread_mutex_init(&e->mu, NULL);
	arena_init(&e->info_arena, 1024);
	return e;
}

/* ------------------------------------------------------------------ specs and resolution */

enum spec_kind { SPEC_PLAIN, SPEC_DNS, SPEC_DNSSRV, SPEC_DNSSRVNOA };

typedef struct spec {
	enum spec_kind kind;
	char *name; /* host (DNS) or SRV name */
	char *port; /* DNS only */
	strlist_t addrs;
	int64_t resolved_at; /* mono ms, 0 = never */
	bool used;           /* refresh sweep mark */
} spec_t;

static int spec_parse(const char *raw, spec_t *s, err_t *err)
{
	memset(s, 0, sizeof *s);
	static const struct {
		const char *prefix;
		enum spec_kind kind;
	} prefixes[] = {{"dns+", SPEC_DNS}, {"dnssrv+", SPEC_DNSSRV}, {"dnssrvnoa+", SPEC_DNSSRVNOA}};
	const char *rest = raw;
	s->kind = SPEC_PLAIN;
	for (size_t i = 0; i < ARRAY_LEN(prefixes); i++)
		if (strncmp(raw, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0) {
			s->kind = prefixes[i].kind;
			rest = raw + strlen(prefixes[i].prefix);
		}
	if (s->kind == SPEC_PLAIN && strchr(raw, '+'))
		return err_set(err, ERR_INVALID, "endpoint %s: unknown lookup prefix (want dns+, dnssrv+ or dnssrvnoa+)",
			       raw);
	if (!*rest)
		return err_set(err, ERR_INVALID, "endpoint %s: empty address", raw);
	if (s->kind == SPEC_DNSSRV || s->kind == SPEC_DNSSRVNOA) {
		s->name = xstrdup(rest);
		return 0;
	}
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return err_set(err, ERR_INVALID, "endpoint %s: missing port (want host:port)", raw);
	if (s->kind == SPEC_PLAIN) {
		strlist_push(&s->addrs, rest);
		return 0;
	}
	const char *h = rest;
	size_t hl = (size_t)(colon - rest);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	s->name = xstrndup(h, hl);
	s->port = xstrdup(colon + 1);
	return 0;
}

static void spec_release(spec_t *s)
{
	free(s->name);
	free(s->port);
	strlist_free(&s->addrs);
}

static void push_unique(strlist_t *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return;
	strlist_push(l, s);
}

static void spec_resolve(spec_t *s, const char *raw, int64_t now, int64_t interval)
{
	if (s->kind == SPEC_PLAIN || (s->resolved_at && now - s->resolved_at < interval))
		return;
	strlist_t l = {0};
	err_t err = {0};
	int rc = s->kind == SPEC_DNS ? dnsname_resolve_host(s->name, s->port, &l, &err)
				     : dnsname_resolve_srv(s->name, s->kind == SPEC_DNSSRVNOA, &l, &err);
	s->resolved_at = now;
	if (rc) {
		log_warn("endpoint lookup failed; keeping previous addresses", "endpoint", raw, "err", err.msg);
		strlist_free(&l);
		return;
	}
	strlist_free(&s->addrs);
	s->addrs = l;
}

/* ------------------------------------------------------------------ file SD */

typedef struct sdfile {
	char *path;
	struct timespec mtime;
	int64_t read_at; /* mono ms */
	strlist_t targets;
	bool seen;
} sdfile_t;

static int yerr(err_t *err, const char *path, const yaml_node_t *n, const char *what)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", path, n->start_mark.line + 1, n->start_mark.column + 1,
		       what);
}

/* Parse a file_sd document (JSON or YAML) into targets. */
static int sd_parse(const char *path, strlist_t *targets, err_t *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_errno(err, "open %s", path);
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	int rc = 0;
	if (!yaml_parser_load(&p, &doc)) {
		rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
			     p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		fclose(f);
		return rc;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root)
		goto out; /* empty file: no targets */
	if (root->type != YAML_SEQUENCE_NODE) {
		rc = yerr(err, path, root, "expected a list of target groups");
		goto out;
	}
	for (yaml_node_item_t *it = root->data.sequence.items.start; it < root->data.sequence.items.top; it++) {
		yaml_node_t *g = yaml_document_get_node(&doc, *it);
		if (g->type != YAML_MAPPING_NODE) {
			rc = yerr(err, path, g, "target group must be a mapping with \"targets\"");
			goto out;
		}
		for (yaml_node_pair_t *kv = g->data.mapping.pairs.start; kv < g->data.mapping.pairs.top; kv++) {
			yaml_node_t *k = yaml_document_get_node(&doc, kv->key);
			yaml_node_t *v = yaml_document_get_node(&doc, kv->value);
			if (k->type != YAML_SCALAR_NODE)
				continue;
			const char *key = (const char *)k->data.scalar.value;
			if (strcmp(key, "labels") == 0)
				continue;
			if (strcmp(key, "targets") != 0) {
				rc = yerr(err, path, k, "unknown field in target group (want targets, labels)");
				goto out;
			}
			if (v->type != YAML_SEQUENCE_NODE) {
				rc = yerr(err, path, v, "\"targets\" must be a list of host:port strings");
				goto out;
			}
			for (yaml_node_item_t *t = v->data.sequence.items.start; t < v->data.sequence.items.top; t++) {
				yaml_node_t *tn = yaml_document_get_node(&doc, *t);
				if (tn->type != YAML_SCALAR_NODE || !tn->data.scalar.length) {
					rc = yerr(err, path, tn, "target must be a non-empty host:port string");
					goto out;
				}
				spec_t s;
				const char *raw = (const char *)tn->data.scalar.value;
				if (spec_parse(raw, &s, err)) {
					rc = err_wrap(err, "%s:%zu:%zu", path, tn->start_mark.line + 1,
						      tn->start_mark.column + 1);
					goto out;
				}
				spec_release(&s);
				push_unique(targets, raw);
			}
		}
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

/* ------------------------------------------------------------------ the set */

struct endpoint_set {
	endpoint_set_config_t cfg;
	strlist_t specs, sd_globs;
	char *component;
	pthread_mutex_t mu; /* guards eps, stop */
	VEC(endpoint_t *) eps; /* sorted by address */
	pthread_mutex_t refresh_mu; /* one refresh at a time; guards the caches below */
	hmap_t spec_cache;   /* raw spec -> spec_t* */
	VEC(sdfile_t *) sdfiles;
	atomic_uint_fast64_t rounds;
	pthread_t thread;
	bool started, stop;
	pthread_cond_t cond;
	store_t proxy; /* endpoint_set_proxy */
};

static sdfile_t *sd_find(endpoint_set_t *es, const char *path)
{
	for (size_t i = 0; i < es->sdfiles.n; i++)
		if (strcmp(es->sdfiles.v[i]->path, path) == 0)
			return es->sdfiles.v[i];
	return NULL;
}

static void sdfile_free(sdfile_t *f)
{
	free(f->path);
	strlist_free(&f->targets);
	free(f);
}

/* Re-read SD files: changed mtime or older than the interval. initial: parse errors are returned. */
static int sd_refresh(endpoint_set_t *es, bool initial, err_t *err)
{
	int64_t now = (int64_t)clock_mono_ms();
	for (size_t i = 0; i < es->sdfiles.n; i++)
		es->sdfiles.v[i]->seen = false;
	for (size_t g = 0; g < es->sd_globs.n; g++) {
		glob_t gl;
		int grc = glob(es->sd_globs.v[g], 0, NULL, &gl);
		if (grc == GLOB_NOMATCH) {
			globfree(&gl);
			continue;
		}
		if (grc) {
			globfree(&gl);
			return err_set(err, ERR_IO, "endpoint.sd-files %s: glob failed", es->sd_globs.v[g]);
		}
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			const char *path = gl.gl_pathv[i];
			struct stat st;
			if (stat(path, &st) != 0)
				continue;
			sdfile_t *f = sd_find(es, path);
			if (!f) {
				f = xcalloc(1, sizeof *f);
				f->path = xstrdup(path);
				VEC_PUSH(&es->sdfiles, f);
			}
			f->seen = true;
			if (f->read_at && f->mtime.tv_sec == st.st_mtim.tv_sec && f->mtime.tv_nsec == st.st_mtim.tv_nsec &&
			    now - f->read_at < es->cfg.sd_interval_ms)
				continue;
			strlist_t t = {0};
			err_t e = {0};
			if (sd_parse(path, &t, &e)) {
				strlist_free(&t);
				if (initial) {
					globfree(&gl);
					*err = e;
					return e.code;
				}
				log_error("endpoint SD file unusable; keeping its previous targets", "err", e.msg);
				f->read_at = now;
				f->mtime = st.st_mtim;
				continue;
			}
			if (f->read_at)
				log_info("endpoint SD file reloaded", "file", path, "targets", "changed");
			strlist_free(&f->targets);
			f->targets = t;
			f->read_at = now;
			f->mtime = st.st_mtim;
		}
		globfree(&gl);
	}
	size_t k = 0;
	for (size_t i = 0; i < es->sdfiles.n; i++) {
		if (es->sdfiles.v[i]->seen)
			es->sdfiles.v[k++] = es->sdfiles.v[i];
		else
			sdfile_free(es->sdfiles.v[i]);
	}
	es->sdfiles.n = k;
	return 0;
}

static spec_t *spec_get(endpoint_set_t *es, const char *raw)
{
	spec_t *s = hmap_get(&es->spec_cache, str_c(raw));
	if (s)
		return s;
	s = xcalloc(1, sizeof *s);
	err_t err = {0};
	if (spec_parse(raw, s, &err)) { /* validated before; cannot happen */
		free(s);
		return NULL;
	}
	hmap_put(&es->spec_cache, str_c(xstrdup(raw)), s);
	return s;
}

static int addr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ep_cmp(const void *a, const void *b)
{
	return strcmp((*(endpoint_t *const *)a)->address, (*(endpoint_t *const *)b)->address);
}

static endpoint_t *ep_find(endpoint_t **v, size_t n, const char *addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(v[mid]->address, addr);
		if (c == 0)
			return v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void use_spec(endpoint_set_t *es, const char *raw, strlist_t *want, int64_t now)
{
	spec_t *s = spec_get(es, raw);
	if (!s)
		return;
	s->used = true;
	spec_resolve(s, raw, now, es->cfg.dns_interval_ms);
	for (size_t i = 0; i < s->addrs.n; i++)
		push_unique(want, s->addrs.v[i]);
}

static void info_one(endpoint_set_t *es, endpoint_t *e)
{
	pthread_mutex_lock(&e->mu);
	store_t *inner = e->inner;
	pthread_mutex_unlock(&e->mu);
	err_t err = {0};
	if (!inner) {
		inner = es->cfg.dial(e->address, es->cfg.dial_arg, &err);
		if (inner) {
			pthread_mutex_lock(&e->mu);
			e->inner = inner;
			pthread_mutex_unlock(&e->mu);
		}
	}
	arena_t a;
	arena_init(&a, 1024);
	store_info_t info;
	int rc = inner ? store_info(inner, &a, &info, &err) : err.code ? err.code : ERR_UNAVAILABLE;
	pthread_mutex_lock(&e->mu);
	bool was_ok = e->have_info && !e->last_error;
	e->last_check_ms = clock_now_ms();
	free(e->last_error);
	e->last_error = NULL;
	if (rc < 0) {
		e->last_error = xstrdup(err.msg[0] ? err.msg : err_code_name(rc));
	} else {
		arena_reset(&e->info_arena);
		copy_info(&e->info_arena, &info, &e->info);
		e->have_info = true;
	}
	pthread_mutex_unlock(&e->mu);
	arena_release(&a);
	if (rc < 0 && (was_ok || !e->have_info))
		log_warn("endpoint Info failed", "address", e->address, "err", err.msg);
	else if (rc == 0 && !was_ok)
		log_info("endpoint healthy", "address", e->address);
}

void endpoint_set_refresh(endpoint_set_t *es)
{
	pthread_mutex_lock(&es->refresh_mu);
	int64_t now = (int64_t)clock_mono_ms();
	err_t err = {0};
	sd_refresh(es, false, &err);
	strlist_t want = {0};
	for (size_t i = 0; i < es->specs.n; i++)
		use_spec(es, es->specs.v[i], &want, now);
	for (size_t i = 0; i < es->sdfiles.n; i++)
		for (size_t j = 0; j < es->sdfiles.v[i]->targets.n; j++)
			use_spec(es, es->sdfiles.v[i]->targets.v[j], &want, now);
	if (want.n) /* qsort(NULL, 0) is undefined */
		qsort(want.v, want.n, sizeof *want.v, addr_cmp);

	/* Endpoints to redial: their new stores are made before the swap, so no query finds one
	 * without a store. */
	strlist_t redial = {0};
	pthread_mutex_lock(&es->mu);
	for (size_t i = 0; i < es->eps.n; i++)
		if (es->eps.v[i]->redial)
			strlist_push(&redial, es->eps.v[i]->address);
	pthread_mutex_unlock(&es->mu);
	store_t **fresh = xcalloc(redial.n + 1, sizeof *fresh);
	for (size_t i = 0; i < redial.n; i++) {
		err_t derr = {0};
		if (!(fresh[i] = es->cfg.dial(redial.v[i], es->cfg.dial_arg, &derr)))
			log_warn("redialling endpoint failed; keeping its connection until the next round",
			         "address", redial.v[i], "err", derr.msg);
	}

	/* Reconcile: keep existing endpoints, add new ones, drop vanished ones, replace redialled ones
	 * (the old endpoint lives on in the snapshots of the queries that took it). */
	pthread_mutex_lock(&es->mu);
	VEC(endpoint_t *) next = {0};
	VEC(endpoint_t *) gone = {0};
	for (size_t i = 0; i < es->eps.n; i++)
		es->eps.v[i]->keep = false;
	for (size_t i = 0; i < want.n; i++) {
		endpoint_t *e = ep_find(es->eps.v, es->eps.n, want.v[i]);
		size_t r = 0;
		while (e && e->redial && r < redial.n && (strcmp(redial.v[r], e->address) || !fresh[r]))
			r++;
		if (e && e->redial && r < redial.n) {
			endpoint_t *old = e;
			e = ep_new(old->address);
			e->inner = fresh[r];
			fresh[r] = NULL;
			pthread_mutex_lock(&old->mu);
			if (old->have_info) { /* selection goes on from the last Info until the next */
				copy_info(&e->info_arena, &old->info, &e->info);
				e->have_info = true;
			}
			e->last_check_ms = old->last_check_ms;
			pthread_mutex_unlock(&old->mu);
			log_info("replacing endpoint connection (client config changed)", "address",
			         e->address);
			old->keep = true; /* handled here: its store goes with the last query using it */
			VEC_PUSH(&gone, old);
		} else if (e)
			e->keep = true;
		else {
			e = ep_new(want.v[i]);
			log_info("adding endpoint", "address", e->address);
		}
		VEC_PUSH(&next, e);
	}
	for (size_t i = 0; i < es->eps.n; i++)
		if (!es->eps.v[i]->keep) {
			es->eps.v[i]->redial = false; /* vanished: logged as removed */
			VEC_PUSH(&gone, es->eps.v[i]);
		}
	VEC_FREE(&es->eps);
	es->eps.v = next.v, es->eps.n = next.n, es->eps.cap = next.cap;
	if (es->eps.n)
		qsort(es->eps.v, es->eps.n, sizeof *es->eps.v, ep_cmp);
	/* Our own references for the Info round (the set may change under a concurrent free). */
	endpoint_t **round = xcalloc(es->eps.n ? es->eps.n : 1, sizeof *round);
	size_t nround = es->eps.n;
	for (size_t i = 0; i < nround; i++) {
		round[i] = es->eps.v[i];
		ep_ref(round[i]);
	}
	pthread_mutex_unlock(&es->mu);
	for (size_t i = 0; i < gone.n; i++) {
		if (!gone.v[i]->redial)
			log_info("removing endpoint", "address", gone.v[i]->address);
		ep_unref(gone.v[i]);
	}
	VEC_FREE(&gone);
	strlist_free(&want);
	for (size_t i = 0; i < redial.n; i++)
		if (fresh[i])
			store_free(fresh[i]);
	free(fresh);
	strlist_free(&redial);

	/* Drop cached specs no longer referenced. */
	VEC(char *) unused = {0};
	hmap_entry_t *he;
	for (size_t it = 0; hmap_next(&es->spec_cache, &it, &he);) {
		spec_t *s = he->val;
		if (!s->used)
			VEC_PUSH(&unused, (char *)he->key.p);
		s->used = false;
	}
	for (size_t i = 0; i < unused.n; i++) {
		spec_t *s = hmap_get(&es->spec_cache, str_c(unused.v[i]));
		hmap_del(&es->spec_cache, str_c(unused.v[i]));
		spec_release(s);
		free(s);
		free(unused.v[i]);
	}
	VEC_FREE(&unused);

	for (size_t i = 0; i < nround; i++) {
		info_one(es, round[i]);
		ep_unref(round[i]);
	}
	free(round);
	atomic_fetch_add(&es->rounds, 1);
	pthread_mutex_unlock(&es->refresh_mu);
}

size_t endpoint_set_redial(endpoint_set_t *es, bool (*pred)(const char *address, void *arg), void *arg)
{
	size_t n = 0;
	pthread_mutex_lock(&es->mu);
	for (size_t i = 0; i < es->eps.n; i++)
		if (pred(es->eps.v[i]->address, arg)) {
			es->eps.v[i]->redial = true;
			n++;
		}
	pthread_mutex_unlock(&es->mu);
	return n;
}

uint64_t endpoint_set_rounds(endpoint_set_t *es)
{
	return atomic_load(&es->rounds);
}

static void *refresh_thread(void *arg)
{
	endpoint_set_t *es = arg;
	pthread_mutex_lock(&es->mu);
	while (!es->stop) {
		pthread_mutex_unlock(&es->mu);
		endpoint_set_refresh(es);
		pthread_mutex_lock(&es->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + es->cfg.info_interval_ms % 1000 * 1000000;
		ts.tv_sec += es->cfg.info_interval_ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		while (!es->stop && pthread_cond_timedwait(&es->cond, &es->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&es->mu);
	return NULL;
}

int endpoint_set_start(endpoint_set_t *es, err_t *err)
{
	int rc = pthread_create(&es->thread, NULL, refresh_thread, es);
	if (rc)
		return err_set(err, ERR_INTERNAL, "endpoint refresh thread: %s", strerror(rc));
	es->started = true;
	return 0;
}

/* ------------------------------------------------------------------ snapshots */

typedef struct snap {
	proxy_store_t *p;
	endpoint_t **eps;
	size_t n;
} snap_t;

static void snap_release(void *arg)
{
	snap_t *s = arg;
	proxy_store_free(s->p);
	for (size_t i = 0; i < s->n; i++)
		ep_unref(s->eps[i]);
}

static bool filters_match(const char *addr, const matcher_t *const *sets, const size_t *nsets, size_t nfilters)
{
	if (!nfilters)
		return true;
	label_t l = {STR("__address__"), str_c(addr)};
	labels_t ls = {&l, 1};
	for (size_t i = 0; i < nfilters; i++) {
		bool all = true;
		for (size_t j = 0; j < nsets[i] && all; j++)
			all = matcher_matches_labels(&sets[i][j], &ls);
		if (all)
			return true;
	}
	return false;
}

store_t *endpoint_set_store(endpoint_set_t *es, arena_t *a, const matcher_t *const *sets, const size_t *nsets,
			    size_t nfilters)
{
	snap_t *s = ARENA_NEW(a, snap_t);
	s->p = proxy_store_new("proxy");
	pthread_mutex_lock(&es->mu);
	s->eps = ARENA_NEW_ARRAY(a, endpoint_t *, es->eps.n ? es->eps.n : 1);
	for (size_t i = 0; i < es->eps.n; i++) {
		endpoint_t *e = es->eps.v[i];
		if (!filters_match(e->address, sets, nsets, nfilters))
			continue;
		ep_ref(e);
		s->eps[s->n++] = e;
		proxy_store_add(s->p, &e->base);
	}
	pthread_mutex_unlock(&es->mu);
	arena_on_release(a, snap_release, s);
	return proxy_store_base(s->p);
}

static int px_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	endpoint_set_t *es = (endpoint_set_t *)((char *)base - offsetof(endpoint_set_t, proxy));
	return store_series(endpoint_set_store(es, a, NULL, NULL, 0), a, req, out, err);
}

static int px_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	endpoint_set_t *es = (endpoint_set_t *)((char *)base - offsetof(endpoint_set_t, proxy));
	return store_label_names(endpoint_set_store(es, a, NULL, NULL, 0), a, req, out, err);
}

static int px_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	endpoint_set_t *es = (endpoint_set_t *)((char *)base - offsetof(endpoint_set_t, proxy));
	return store_label_values(endpoint_set_store(es, a, NULL, NULL, 0), a, req, out, err);
}

static int px_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	endpoint_set_t *es = (endpoint_set_t *)((char *)base - offsetof(endpoint_set_t, proxy));
	int rc = store_info(endpoint_set_store(es, a, NULL, NULL, 0), a, out, err);
	if (rc == 0 && out->mint > out->maxt) { /* no endpoints: an empty range */
		out->mint = INT64_MAX;
		out->maxt = INT64_MIN;
	}
	return rc;
}

static void px_free(store_t *base)
{
	(void)base; /* owned by the set */
}

static const struct store_ops px_ops = {
	.series = px_series,
	.label_names = px_label_names,
	.label_values = px_label_values,
	.info = px_info,
	.free = px_free,
};

store_t *endpoint_set_proxy(endpoint_set_t *es)
{
	return &es->proxy;
}

/* The component type the endpoint's last good Info named, if it is one Thanos knows; else the set's
 * fallback (Thanos lists such endpoints as "unknown-store-api"). Caller holds e->mu. */
static const char *status_component(const endpoint_set_t *es, const endpoint_t *e)
{
	static const char *const known[] = {"query", "rule", "sidecar", "store", "receive", "debug", "parquet-gateway"};
	const char *t = e->have_info ? e->info.component_type : NULL;
	for (size_t i = 0; t && i < ARRAY_LEN(known); i++)
		if (strcmp(t, known[i]) == 0)
			return known[i];
	return es->component;
}

size_t endpoint_set_status(endpoint_set_t *es, arena_t *a, endpoint_status_t **out)
{
	pthread_mutex_lock(&es->mu);
	endpoint_status_t *v = ARENA_NEW_ARRAY(a, endpoint_status_t, es->eps.n ? es->eps.n : 1);
	size_t n = es->eps.n;
	for (size_t i = 0; i < n; i++) {
		endpoint_t *e = es->eps.v[i];
		pthread_mutex_lock(&e->mu);
		v[i].address = arena_strdup(a, e->address);
		v[i].component = status_component(es, e);
		v[i].last_check_ms = e->last_check_ms;
		v[i].last_error = e->last_error ? arena_strdup(a, e->last_error) : NULL;
		if (e->have_info) {
			store_info_t c;
			copy_info(a, &e->info, &c);
			v[i].label_sets = c.label_sets;
			v[i].nlabel_sets = c.nlabel_sets;
			v[i].mint = c.mint;
			v[i].maxt = c.maxt;
		} else {
			v[i].mint = INT64_MIN;
			v[i].maxt = INT64_MAX;
		}
		pthread_mutex_unlock(&e->mu);
	}
	pthread_mutex_unlock(&es->mu);
	*out = v;
	return n;
}

/* ------------------------------------------------------------------ lifecycle */

int endpoint_set_set_specs(endpoint_set_t *es, const char *const *specs, size_t n, err_t *err)
{
	for (size_t i = 0; i < n; i++) {
		spec_t sp;
		if (spec_parse(specs[i], &sp, err))
			return err->code;
		spec_release(&sp);
	}
	strlist_t l = {0};
	for (size_t i = 0; i < n; i++)
		strlist_push(&l, specs[i]);
	pthread_mutex_lock(&es->refresh_mu);
	strlist_free(&es->specs);
	es->specs = l;
	pthread_mutex_unlock(&es->refresh_mu);
	return 0;
}


int endpoint_set_new(endpoint_set_t **out, const endpoint_set_config_t *cfg, err_t *err)
{
	BUG_ON(!cfg->dial);
	endpoint_set_t *es = xcalloc(1, sizeof *es);
	es->cfg = *cfg;
	es->cfg.specs = NULL;
	es->cfg.sd_files = NULL;
	if (!es->cfg.info_interval_ms)
		es->cfg.info_interval_ms = ENDPOINT_INFO_INTERVAL_MS;
	if (!es->cfg.dns_interval_ms)
		es->cfg.dns_interval_ms = ENDPOINT_DNS_INTERVAL_MS;
	if (!es->cfg.sd_interval_ms)
		es->cfg.sd_interval_ms = ENDPOINT_SD_INTERVAL_MS;
	es->component = xstrdup(cfg->component ? cfg->component : "unknown-store-api");
	pthread_mutex_init(&es->mu, NULL);
	pthread_mutex_init(&es->refresh_mu, NULL);
	pthread_cond_init(&es->cond, NULL);
	hmap_init(&es->spec_cache, 16);
	atomic_init(&es->rounds, 0);
	es->proxy.ops = &px_ops;
	es->proxy.name = "proxy";
	*out = es;
	for (size_t i = 0; i < cfg->nspecs; i++) {
		spec_t s;
		if (spec_parse(cfg->specs[i], &s, err)) {
			endpoint_set_free(es);
			*out = NULL;
			return err->code;
		}
		spec_release(&s);
		strlist_push(&es->specs, cfg->specs[i]);
	}
	for (size_t i = 0; i < cfg->nsd_files; i++)
		strlist_push(&es->sd_globs, cfg->sd_files[i]);
	int rc = sd_refresh(es, true, err);
	if (rc) {
		endpoint_set_free(es);
		*out = NULL;
		return rc;
	}
	return 0;
}

void endpoint_set_free(endpoint_set_t *es)
{
	if (!es)
		return;
	if (es->started) {
		pthread_mutex_lock(&es->mu);
		es->stop = true;
		pthread_cond_broadcast(&es->cond);
		pthread_mutex_unlock(&es->mu);
		pthread_join(es->thread, NULL);
	}
	for (size_t i = 0; i < es->eps.n; i++)
		ep_unref(es->eps.v[i]);
	VEC_FREE(&es->eps);
	hmap_entry_t *he;
	for (size_t it = 0; hmap_next(&es->spec_cache, &it, &he);) {
		spec_release(he->val);
		free(he->val);
		free((char *)he->key.p);
	}
	hmap_release(&es->spec_cache);
	for (size_t i = 0; i < es->sdfiles.n; i++)
		sdfile_free(es->sdfiles.v[i]);
	VEC_FREE(&es->sdfiles);
	strlist_free(&es->specs);
	strlist_free(&es->sd_globs);
	free(es->component);
	pthread_cond_destroy(&es->cond);
	pthread_mutex_destroy(&es->mu);
	pthread_mutex_destroy(&es->refresh_mu);
	free(es);
}
