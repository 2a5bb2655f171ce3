/*
 * tools_block.c — `strata tools block {dump,inspect,write}`: look at and make TSDB blocks.
 *
 * dump prints every sample as `promtool tsdb dump` does ({labels} value ts_ms, value in Go %g),
 * series merged across the blocks of a directory (overlapping blocks deduplicated by timestamp);
 * downsampled blocks (aggregate chunks) follow, each after a `# block <dir> resolution <r>` line, one
 * line per aggregate sample: {labels} <count|sum|min|max|counter> value ts_ms;
 * inspect prints meta, counts and label cardinality; write turns OpenMetrics text (timestamps in
 * seconds, `# EOF`) into blocks like `promtool tsdb create-blocks-from openmetrics`: one block per
 * --max-block-duration window, chunks cut with a chunk range of twice that (as promtool does).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "base/fmt.h"
#include "base/hmap.h"
#include "base/vec.h"
#include "cmd/cmd.h"
#include "model/selector.h"
#include "promql/merge.h"
#include "tsdb/aggr.h"
#include "tsdb/block.h"



static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Block directories under dir (or dir itself when it holds a meta.json), sorted by name. */
static int list_blocks(const char *dir, strlist_t *out)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/meta.json", dir);
	if (stat(p, &st) == 0) {
		strlist_push(out, dir);
		return 0;
	}
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "strata tools block: open %s: %s\n", dir, strerror(errno));
		return 1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!ulid_valid(de->d_name))
			continue;
		snprintf(p, sizeof p, "%s/%s/meta.json", dir, de->d_name);
		if (stat(p, &st) != 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		strlist_push(out, p);
	}
	closedir(d);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(char *), cmp_cstr);
	return 0;
}

/* The aggregate samples of a downsampled block's series matching ms within [mint, maxt]. */
static int dump_aggregates(block_t *b, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt, buf_t *out,
			   err_t *err)
{
	arena_t a;
	arena_init(&a, 0);
	series_set_t *ss;
	int rc = b->q.ops->select(&b->q, &a, ms, nms, mint, maxt, NULL, &ss, err);
	if (rc) {
		arena_release(&a);
		return rc;
	}
	buf_printf(out, "# block %s resolution ", b->dir);
	duration_format(out, b->meta.resolution);
	buf_putc(out, '\n');
	buf_t lb = BUF_INIT;
	while (!rc && (rc = series_set_next(ss, err)) > 0) {
		rc = 0;
		buf_reset(&lb);
		labels_format_full(&lb, series_set_labels(ss));
		const chunk_t *chks = NULL;
		int nc = ss->ops->chunks ? ss->ops->chunks(ss, &chks) : -1;
		for (int k = 0; k < nc && !rc; k++) {
			chunk_t subs[AGGR_N];
			if (chks[k].enc != CHUNK_ENC_AGGR) {
				rc = err_set(err, ERR_CORRUPT, "block %s: series %s: chunk %d has encoding %u, not aggregates", b->dir,
					     lb.p, k, chks[k].enc);
				break;
			}
			if ((rc = aggr_chunk_split(chks[k].data, chks[k].len, subs, err)))
				break;
			for (int g = 0; g < AGGR_N && !rc; g++) {
				if (!subs[g].len)
					continue;
				xor_dec_t d;
				int64_t t;
				double v;
				if ((rc = xor_dec_init(&d, subs[g].data, subs[g].len, err)))
					break;
				while ((rc = xor_dec_next(&d, &t, &v, err)) == 1) {
					if (t < mint || t > maxt)
						continue;
					buf_printf(out, "%s %s ", lb.p, aggr_type_name((aggr_type_t)g));
					buf_put_float(out, v, 'g');
					buf_putc(out, ' ');
					buf_put_i64(out, t);
					buf_putc(out, '\n');
				}
			}
		}
		if (out->n > (1 << 20)) {
			fwrite(out->p, 1, out->n, stdout);
			buf_reset(out);
		}
	}
	buf_release(&lb);
	series_set_close(ss);
	arena_release(&a);
	return rc < 0 ? rc : 0;
}

static int dump(int argc, char **argv)
{
	static char *match;
	static int64_t mint, maxt;
	flag_def_t defs[] = {
		{"match", FLAG_STRING, &match, "{__name__=~\"(?s:.*)\"}", "Series selector."},
		{"min-time", FLAG_INT, &mint, "-9223372036854775808", "Minimum timestamp to dump (ms)."},
		{"max-time", FLAG_INT, &maxt, "9223372036854775807", "Maximum timestamp to dump (ms)."},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata tools block dump", "Dump samples of a block or a directory of blocks.", defs,
				 ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (res.npos != 1) {
		fprintf(stderr, "strata tools block dump: expected one <dir> argument\n");
		free(res.pos);
		return 2;
	}
	const char *dir = res.pos[0];
	free(res.pos);
	matcher_t *ms;
	size_t nms;
	err_t err = {0};
	if (selector_parse(str_c(match), &ms, &nms, &err)) {
		fprintf(stderr, "strata tools block dump: --match: %s\n", err.msg);
		return 2;
	}
	strlist_t blocks = {0};
	if (list_blocks(dir, &blocks)) {
		selector_free(ms, nms);
		return 1;
	}
	/* Like promtool over a data directory: one querier over every block, series with the same labels
	 * merged across (overlapping) blocks in time order, identical timestamps taken once. */
	block_t **bl = xcalloc(blocks.n ? blocks.n : 1, sizeof *bl);
	queryable_t **qs = xcalloc(blocks.n ? blocks.n : 1, sizeof *qs);
	size_t nb = 0;
	rc = 0;
	block_t **ds = xcalloc(blocks.n ? blocks.n : 1, sizeof *ds); /* downsampled ones */
	size_t nds = 0;
	for (size_t bi = 0; bi < blocks.n; bi++) {
		block_t *b;
		if (block_open(&b, blocks.v[bi], &err)) {
			fprintf(stderr, "strata tools block dump: %s\n", err.msg);
			rc = 1;
			break;
		}
		if (b->meta.resolution) {
			ds[nds++] = b;
			continue;
		}
		bl[nb] = b;
		qs[nb] = &bl[nb]->q;
		nb++;
	}
	buf_t out = BUF_INIT;
	int64_t ts[256];
	double vs[256];
	promql_merge_t *m = rc ? NULL : promql_merge_new(qs, nb);
	arena_t a;
	arena_init(&a, 0);
	series_set_t *ss = NULL;
	if (m && promql_merge_queryable(m)->ops->select(promql_merge_queryable(m), &a, ms, nms, mint, maxt, NULL, &ss,
							  &err)) {
		fprintf(stderr, "strata tools block dump: %s\n", err.msg);
		rc = 1;
		ss = NULL;
	}
	if (ss) {
		int k;
		buf_t lb = BUF_INIT;
		while ((k = series_set_next(ss, &err)) > 0) {
			buf_reset(&lb);
			labels_format_full(&lb, series_set_labels(ss));
			sample_iter_t *it = series_set_samples(ss);
			int n;
			while ((n = sample_iter_next_batch(it, ts, vs, 256, &err)) > 0) {
				for (int i = 0; i < n; i++) {
					buf_append(&out, lb.p, lb.n);
					buf_putc(&out, ' ');
					buf_put_float(&out, vs[i], 'g'); /* Go %g, as promtool tsdb dump */
					buf_putc(&out, ' ');
					buf_put_i64(&out, ts[i]);
					buf_putc(&out, '\n');
				}
				if (out.n > (1 << 20)) {
					fwrite(out.p, 1, out.n, stdout);
					buf_reset(&out);
				}
			}
			if (n < 0) {
				k = n;
				break;
			}
		}
		buf_release(&lb);
		if (k < 0) {
			fprintf(stderr, "strata tools block dump: %s\n", err.msg);
			rc = 1;
		}
		series_set_close(ss);
	}
	for (size_t i = 0; i < nds && !rc; i++)
		if (dump_aggregates(ds[i], ms, nms, mint, maxt, &out, &err)) {
			fprintf(stderr, "strata tools block dump: %s\n", err.msg);
			rc = 1;
		}
	fwrite(out.p, 1, out.n, stdout);
	buf_release(&out);
	arena_release(&a);
	if (m)
		promql_merge_free(m);
	for (size_t i = 0; i < nb; i++)
		block_close(bl[i]);
	for (size_t i = 0; i < nds; i++)
		block_close(ds[i]);
	free(ds);
	free(bl);
	free(qs);
	strlist_free(&blocks);
	selector_free(ms, nms);
	return rc;
}

typedef struct name_card {
	buf_t *out;
} name_card_t;

static void print_name(void *arg, str_t name, size_t nvalues)
{
	buf_printf(((name_card_t *)arg)->out, "  %.*s: %zu values\n", STR_ARG(name), nvalues);
}

static int inspect(int argc, char **argv)
{
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata tools block inspect", "Print meta, counts and label cardinality of blocks.",
				 NULL, 0, argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (res.npos != 1) {
		fprintf(stderr, "strata tools block inspect: expected one <dir> argument\n");
		free(res.pos);
		return 2;
	}
	strlist_t blocks = {0};
	rc = list_blocks(res.pos[0], &blocks);
	free(res.pos);
	err_t err = {0};
	for (size_t bi = 0; bi < blocks.n && !rc; bi++) {
		block_t *b;
		if (block_open(&b, blocks.v[bi], &err)) {
			fprintf(stderr, "strata tools block inspect: %s\n", err.msg);
			rc = 1;
			break;
		}
		buf_t out = BUF_INIT;
		buf_printf(&out, "block %s\n", b->dir);
		meta_format(&out, &b->meta);
		buf_putc(&out, '\n');
		arena_t a;
		arena_init(&a, 0);
		postings_t all;
		uint64_t series = 0, chunks = 0, samples = 0;
		if (index_reader_postings(&b->ix, &a, STR_NULL, STR_NULL, &all, &err)) {
			rc = 1;
		} else {
			for (size_t i = 0; i < all.n && !rc; i++) {
				arena_t s;
				arena_init(&s, 0);
				labels_t ls;
				chunk_meta_t *cm;
				size_t nc;
				if (index_reader_series(&b->ix, &s, all.v[i], &ls, &cm, &nc, &err)) {
					rc = 1;
				} else {
					series++;
					chunks += nc;
					for (size_t k = 0; k < nc && !rc; k++) {
						chunk_t c;
						if (chunkfile_reader_get(&b->cf, cm[k].ref, &c, &err))
							rc = 1;
						else if (c.enc == CHUNK_ENC_AGGR)
							samples += aggr_chunk_num_samples(c.data, c.len);
						else if (c.len >= 2)
							samples += (uint64_t)((c.data[0] << 8) | c.data[1]);
					}
				}
				arena_release(&s);
			}
		}
		if (!rc) {
			buf_printf(&out, "index: series %" PRIu64 ", chunks %" PRIu64 ", samples %" PRIu64
					 ", index %zu bytes, chunks %" PRIu64 " bytes in %zu segments\nlabel names:\n",
				   series, chunks, samples, b->ix.len, b->cf.total_bytes, b->cf.nseg);
			name_card_t nc = {&out};
			if (index_reader_each_name(&b->ix, print_name, &nc, &err))
				rc = 1;
		}
		if (rc)
			fprintf(stderr, "strata tools block inspect: %s\n", err.msg);
		fwrite(out.p, 1, out.n, stdout);
		buf_release(&out);
		arena_release(&a);
		block_close(b);
	}
	strlist_free(&blocks);
	return rc;
}

/* ---- write: OpenMetrics in ---- */

typedef struct om_series {
	labels_t ls;
	VEC(int64_t) t;
	VEC(double) v;
} om_series_t;

typedef struct om_input {
	arena_t arena;
	hmap_t by_key; /* canonical label text -> om_series_t* */
	VEC(om_series_t *) all;
	int64_t mint, maxt;
} om_input_t;

static int om_err(err_t *err, size_t line, const char *what)
{
	return err_set(err, ERR_INVALID, "line %zu: %s", line, what);
}

static size_t om_name(str_t s, size_t i)
{
	while (i < s.n && ((s.p[i] >= 'a' && s.p[i] <= 'z') || (s.p[i] >= 'A' && s.p[i] <= 'Z') || s.p[i] == '_' ||
			   s.p[i] == ':' || (s.p[i] >= '0' && s.p[i] <= '9')))
		i++;
	return i;
}

static int om_line(om_input_t *in, str_t s, size_t lineno, err_t *err)
{
	arena_t *a = &in->arena;
	labels_builder_t lb;
	labels_builder_init(&lb, a, NULL);
	size_t i = om_name(s, 0);
	if (i == 0)
		return om_err(err, lineno, "expected a metric name");
	labels_builder_set(&lb, STR(LABEL_METRIC_NAME), str_from(arena_strndup(a, s.p, i), i));
	if (i < s.n && s.p[i] == '{') {
		i++;
		while (i < s.n && s.p[i] != '}') {
			size_t st = i;
			i = om_name(s, i);
			if (i == st || i + 1 >= s.n || s.p[i] != '=' || s.p[i + 1] != '"')
				return om_err(err, lineno, "malformed label");
			str_t name = str_from(arena_strndup(a, s.p + st, i - st), i - st);
			i++;
			buf_t v = BUF_INIT;
			long used = selector_unquote(str_from(s.p + i, s.n - i), &v, err);
			if (used < 0) {
				buf_release(&v);
				return err_wrap(err, "line %zu", lineno);
			}
			labels_builder_set(&lb, name, str_from(arena_memdup(a, v.n ? v.p : "", v.n), v.n));
			buf_release(&v);
			i += (size_t)used;
			if (i < s.n && s.p[i] == ',')
				i++;
		}
		if (i >= s.n)
			return om_err(err, lineno, "unterminated label set");
		i++;
	}
	if (i >= s.n || s.p[i] != ' ')
		return om_err(err, lineno, "expected a space before the value");
	str_t rest = str_from(s.p + i + 1, s.n - i - 1);
	long hash = str_chr(rest, '#');
	if (hash >= 0)
		rest = str_sub(rest, 0, (size_t)hash); /* exemplar dropped */
	rest = str_trim(rest);
	str_t vs, tss;
	if (!str_split2(rest, ' ', &vs, &tss))
		return om_err(err, lineno, "sample without timestamp");
	double v, tsec;
	if (!str_to_double(vs, &v))
		return om_err(err, lineno, "bad sample value");
	if (isnan(v)) {
		/* Go's ParseFloat("NaN") is math.NaN(), bits 0x7FF8000000000001: keep chunks byte-identical. */
		uint64_t go_nan = 0x7FF8000000000001ull;
		memcpy(&v, &go_nan, 8);
	}
	if (!str_to_double(str_trim(tss), &tsec) || isnan(tsec) || isinf(tsec))
		return om_err(err, lineno, "bad timestamp");
	int64_t t = (int64_t)(tsec * 1000);
	labels_t ls = labels_builder_finish(&lb);
	buf_t key = BUF_INIT;
	labels_format_full(&key, &ls);
	om_series_t *se = hmap_get(&in->by_key, buf_str(&key));
	if (!se) {
		se = ARENA_NEW(a, om_series_t);
		se->ls = ls;
		char *k = arena_memdup(a, key.p, key.n);
		hmap_put(&in->by_key, str_from(k, key.n), se);
		VEC_PUSH(&in->all, se);
	}
	buf_release(&key);
	VEC_PUSH(&se->t, t);
	VEC_PUSH(&se->v, v);
	if (t < in->mint)
		in->mint = t;
	if (t > in->maxt)
		in->maxt = t;
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	return labels_cmp(&(*(om_series_t *const *)a)->ls, &(*(om_series_t *const *)b)->ls);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int write_blocks(int argc, char **argv)
{
	static int64_t dur;
	static strlist_t ext;
	static bool quiet;
	flag_def_t defs[] = {
		{"max-block-duration", FLAG_DURATION, &dur, "2h", "Maximum duration of created blocks."},
		{"label", FLAG_STRINGS, &ext, NULL, "External label name=value for the thanos meta section (repeatable)."},
		{"quiet", FLAG_BOOL, &quiet, "false", "Do not print created blocks."},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata tools block write", "OpenMetrics text (file or - for stdin) to blocks.", defs,
				 ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (res.npos != 2) {
		fprintf(stderr, "strata tools block write: expected <input file|-> <output dir>\n");
		free(res.pos);
		return 2;
	}
	const char *inpath = res.pos[0], *outdir = res.pos[1];
	free(res.pos);
	if (dur <= 0) {
		fprintf(stderr, "strata tools block write: --max-block-duration must be positive\n");
		return 2;
	}
	FILE *f = strcmp(inpath, "-") == 0 ? stdin : fopen(inpath, "rb");
	if (!f) {
		fprintf(stderr, "strata tools block write: open %s: %s\n", inpath, strerror(errno));
		return 1;
	}
	om_input_t in = {0};
	arena_init(&in.arena, 1 << 16);
	hmap_init(&in.by_key, 0);
	in.mint = INT64_MAX;
	in.maxt = INT64_MIN;
	err_t err = {0};
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	bool eof = false;
	rc = 0;
	while (!rc && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		str_t s = str_from(line, (size_t)len);
		if (s.n && s.p[s.n - 1] == '\n')
			s.n--;
		if (eof) {
			if (s.n)
				rc = om_err(&err, lineno, "data after # EOF");
			continue;
		}
		if (str_eq_c(s, "# EOF")) {
			eof = true;
			continue;
		}
		if (!s.n || s.p[0] == '#')
			continue;
		rc = om_line(&in, s, lineno, &err);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	if (!rc && !eof)
		rc = err_set(&err, ERR_INVALID, "input does not end with # EOF");
	if (rc) {
		fprintf(stderr, "strata tools block write: %s: %s\n", inpath, err.msg);
		rc = 1;
		goto out;
	}
	if (in.all.n > 1)
		qsort(in.all.v, in.all.n, sizeof(om_series_t *), cmp_series);
	/* Sort each series' samples by time; drop duplicate timestamps (first wins, like the head). */
	for (size_t i = 0; i < in.all.n; i++) {
		om_series_t *se = in.all.v[i];
		for (size_t k = 1; k < se->t.n; k++) {
			if (se->t.v[k] < se->t.v[k - 1]) {
				/* insertion sort: inputs are nearly sorted */
				for (size_t j = k; j > 0 && se->t.v[j] < se->t.v[j - 1]; j--) {
					int64_t tt = se->t.v[j];
					se->t.v[j] = se->t.v[j - 1], se->t.v[j - 1] = tt;
					double vv = se->v.v[j];
					se->v.v[j] = se->v.v[j - 1], se->v.v[j - 1] = vv;
				}
			}
		}
		size_t w = 0;
		for (size_t k = 0; k < se->t.n; k++) {
			if (w && se->t.v[k] == se->t.v[w - 1])
				continue;
			se->t.v[w] = se->t.v[k], se->v.v[w] = se->v.v[k], w++;
		}
		se->t.n = se->v.n = w;
	}
	block_meta_t extra = {0};
	for (size_t i = 0; i < ext.n; i++) {
		char *eq = strchr(ext.v[i], '=');
		if (!eq) {
			fprintf(stderr, "strata tools block write: --label %s: expected name=value\n", ext.v[i]);
			meta_release(&extra);
			rc = 2;
			goto out;
		}
		*eq = 0;
		meta_set_label(&extra, ext.v[i], eq + 1);
		*eq = '=';
	}
	if (extra.has_thanos)
		extra.source = xstrdup("bucket.upload");
	size_t *pos = xcalloc(in.all.n + 1, sizeof(size_t));
	for (int64_t w0 = in.all.n ? floor_div(in.mint, dur) * dur : 1; !rc && in.all.n && w0 <= in.maxt; w0 += dur) {
		int64_t w1 = w0 + dur;
		block_writer_t *bw = NULL;
		block_writer_opts_t opts = {.chunk_range = 2 * dur};
		for (size_t i = 0; !rc && i < in.all.n; i++) {
			om_series_t *se = in.all.v[i];
			size_t st = pos[i], e = st;
			while (e < se->t.n && se->t.v[e] < w1)
				e++;
			pos[i] = e;
			if (e == st)
				continue;
			if (!bw && block_writer_new(&bw, outdir, &opts, &err)) {
				rc = 1;
				break;
			}
			if (block_writer_add_series(bw, &se->ls, se->t.v + st, se->v.v + st, e - st, &err))
				rc = 1;
		}
		if (!bw)
			continue;
		if (rc) {
			block_writer_abort(bw);
			break;
		}
		char final[4096];
		if (block_writer_finish(bw, extra.has_thanos ? &extra : NULL, final, &err)) {
			rc = 1;
			break;
		}
		if (!quiet)
			printf("%s\n", final);
	}
	if (rc)
		fprintf(stderr, "strata tools block write: %s\n", err.msg);
	free(pos);
	meta_release(&extra);
out:
	for (size_t i = 0; i < in.all.n; i++) {
		VEC_FREE(&in.all.v[i]->t);
		VEC_FREE(&in.all.v[i]->v);
	}
	VEC_FREE(&in.all);
	hmap_release(&in.by_key);
	arena_release(&in.arena);
	return rc;
}

int cmd_tools_block(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: strata tools block <command> [<flags>] [<args>]\n\n"
		       "Commands:\n"
		       "  dump <dir>                 Dump samples ({labels} value ts_ms) of a block or directory of blocks.\n"
		       "  inspect <dir>              Print meta, counts and label cardinality.\n"
		       "  write <input|-> <out dir>  Write blocks from OpenMetrics text.\n");
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "dump"))
		return dump(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "write"))
		return write_blocks(argc - 1, argv + 1);
	fprintf(stderr, "strata tools block: unknown command %s\n", argv[1]);
	return 2;
}
