/*
 * rewrite.c — block rewrite with series deletions (see rewrite.h).
 */
#include "compact/rewrite.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/vec.h"
#include "block/marker.h"
#include "block/shipper.h"
#include "compact/blockio.h"
#include "model/selector.h"
#include "tsdb/blockmerge.h"

/* ---- config ---- */

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int at(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *detail)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", what, n ? n->start_mark.line + 1 : 1,
	               n ? n->start_mark.column + 1 : 1, msg, detail ? ": " : "", detail ? detail : "");
}

static int int_of(yaml_node_t *n, int64_t *out)
{
	const char *s = scalar(n);
	char *end;
	if (!s || !*s)
		return -1;
	long long v = strtoll(s, &end, 10);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_intervals(yaml_document_t *doc, yaml_node_t *n, const char *what, rewrite_request_t *r,
                           err_t *err)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return at(err, what, n, "intervals must be a list of {mint, maxt}", NULL);
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *m = yaml_document_get_node(doc, *it);
		if (m->type != YAML_MAPPING_NODE)
			return at(err, what, m, "an interval must be a mapping with mint and maxt", NULL);
		tomb_interval_t iv = {0, INT64_MIN, INT64_MAX};
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key),
			            *v = yaml_document_get_node(doc, p->value);
			const char *ks = scalar(k);
			int64_t x;
			if (ks && (!strcmp(ks, "mint") || !strcmp(ks, "maxt"))) {
				if (int_of(v, &x))
					return at(err, what, v,
					          "interval bounds are integers (ms since epoch)", scalar(v));
				*(!strcmp(ks, "mint") ? &iv.mint : &iv.maxt) = x;
			} else {
				return at(err, what, k, "unknown interval key", ks);
			}
		}
		if (iv.mint > iv.maxt)
			return at(err, what, m, "interval mint is after maxt", NULL);
		r->iv = xreallocarray(r->iv, r->niv + 1, sizeof *r->iv);
		r->iv[r->niv++] = iv;
	}
	return 0;
}

static int parse_request(yaml_document_t *doc, yaml_node_t *n, const char *what, rewrite_request_t *r,
                         err_t *err)
{
	if (n->type != YAML_MAPPING_NODE)
		return at(err, what, n, "a deletion request must be a mapping", NULL);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key),
		            *v = yaml_document_get_node(doc, p->value);
		const char *ks = scalar(k);
		if (ks && !strcmp(ks, "matchers") && scalar(v)) {
			err_t e2 = {0};
			if (selector_parse(str_c(scalar(v)), &r->ms, &r->nms, &e2))
				return at(err, what, v, "bad matchers", e2.msg);
			r->matchers_text = xstrdup(scalar(v));
		} else if (ks && !strcmp(ks, "intervals")) {
			int rc = parse_intervals(doc, v, what, r, err);
			if (rc)
				return rc;
		} else if (ks && !strcmp(ks, "request_id") && scalar(v)) {
			r->request_id = xstrdup(scalar(v));
		} else {
			return at(err, what, k, "unknown or malformed key", ks);
		}
	}
	if (!r->ms)
		return at(err, what, n, "a deletion request needs matchers", NULL);
	return 0;
}

int rewrite_config_parse(const char *yaml, size_t len, const char *what, rewrite_config_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("rewrite: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
		                 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_SEQUENCE_NODE) {
		rc = at(err, what, root, "expected a list of deletion requests", NULL);
	} else {
		size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
		out->v = xcalloc(n + 1, sizeof *out->v);
		for (size_t i = 0; i < n && !rc; i++) {
			rc = parse_request(&doc,
			                   yaml_document_get_node(&doc, root->data.sequence.items.start[i]),
			                   what, &out->v[i], err);
			out->n = i + 1;
		}
		if (!rc && n == 0)
			rc = at(err, what, root, "no deletion requests", NULL);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	if (rc)
		rewrite_config_release(out);
	return rc;
}

void rewrite_config_release(rewrite_config_t *c)
{
	for (size_t i = 0; i < c->n; i++) {
		rewrite_request_t *r = &c->v[i];
		free(r->matchers_text);
		selector_free(r->ms, r->nms);
		free(r->iv);
		free(r->request_id);
	}
	free(c->v);
	memset(c, 0, sizeof *c);
}

/* ---- the rewrite ---- */

typedef struct del_ctx {
	const rewrite_config_t *cfg;
	VEC(tomb_interval_t) iv;
	FILE *out;
	uint64_t matched;
	buf_t lb;
} del_ctx_t;

static int iv_cmp(const void *a, const void *b)
{
	const tomb_interval_t *x = a, *y = b;
	return x->mint < y->mint ? -1 : x->mint > y->mint;
}

static size_t deletions(void *arg, const labels_t *ls, const tomb_interval_t **out)
{
	del_ctx_t *d = arg;
	VEC_CLEAR(&d->iv);
	for (size_t i = 0; i < d->cfg->n; i++) {
		const rewrite_request_t *r = &d->cfg->v[i];
		bool all = true;
		for (size_t k = 0; k < r->nms && all; k++)
			all = matcher_matches_labels(&r->ms[k], ls);
		if (!all)
			continue;
		if (!r->niv)
			VEC_PUSH(&d->iv, ((tomb_interval_t){0, INT64_MIN, INT64_MAX}));
		for (size_t k = 0; k < r->niv; k++)
			VEC_PUSH(&d->iv, r->iv[k]);
	}
	if (!d->iv.n)
		return 0;
	qsort(d->iv.v, d->iv.n, sizeof *d->iv.v, iv_cmp);
	d->matched++;
	if (d->out) {
		buf_reset(&d->lb);
		labels_format_full(&d->lb, ls);
		fprintf(d->out, "series %s: deleting", d->lb.p);
		for (size_t k = 0; k < d->iv.n; k++) {
			if (d->iv.v[k].mint == INT64_MIN && d->iv.v[k].maxt == INT64_MAX)
				fprintf(d->out, " all samples");
			else
				fprintf(d->out, " [%" PRId64 ", %" PRId64 "]", d->iv.v[k].mint,
				        d->iv.v[k].maxt);
		}
		fputc('\n', d->out);
	}
	*out = d->iv.v;
	return d->iv.n;
}

/* thanos.rewrites with one more entry: {sources: [old], deletions_applied: [...]}. */
static char *append_rewrite(const char *old_json, const char *ulid, const rewrite_config_t *cfg)
{
	buf_t b = BUF_INIT;
	if (old_json && old_json[0] == '[' && strlen(old_json) > 2) {
		buf_append(&b, old_json, strlen(old_json) - 1); /* without the closing ']' */
		buf_putc(&b, ',');
	} else {
		buf_putc(&b, '[');
	}
	buf_printf(&b, "{\"sources\":[\"%s\"],\"deletions_applied\":[", ulid);
	for (size_t i = 0; i < cfg->n; i++) {
		const rewrite_request_t *r = &cfg->v[i];
		buf_puts(&b, i ? ",{\"matchers\":" : "{\"matchers\":");
		buf_json_str(&b, str_c(r->matchers_text));
		if (r->niv) {
			buf_puts(&b, ",\"intervals\":[");
			for (size_t k = 0; k < r->niv; k++)
				buf_printf(&b, "%s{\"mint\":%" PRId64 ",\"maxt\":%" PRId64 "}", k ? "," : "",
				           r->iv[k].mint, r->iv[k].maxt);
			buf_putc(&b, ']');
		}
		if (r->request_id) {
			buf_puts(&b, ",\"request_id\":");
			buf_json_str(&b, str_c(r->request_id));
		}
		buf_putc(&b, '}');
	}
	buf_puts(&b, "]}]");
	size_t n;
	return buf_detach(&b, &n);
}

int rewrite_block(bucket_t *b, const char *ulid, const rewrite_config_t *cfg, const rewrite_opts_t *o,
                  rewrite_result_t *res, err_t *err)
{
	memset(res, 0, sizeof *res);
	char dir[4096], in_dir[4200], out_dir[4200];
	snprintf(dir, sizeof dir, "%s/%s.rewrite", o->tmp_dir, ulid);
	snprintf(in_dir, sizeof in_dir, "%s/%s", dir, ulid);
	snprintf(out_dir, sizeof out_dir, "%s/out", dir);
	int rc = fsutil_rm_rf(dir, err);
	if (!rc)
		rc = blockio_download(b, ulid, in_dir, err);
	block_t *in = NULL;
	if (!rc)
		rc = block_open(&in, in_dir, err);
	if (rc) {
		fsutil_rm_rf(dir, NULL);
		return err_wrap(err, "rewrite %s", ulid);
	}
	block_meta_t m;
	meta_copy(&m, &in->meta);
	char *rw = append_rewrite(m.rewrites, ulid, cfg);
	free(m.rewrites);
	m.rewrites = rw;
	m.has_thanos = true;
	if (m.level < 1)
		m.level = 1;
	if (!m.nsources)
		meta_add_source(&m, ulid);
	del_ctx_t d = {.cfg = cfg, .out = o->out};
	buf_init(&d.lb);
	blockmerge_opts_t bo = {.deletions = deletions,
	                        .deletions_arg = &d,
	                        .writer = {.meta_mint = in->meta.mint, .meta_maxt = in->meta.maxt}};
	blockmerge_result_t mr;
	rc = blockmerge_run(&in, 1, out_dir, &m, &bo, &mr, err);
	res->series_matched = d.matched;
	res->series_before = in->meta.num_series;
	res->samples_before = in->meta.num_samples;
	res->series_after = mr.series;
	res->samples_after = mr.samples;
	block_close(in);
	VEC_FREE(&d.iv);
	buf_release(&d.lb);
	meta_release(&m);
	if (o->out && !rc)
		fprintf(o->out,
		        "block %s: %" PRIu64 " series matched; series %" PRIu64 " -> %" PRIu64
		        ", samples %" PRIu64 " -> %" PRIu64 "%s\n",
		        ulid, res->series_matched, res->series_before, res->series_after, res->samples_before,
		        res->samples_after, o->dry_run ? " (dry run: nothing changed in the bucket)" : "");
	if (!rc && !o->dry_run && d.matched == 0 && o->out)
		fprintf(o->out, "block %s: nothing to delete, not rewritten\n", ulid);
	if (!rc && !o->dry_run && d.matched > 0) {
		if (mr.empty) {
			/* Every sample deleted: the block simply goes. */
			if (o->mark_old)
				rc = marker_write(b, ulid, MARKER_DELETION, NULL,
				                  "rewrite deleted every series", NULL, err);
		} else {
			const char *slash = strrchr(mr.dir, '/');
			snprintf(res->new_ulid, sizeof res->new_ulid, "%s", slash + 1);
			block_upload_opts_t uo = {.keep_source = true};
			rc = blockmerge_verify(mr.dir, err);
			if (!rc)
				rc = shipper_upload_block(b, out_dir, res->new_ulid, &uo, err);
			if (!rc && o->mark_old) {
				char det[80];
				snprintf(det, sizeof det, "rewritten into %s", res->new_ulid);
				rc = marker_write(b, ulid, MARKER_DELETION, NULL, det, NULL, err);
			}
			if (!rc && o->out)
				fprintf(o->out, "block %s: rewritten into %s%s\n", ulid, res->new_ulid,
				        o->mark_old ? ", the old block marked for deletion" : "");
		}
	}
	fsutil_rm_rf(dir, NULL);
	return rc ? err_wrap(err, "rewrite %s", ulid) : 0;
}
