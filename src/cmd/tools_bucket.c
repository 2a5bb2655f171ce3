/*
 * tools_bucket.c — `strata tools bucket {ls,inspect,verify,upload-blocks,web,mark,cleanup,retention,
 * rewrite}` (Thanos `tools bucket`); mark, cleanup, retention and rewrite are thin over compact/ (the
 * compactor's own code).
 *
 * All subcommands take --objstore.config / --objstore.config-file. Blocks are top-level "<ULID>/"
 * directories with a meta.json; directories without one are partial uploads (shown by verify only).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/duration.h"
#include "base/str.h"
#include "base/varint.h"
#include "base/vec.h"
#include "cmd/cmd.h"
#include "objstore/bucket.h"
#include "objstore/config.h"
#include "block/fetcher.h"
#include "block/marker.h"
#include "block/shipper.h"
#include "compact/cleanup.h"
#include "compact/downsampler.h"
#include "tsdb/downsample.h"
#include "compact/rewrite.h"
#include "tsdb/chunkfile.h"
#include "tsdb/index.h"
#include "tsdb/meta.h"
#include "net/http.h"
#include "ui/blockview.h"
#include "ui/ui.h"

typedef struct bucket_flags {
	char *config;
	char *config_file;
} bucket_flags_t;

#define OBJSTORE_FLAGS(bf)                                                                               \
	{"objstore.config", FLAG_STRING, &(bf)->config, NULL,                                            \
	 "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that contains object store configuration."}, \
	{"objstore.config-file", FLAG_STRING, &(bf)->config_file, NULL,                                  \
	 "Path to YAML file that contains object store configuration."}

static int open_bucket(const char *cmdline, const bucket_flags_t *bf, bucket_t **b)
{
	err_t err = {0};
	if (objstore_from_flags(bf->config, bf->config_file, b, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return err.code == ERR_INVALID ? 2 : 1;
	}
	return 0;
}

/* ---- loading block metas ---- */

typedef struct block_entry {
	char ulid[ULID_LEN + 1];
	bool has_meta;
	block_meta_t meta;
} block_entry_t;

typedef VEC(block_entry_t) blocks_t;

static int collect_dirs(void *arg, const char *name)
{
	blocks_t *bs = arg;
	size_t n = strlen(name);
	if (n != ULID_LEN + 1 || name[ULID_LEN] != '/')
		return 0;
	char id[ULID_LEN + 1];
	memcpy(id, name, ULID_LEN);
	id[ULID_LEN] = 0;
	if (!ulid_valid(id))
		return 0; /* e.g. debug/ */
	block_entry_t *e = VEC_ADD(bs);
	memcpy(e->ulid, id, sizeof id);
	return 0;
}

static void blocks_free(blocks_t *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		if (bs->v[i].has_meta)
			meta_release(&bs->v[i].meta);
	VEC_FREE(bs);
}

/* Lists blocks and reads every meta.json. Returns 0 or prints the error and returns 1. */
static int load_blocks(const char *cmdline, bucket_t *b, blocks_t *bs, bool quiet_partial)
{
	err_t err = {0};
	if (bucket_iter(b, "", 0, collect_dirs, bs, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 1;
	}
	buf_t data = BUF_INIT;
	for (size_t i = 0; i < bs->n; i++) {
		block_entry_t *e = &bs->v[i];
		char name[64];
		snprintf(name, sizeof name, "%s/meta.json", e->ulid);
		buf_reset(&data);
		int rc = bucket_get(b, name, &data, &err);
		if (rc == ERR_NOT_FOUND) {
			if (!quiet_partial)
				log_warn("block without meta.json (partial upload?)", "block", e->ulid);
			continue;
		}
		if (rc == 0)
			rc = meta_parse(&e->meta, data.p, data.n, name, &err);
		if (rc) {
			fprintf(stderr, "%s: %s\n", cmdline, err.msg);
			buf_release(&data);
			return 1;
		}
		e->has_meta = true;
	}
	buf_release(&data);
	return 0;
}

static void put_labels(buf_t *b, const block_meta_t *m)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < m->nlabels; i++) { /* nlabels counts pairs */
		if (i)
			buf_putc(b, ',');
		buf_printf(b, "%s=", m->labels[2 * i]);
		buf_json_str(b, str_c(m->labels[2 * i + 1]));
	}
	buf_putc(b, '}');
}

static void put_time(buf_t *b, int64_t ms)
{
	buf_put_rfc3339_ms(b, ms);
}

/* ---- ls ---- */

static int cmd_ls(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *output;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"output", FLAG_ENUM, &output, "", "Optional format in which to print each block's information: json, wide.",
		 "|json|wide"},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "List all blocks in the bucket.", defs, ARRAY_LEN(defs), argc,
					   argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, false);
	buf_t out = BUF_INIT;
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		block_entry_t *e = &bs.v[i];
		if (!e->has_meta)
			continue;
		buf_reset(&out);
		if (!strcmp(output, "json")) {
			buf_t j = BUF_INIT;
			meta_format(&j, &e->meta);
			/* One JSON object per line. */
			for (size_t k = 0; k < j.n; k++)
				if (j.p[k] != '\n' && j.p[k] != '\t')
					buf_putc(&out, j.p[k]);
			buf_release(&j);
		} else if (!strcmp(output, "wide")) {
			buf_printf(&out, "%s -- ", e->ulid);
			put_time(&out, e->meta.mint);
			buf_puts(&out, " - ");
			put_time(&out, e->meta.maxt);
			buf_puts(&out, " Diff: ");
			duration_format(&out, e->meta.maxt - e->meta.mint);
			buf_printf(&out, ", Compaction: %d, Downsample: %lld, Source: %s", e->meta.level,
				   (long long)e->meta.resolution, e->meta.source ? e->meta.source : "");
		} else {
			buf_puts(&out, e->ulid);
		}
		printf("%s\n", out.p);
	}
	buf_release(&out);
	blocks_free(&bs);
	bucket_free(b);
	return rc;
}

/* ---- inspect ---- */

static int cmp_block(const void *a, const void *b)
{
	const block_entry_t *x = a, *y = b;
	if (x->meta.mint != y->meta.mint)
		return x->meta.mint < y->meta.mint ? -1 : 1;
	return strcmp(x->ulid, y->ulid);
}

static int cmd_inspect(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *output;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"output", FLAG_ENUM, &output, "table", "Output format for result.", "table|tsv|csv"},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Inspect all blocks in the bucket in detailed, table-like way.",
					   defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, true);
	if (rc == 0) {
		/* Keep only complete blocks, sorted by start time. */
		size_t k = 0;
		for (size_t i = 0; i < bs.n; i++)
			if (bs.v[i].has_meta)
				bs.v[k++] = bs.v[i];
		bs.n = k;
		qsort(bs.v, bs.n, sizeof(*bs.v), cmp_block);
		static const char *hdr[] = {"ULID", "FROM", "UNTIL", "RANGE", "#SERIES", "#SAMPLES", "#CHUNKS",
					    "COMP-LEVEL", "LABELS", "RESOLUTION", "SOURCE"};
		enum { NC = ARRAY_LEN(hdr) };
		size_t nrows = bs.n + 1;
		buf_t *cells = xcalloc(nrows * NC, sizeof(buf_t));
		for (size_t i = 0; i < nrows * NC; i++)
			buf_init(&cells[i]);
		for (size_t c = 0; c < NC; c++)
			buf_puts(&cells[c], hdr[c]);
		for (size_t i = 0; i < bs.n; i++) {
			const block_meta_t *m = &bs.v[i].meta;
			buf_t *row = &cells[(i + 1) * NC];
			buf_puts(&row[0], bs.v[i].ulid);
			put_time(&row[1], m->mint);
			put_time(&row[2], m->maxt);
			duration_format(&row[3], m->maxt - m->mint);
			buf_put_u64(&row[4], m->num_series);
			buf_put_u64(&row[5], m->num_samples);
			buf_put_u64(&row[6], m->num_chunks);
			buf_printf(&row[7], "%d", m->level);
			put_labels(&row[8], m);
			if (m->resolution)
				duration_format(&row[9], m->resolution);
			else
				buf_puts(&row[9], "0s");
			buf_puts(&row[10], m->source ? m->source : "");
		}
		size_t width[NC] = {0};
		for (size_t r = 0; r < nrows; r++)
			for (size_t c = 0; c < NC; c++)
				if (cells[r * NC + c].n > width[c])
					width[c] = cells[r * NC + c].n;
		for (size_t r = 0; r < nrows; r++) {
			for (size_t c = 0; c < NC; c++) {
				const buf_t *cell = &cells[r * NC + c];
				if (!strcmp(output, "table"))
					printf("%s%-*s", c ? " | " : "| ", (int)width[c], cell->p);
				else
					printf("%s%s", c ? (!strcmp(output, "csv") ? "," : "\t") : "", cell->p);
			}
			printf("%s\n", !strcmp(output, "table") ? " |" : "");
		}
		for (size_t i = 0; i < nrows * NC; i++)
			buf_release(&cells[i]);
		free(cells);
	}
	blocks_free(&bs);
	bucket_free(b);
	return rc;
}

/* ---- verify ---- */

/* Chunk-level issues are printed for the first VERIFY_SHOW occurrences of a kind in a block, then
 * summed up in one line, so a badly broken block does not print millions of lines. */
#define VERIFY_SHOW 5
#define CHUNK_RECORD_MAX (64u << 20) /* a record longer than this is a corrupt length */

typedef struct vkind {
	const char *kind;
	size_t n;
} vkind_t;

typedef struct vreport {
	const char *ulid;
	int issues; /* over all blocks */
	vkind_t kinds[16];
	size_t nkinds;
} vreport_t;

static void vissue(vreport_t *r, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vissue(vreport_t *r, const char *kind, const char *fmt, ...)
{
	size_t k = 0;
	while (k < r->nkinds && strcmp(r->kinds[k].kind, kind) != 0)
		k++;
	if (k == r->nkinds && k < ARRAY_LEN(r->kinds))
		r->kinds[r->nkinds++] = (vkind_t){kind, 0};
	size_t n = k < r->nkinds ? ++r->kinds[k].n : 1;
	r->issues++;
	if (n > VERIFY_SHOW)
		return;
	printf("issue=%s block=%s ", kind, r->ulid);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void vreport_block_done(vreport_t *r)
{
	for (size_t k = 0; k < r->nkinds; k++)
		if (r->kinds[k].n > VERIFY_SHOW)
			printf("issue=%s block=%s count=%zu msg=\"%zu more not shown\"\n", r->kinds[k].kind, r->ulid,
			       r->kinds[k].n, r->kinds[k].n - VERIFY_SHOW);
	r->nkinds = 0;
}

typedef struct segment {
	char name[32]; /* "000001" */
	int64_t size;
} segment_t;

typedef VEC(segment_t) segments_t;

typedef struct seg_list {
	segments_t *segs;
	size_t prefix_len; /* "<ulid>/chunks/" */
} seg_list_t;

static int collect_segment(void *arg, const char *name)
{
	seg_list_t *l = arg;
	const char *base = name + l->prefix_len;
	size_t n = strlen(base);
	if (n == 0 || n >= sizeof(((segment_t *)0)->name) || strspn(base, "0123456789") != n)
		return 0; /* sub-directories and stray files are not segments */
	segment_t *s = VEC_ADD(l->segs);
	memcpy(s->name, base, n + 1);
	s->size = -1;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Streaming parser of one chunk segment: checks the header, every record's length and CRC32C, and
 * that every chunk reference of the index into this segment starts a record. */
typedef struct seg_scan {
	vreport_t *rep;
	const char *file; /* "chunks/000001" */
	uint32_t seg;
	buf_t carry;      /* bytes of an incomplete record */
	int64_t pos;      /* segment offset of carry.p[0] */
	bool header_done, broken;
	const uint64_t *refs; /* sorted refs of this segment */
	size_t nrefs, ri;
	size_t records;
} seg_scan_t;

static void scan_record_at(seg_scan_t *s, int64_t off)
{
	/* References before this record point at no record start. */
	while (s->ri < s->nrefs && (int64_t)(s->refs[s->ri] & 0xffffffffu) < off) {
		vissue(s->rep, "chunk_ref_bad", "file=%s ref=%llu msg=\"offset %llu is not the start of a chunk record\"",
		       s->file, (unsigned long long)s->refs[s->ri], (unsigned long long)(s->refs[s->ri] & 0xffffffffu));
		s->ri++;
	}
	if (s->ri < s->nrefs && (int64_t)(s->refs[s->ri] & 0xffffffffu) == off)
		s->ri++;
}

static int scan_sink(void *arg, const void *p, size_t n)
{
	seg_scan_t *s = arg;
	if (s->broken)
		return 0;
	buf_append(&s->carry, p, n);
	const uint8_t *b = (const uint8_t *)s->carry.p, *end = b + s->carry.n, *cur = b;
	if (!s->header_done) {
		if (s->carry.n < CHUNKFILE_HEADER_SIZE)
			return 0;
		if (be32_get(b) != CHUNKFILE_MAGIC || b[4] != 1) {
			vissue(s->rep, "chunk_file_corrupt", "file=%s msg=\"bad header: magic %08x version %u\"", s->file,
			       be32_get(b), b[4]);
			s->broken = true;
			return 0;
		}
		s->header_done = true;
		cur += CHUNKFILE_HEADER_SIZE;
	}
	for (;;) {
		uint64_t len;
		int vn = uvarint_get(cur, end, &len);
		if (vn == 0)
			break; /* need more bytes */
		int64_t off = s->pos + (cur - b);
		if (vn < 0 || len > CHUNK_RECORD_MAX) {
			vissue(s->rep, "chunk_file_corrupt", "file=%s offset=%lld msg=\"bad chunk record length\"", s->file,
			       (long long)off);
			s->broken = true;
			return 0;
		}
		size_t rec = (size_t)vn + 1 + (size_t)len + 4;
		if ((size_t)(end - cur) < rec)
			break;
		scan_record_at(s, off);
		const uint8_t *enc = cur + vn;
		uint32_t want = be32_get(enc + 1 + len), got = crc32c(0, enc, 1 + (size_t)len);
		if (want != got)
			vissue(s->rep, "chunk_crc_mismatch", "file=%s offset=%lld msg=\"CRC32C %08x, record says %08x\"",
			       s->file, (long long)off, got, want);
		s->records++;
		cur += rec;
	}
	size_t used = (size_t)(cur - b);
	s->pos += (int64_t)used;
	memmove(s->carry.p, s->carry.p + used, s->carry.n - used);
	s->carry.n -= used;
	return 0;
}

/* Index and chunk checks of one block; issues go to rep. Bucket errors are issues too (the report goes
 * on with the next block). */
static void verify_block_data(bucket_t *b, const block_entry_t *e, bool check_chunks, vreport_t *rep)
{
	const block_meta_t *m = &e->meta;
	err_t err = {0};
	char name[600];

	/* Chunk segments and their sizes. */
	segments_t segs = {0};
	snprintf(name, sizeof name, "%s/chunks/", e->ulid);
	seg_list_t sl = {&segs, strlen(name)};
	if (bucket_iter(b, name, 0, collect_segment, &sl, &err) != 0) {
		vissue(rep, "bucket_error", "file=chunks msg=\"%s\"", err.msg);
		VEC_FREE(&segs);
		return;
	}
	for (size_t i = 0; i < segs.n; i++) {
		bucket_attrs_t a;
		snprintf(name, sizeof name, "%s/chunks/%s", e->ulid, segs.v[i].name);
		if (bucket_attributes(b, name, &a, &err) == 0)
			segs.v[i].size = a.size;
		else
			vissue(rep, "bucket_error", "file=chunks/%s msg=\"%s\"", segs.v[i].name, err.msg);
	}

	/* The index: every series in order, its labels and chunk references. */
	buf_t ix = BUF_INIT;
	snprintf(name, sizeof name, "%s/index", e->ulid);
	int rc = bucket_get(b, name, &ix, &err);
	if (rc == ERR_NOT_FOUND) { /* reported as missing_file already */
		buf_release(&ix);
		VEC_FREE(&segs);
		return;
	}
	if (rc) {
		vissue(rep, "bucket_error", "file=index msg=\"%s\"", err.msg);
		buf_release(&ix);
		VEC_FREE(&segs);
		return;
	}
	index_reader_t r;
	arena_t a;
	arena_init(&a, 0);
	postings_t all = {0};
	bool opened = false;
	rc = index_reader_open_mem(&r, name, (const uint8_t *)ix.p, ix.n, &err);
	if (rc == 0) {
		opened = true;
		rc = index_reader_load(&r, &err);
	}
	if (rc == 0)
		rc = index_reader_postings(&r, &a, STR_NULL, STR_NULL, &all, &err);
	if (rc)
		vissue(rep, "index_corrupt", "file=index msg=\"%s\"", err.msg);
	VEC(uint64_t) refs = {0};
	uint64_t nseries = 0, nchunks = 0;
	labels_t prev = {0};
	arena_t sa[2]; /* the current series and the one before it (its labels array lives in the arena) */
	arena_init(&sa[0], 0);
	arena_init(&sa[1], 0);
	buf_t l1 = BUF_INIT, l2 = BUF_INIT;
	for (size_t i = 0; rc == 0 && i < all.n; i++) {
		labels_t ls;
		chunk_meta_t *chks;
		size_t n;
		arena_reset(&sa[i % 2]);
		if ((rc = index_reader_series(&r, &sa[i % 2], all.v[i], &ls, &chks, &n, &err)) != 0) {
			vissue(rep, "index_corrupt", "file=index msg=\"%s\"", err.msg);
			break;
		}
		nseries++;
		buf_reset(&l1);
		labels_format(&l1, &ls);
		for (size_t k = 1; k < ls.n; k++)
			if (str_cmp(ls.v[k - 1].name, ls.v[k].name) >= 0) {
				vissue(rep, "labels_out_of_order", "series=%s msg=\"label names not sorted and unique\"", l1.p);
				break;
			}
		if (i > 0) {
			int c = labels_cmp(&prev, &ls);
			if (c == 0) {
				vissue(rep, "duplicate_series", "series=%s msg=\"same labels as the series before it\"", l1.p);
			} else if (c > 0) {
				buf_reset(&l2);
				labels_format(&l2, &prev);
				vissue(rep, "series_out_of_order", "series=%s previous=%s msg=\"series not sorted by labels\"",
				       l1.p, l2.p);
			}
		}
		prev = ls;
		for (size_t k = 0; k < n; k++) {
			const chunk_meta_t *c = &chks[k];
			nchunks++;
			if (c->mint > c->maxt)
				vissue(rep, "chunk_bad_time_range", "series=%s msg=\"chunk [%lld,%lld]: minTime > maxTime\"",
				       l1.p, (long long)c->mint, (long long)c->maxt);
			else if (k > 0 && c->mint <= chks[k - 1].maxt)
				vissue(rep, "chunks_out_of_order",
				       "series=%s msg=\"chunk [%lld,%lld] starts before the previous one ends (%lld)\"", l1.p,
				       (long long)c->mint, (long long)c->maxt, (long long)chks[k - 1].maxt);
			if (c->mint < m->mint || c->maxt >= m->maxt)
				vissue(rep, "chunk_outside_block",
				       "series=%s msg=\"chunk [%lld,%lld] outside the block's [minTime %lld, maxTime %lld)\"",
				       l1.p, (long long)c->mint, (long long)c->maxt, (long long)m->mint, (long long)m->maxt);
			uint64_t seg = c->ref >> 32, off = c->ref & 0xffffffffu;
			if (seg >= segs.n) {
				vissue(rep, "chunk_ref_bad", "series=%s ref=%llu msg=\"segment %llu does not exist (%zu segment files)\"",
				       l1.p, (unsigned long long)c->ref, (unsigned long long)seg + 1, segs.n);
			} else if (segs.v[seg].size >= 0 &&
				   (off < CHUNKFILE_HEADER_SIZE || (int64_t)off >= segs.v[seg].size)) {
				vissue(rep, "chunk_ref_out_of_bounds",
				       "series=%s ref=%llu file=chunks/%s msg=\"offset %llu is outside the file (%lld bytes)\"",
				       l1.p, (unsigned long long)c->ref, segs.v[seg].name, (unsigned long long)off,
				       (long long)segs.v[seg].size);
			} else if (check_chunks) {
				VEC_PUSH(&refs, c->ref);
			}
		}
	}
	if (rc == 0) {
		if (nseries != m->num_series)
			vissue(rep, "stats_mismatch", "msg=\"meta.json numSeries %llu, index has %llu series\"",
			       (unsigned long long)m->num_series, (unsigned long long)nseries);
		if (nchunks != m->num_chunks)
			vissue(rep, "stats_mismatch", "msg=\"meta.json numChunks %llu, index has %llu chunks\"",
			       (unsigned long long)m->num_chunks, (unsigned long long)nchunks);
	}

	/* Chunk records: stream every segment, check CRCs and that references start records. */
	if (rc == 0 && check_chunks) {
		if (refs.n)
			qsort(refs.v, refs.n, sizeof(uint64_t), cmp_u64);
		size_t ri = 0;
		for (size_t sgi = 0; sgi < segs.n; sgi++) {
			size_t r0 = ri;
			while (ri < refs.n && refs.v[ri] >> 32 == sgi)
				ri++;
			char file[64];
			snprintf(file, sizeof file, "chunks/%s", segs.v[sgi].name);
			seg_scan_t sc = {.rep = rep, .file = file, .seg = (uint32_t)sgi, .refs = refs.v + r0, .nrefs = ri - r0};
			buf_init(&sc.carry);
			snprintf(name, sizeof name, "%s/%s", e->ulid, file);
			int grc = bucket_get_stream(b, name, 0, -1, scan_sink, &sc, &err);
			if (grc)
				vissue(rep, "bucket_error", "file=%s msg=\"%s\"", file, err.msg);
			else if (!sc.broken && !sc.header_done)
				vissue(rep, "chunk_file_corrupt", "file=%s msg=\"shorter than its header\"", file);
			else if (!sc.broken && sc.carry.n)
				vissue(rep, "chunk_file_corrupt", "file=%s offset=%lld msg=\"truncated chunk record at the end\"",
				       file, (long long)sc.pos);
			if (grc == 0 && !sc.broken)
				scan_record_at(&sc, INT64_MAX); /* references past the last record */
			buf_release(&sc.carry);
		}
	}
	buf_release(&l1);
	buf_release(&l2);
	VEC_FREE(&refs);
	arena_release(&sa[0]);
	arena_release(&sa[1]);
	arena_release(&a);
	if (opened)
		index_reader_close(&r);
	buf_release(&ix);
	VEC_FREE(&segs);
}

static bool id_selected(const strlist_t *ids, const char *ulid)
{
	if (ids->n == 0)
		return true;
	for (size_t i = 0; i < ids->n; i++)
		if (!strcmp(ids->v[i], ulid))
			return true;
	return false;
}

static int cmd_verify(int argc, char **argv)
{
	static bucket_flags_t bf;
	static bool repair, check_chunks;
	static strlist_t ids;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"repair", FLAG_BOOL, &repair, "false",
		 "Attempt to repair blocks for which issues were detected (not supported: verify only reports)."},
		{"id", FLAG_STRINGS, &ids, NULL, "Block IDs to verify (repeated); all blocks when none are given."},
		{"verify.chunks", FLAG_BOOL, &check_chunks, "true",
		 "Stream every chunk segment file and check each record's CRC32C and that every chunk reference of "
		 "the index starts a record (--no-verify.chunks: index, sizes and references only)."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Verify all blocks in the bucket against specified issues.",
					   defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (repair) {
		fprintf(stderr, "%s: --repair is not supported: verify only reports issues and never changes the bucket; "
				"run it without --repair\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < ids.n; i++)
		if (!ulid_valid(ids.v[i])) {
			fprintf(stderr, "%s: --id \"%s\" is not a block ULID\n", argv[0], ids.v[i]);
			return 2;
		}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, true);
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		bool found = false;
		for (size_t k = 0; k < bs.n && !found; k++)
			found = !strcmp(bs.v[k].ulid, ids.v[i]);
		if (!found) {
			fprintf(stderr, "%s: --id %s: no such block in bucket %s\n", argv[0], ids.v[i], bucket_name(b));
			rc = 1;
		}
	}
	vreport_t rep = {0};
	err_t err = {0};
	size_t nverified = 0;
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		block_entry_t *e = &bs.v[i];
		if (!id_selected(&ids, e->ulid))
			continue;
		nverified++;
		rep.ulid = e->ulid;
		if (!e->has_meta) {
			vissue(&rep, "partial_block", "msg=\"no meta.json (partial or in-progress upload)\"");
			continue;
		}
		const block_meta_t *m = &e->meta;
		if (strcmp(m->ulid, e->ulid) != 0)
			vissue(&rep, "meta_mismatch", "msg=\"meta.json ulid is %s\"", m->ulid);
		if (m->mint >= m->maxt)
			vissue(&rep, "bad_time_range", "msg=\"minTime %lld >= maxTime %lld\"", (long long)m->mint,
			       (long long)m->maxt);
		/* index present; every file listed in thanos.files present with its size. */
		char name[600];
		bucket_attrs_t a;
		snprintf(name, sizeof name, "%s/index", e->ulid);
		if (bucket_attributes(b, name, &a, &err) != 0)
			vissue(&rep, "missing_file", "file=index msg=\"%s\"", err.msg);
		bool has_chunks = false;
		for (size_t f = 0; f < m->nfiles; f++) {
			const meta_file_t *mf = &m->files[f];
			if (!strcmp(mf->rel_path, "meta.json"))
				continue;
			if (!strncmp(mf->rel_path, "chunks/", 7))
				has_chunks = true;
			snprintf(name, sizeof name, "%s/%s", e->ulid, mf->rel_path);
			if (bucket_attributes(b, name, &a, &err) != 0)
				vissue(&rep, "missing_file", "file=%s msg=\"%s\"", mf->rel_path, err.msg);
			else if (mf->size_bytes && a.size != mf->size_bytes)
				vissue(&rep, "size_mismatch", "file=%s size=%lld meta_size=%lld", mf->rel_path,
				       (long long)a.size, (long long)mf->size_bytes);
		}
		if (m->nfiles && !has_chunks && m->num_chunks)
			vissue(&rep, "missing_file", "file=chunks msg=\"meta.json lists no chunk segment\"");
		verify_block_data(b, e, check_chunks, &rep);
		vreport_block_done(&rep);
	}
	/* Overlaps and duplicates within a stream (same external labels and resolution). */
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		for (size_t j = i + 1; j < bs.n; j++) {
			block_entry_t *x = &bs.v[i], *y = &bs.v[j];
			if (!id_selected(&ids, x->ulid) && !id_selected(&ids, y->ulid))
				continue;
			if (!x->has_meta || !y->has_meta || x->meta.resolution != y->meta.resolution ||
			    x->meta.nlabels != y->meta.nlabels)
				continue;
			bool same = true;
			for (size_t k = 0; k < 2 * x->meta.nlabels && same; k++)
				same = !strcmp(x->meta.labels[k], y->meta.labels[k]);
			if (!same)
				continue;
			bool dup = x->meta.nsources && x->meta.nsources == y->meta.nsources;
			for (size_t k = 0; dup && k < x->meta.nsources; k++)
				dup = !strcmp(x->meta.sources[k], y->meta.sources[k]);
			if (dup) {
				printf("issue=duplicated_compaction blocks=%s,%s msg=\"same sources\"\n", x->ulid, y->ulid);
				rep.issues++;
			} else if (x->meta.mint < y->meta.maxt && y->meta.mint < x->meta.maxt) {
				printf("issue=overlapped_blocks blocks=%s,%s msg=\"[%lld,%lld) overlaps [%lld,%lld)\"\n",
				       x->ulid, y->ulid, (long long)x->meta.mint, (long long)x->meta.maxt,
				       (long long)y->meta.mint, (long long)y->meta.maxt);
				rep.issues++;
			}
		}
	}
	if (rc == 0)
		printf("verified %zu blocks: %d issues\n", nverified, rep.issues);
	blocks_free(&bs);
	bucket_free(b);
	return rc ? rc : rep.issues ? 1 : 0;
}

/* ---- upload-blocks ---- */

/* --label name="value" flags as external labels; the upload itself is block/shipper.h's (shared with
 * the sidecar's shipper). */
static int upload_block(bucket_t *b, const char *dir, const char *ulid, const strlist_t *labels, err_t *err)
{
	label_t *ls = xcalloc(labels->n ? labels->n : 1, sizeof *ls);
	for (size_t i = 0; i < labels->n; i++) {
		const char *kv = labels->v[i], *eq = strchr(kv, '=');
		const char *v = eq + 1;
		size_t vn = strlen(v);
		if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
			v++;
			vn -= 2;
		}
		ls[i] = (label_t){str_from(kv, (size_t)(eq - kv)), str_from(v, vn)};
	}
	labels_t ext = {ls, labels->n};
	block_upload_opts_t o = {.labels = &ext, .source = "bucket.upload", .keep_source = true};
	int rc = shipper_upload_block(b, dir, ulid, &o, err);
	free(ls);
	return rc;
}

static int cmd_upload_blocks(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *path;
	static strlist_t labels;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"path", FLAG_STRING, &path, "./data", "Path to the directory containing blocks to upload."},
		{"label", FLAG_STRINGS, &labels, NULL, "External labels to add to the uploaded blocks (repeated)."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Upload blocks to a bucket.", defs, ARRAY_LEN(defs), argc, argv,
					   &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (labels.n == 0) {
		fprintf(stderr, "%s: at least one --label=name=\"value\" is required (blocks need external labels)\n",
			argv[0]);
		return 2;
	}
	for (size_t i = 0; i < labels.n; i++) {
		const char *eq = strchr(labels.v[i], '=');
		if (!eq || eq == labels.v[i]) {
			fprintf(stderr, "%s: --label \"%s\": want name=\"value\"\n", argv[0], labels.v[i]);
			return 2;
		}
	}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	char **blocks;
	size_t nblocks;
	err_t lerr = {0};
	if (shipper_finished_blocks(path, &blocks, &nblocks, &lerr) != 0) {
		fprintf(stderr, "%s: --path %s: %s\n", argv[0], path, lerr.msg);
		bucket_free(b);
		return 1;
	}
	int uploaded = 0, skipped = 0;
	for (size_t i = 0; rc == 0 && i < nblocks; i++) {
		char name[64];
		snprintf(name, sizeof name, "%s/meta.json", blocks[i]);
		bool exists = false;
		err_t err = {0};
		if (bucket_exists(b, name, &exists, &err) == 0 && exists) {
			log_info("block already in the bucket, skipping", "block", blocks[i]);
			skipped++;
			continue;
		}
		if (upload_block(b, path, blocks[i], &labels, &err) != 0) {
			fprintf(stderr, "%s: block %s: %s\n", argv[0], blocks[i], err.msg);
			rc = 1;
			break;
		}
		log_info("uploaded block", "block", blocks[i]);
		uploaded++;
	}
	if (rc == 0)
		printf("uploaded %d blocks, %d already present\n", uploaded, skipped);
	shipper_ulids_free(blocks, nblocks);
	bucket_free(b);
	return rc;
}

/* ---- web ---- */

/* The bucket block viewer (ui/ui.h's /blocks page over ui/blockview.h's API) until SIGTERM. */
static int cmd_web(int argc, char **argv)
{
	static bucket_flags_t bf;
	static cmd_server_flags_t sf;
	static int64_t refresh_ms, timeout_ms;
	static char *label, *route_prefix, *external_prefix;
	static bool disable_admin;
	flag_def_t defs[] = {
		CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"),
		OBJSTORE_FLAGS(&bf),
		CMD_WEB_PREFIX_FLAGS(&route_prefix, &external_prefix),
		{"refresh", FLAG_DURATION, &refresh_ms, "30m", "Refresh interval to download metadata from remote storage."},
		{"timeout", FLAG_DURATION, &timeout_ms, "5m", "Timeout to download metadata from remote storage (accepted; "
		 "the bucket's own request timeouts apply).", NULL, true},
		{"label", FLAG_STRING, &label, "", "External block label to use as group title."},
		{"disable-admin-operations", FLAG_BOOL, &disable_admin, "false",
		 "Disable UI/API admin operations like marking blocks for deletion and no compaction."},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags(argv[0], "Web interface for remote storage bucket.", defs, ARRAY_LEN(defs), argc, argv,
				 &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if ((rc = cmd_server_setup_logging(argv[0], &sf)))
		return rc;
	err_t err = {0};
	char *routes, *link_prefix;
	if (ui_web_prefixes(external_prefix, route_prefix, &routes, &link_prefix, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		return 2;
	}
	bucket_t *b = NULL;
	loop_t *loop = NULL;
	http_server_t *http = NULL;
	if ((rc = open_bucket(argv[0], &bf, &b)) || (rc = cmd_check_config(argv[0], &sf, NULL)) >= 0)
		goto out;
	rc = 1;
	if (loop_new(&loop, &err) ||
	    http_server_new(&http, loop,
	                    &(http_server_config_t){.address = sf.http_address,
	                                            .component = "bucket",
	                                            .web_config_file = sf.http_config},
	                    &err) ||
	    http_server_set_route_prefix(http, routes, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		goto out;
	}
	ui_t *ui = ui_new(http, &(ui_config_t){.component = "bucket", .pages = {UI_PAGES_BUCKET}, .admin_disabled = disable_admin,
					       .prefix = link_prefix});
	blockview_t *bv = blockview_new(http, &(blockview_config_t){.bkt = b, .admin_disabled = disable_admin, .label = label,
								  .refresh_ms = refresh_ms});
	http_server_set_ready(http, true);
	log_info("serving the bucket web UI", "http", sf.http_address, "bucket", bucket_name(b));
	rc = http_server_run(http, sf.http_grace_ms, &err) ? 1 : 0;
	if (rc)
		log_error("server failed", "err", err.msg);
	http_server_free(http);
	http = NULL;
	blockview_free(bv);
	ui_free(ui);
out:
	http_server_free(http);
	if (loop)
		loop_free(loop);
	bucket_free(b);
	free(routes);
	free(link_prefix);
	return rc;
}

/* ---- mark ---- */

static int cmd_mark(int argc, char **argv)
{
	static bucket_flags_t bf;
	static strlist_t ids;
	static char *marker, *details;
	static bool remove;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"id", FLAG_STRINGS, &ids, NULL, "ID (ULID) of the blocks to be marked (repeated)."},
		{"marker", FLAG_ENUM, &marker, "", "Marker to be put.", "|deletion-mark.json|no-compact-mark.json|no-downsample-mark.json"},
		{"details", FLAG_STRING, &details, "", "Human readable details to be put into marker."},
		{"remove", FLAG_BOOL, &remove, "false", "Remove the marker."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Mark block for deletion or no-compact in a safe way.", defs,
					   ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (!ids.n || !*marker) {
		fprintf(stderr, "%s: --id and --marker are required\n", argv[0]);
		return 2;
	}
	if (!remove && !*details) {
		fprintf(stderr, "%s: --details is required when adding a marker\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < ids.n; i++)
		if (!ulid_valid(ids.v[i])) {
			fprintf(stderr, "%s: --id \"%s\" is not a block ULID\n", argv[0], ids.v[i]);
			return 2;
		}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	marker_kind_t kind = (marker_kind_t)marker_kind_of(marker);
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		err_t err = {0};
		char name[64];
		bool exists = false;
		snprintf(name, sizeof name, "%s/meta.json", ids.v[i]);
		if (!remove && (bucket_exists(b, name, &exists, &err) || !exists)) {
			fprintf(stderr, "%s: block %s: %s\n", argv[0], ids.v[i], err.msg[0] ? err.msg : "no such block");
			rc = 1;
			break;
		}
		bool created = false;
		int mrc = remove ? marker_remove(b, ids.v[i], kind, &err)
				 : marker_write(b, ids.v[i], kind, MARKER_REASON_MANUAL, details, &created, &err);
		if (mrc) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			rc = 1;
		} else if (remove) {
			printf("removed %s from block %s\n", marker, ids.v[i]);
		} else {
			printf("%s %s on block %s\n", created ? "put" : "kept the existing", marker, ids.v[i]);
		}
	}
	bucket_free(b);
	return rc;
}

/* ---- cleanup, retention ---- */

/* Fetch with the filters the compactor applies before cleanup and retention (no label sharding). */
static int fetch_for_lifecycle(const char *cmdline, bucket_t *b, int64_t consistency_ms, fetch_list_t *l)
{
	block_fetcher_t *f = block_fetcher_new(&(block_fetcher_config_t){.bkt = b});
	err_t err = {0};
	int rc = block_fetcher_fetch(f, l, &err);
	block_fetcher_free(f);
	if (rc) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 1;
	}
	int64_t now = clock_now_ms();
	fetch_filter_consistency(l, consistency_ms, now);
	fetch_filter_deleted(l, 0, now);
	return 0;
}

static int cmd_cleanup(int argc, char **argv)
{
	static bucket_flags_t bf;
	static int64_t delete_ms, consistency_ms, sync_conc;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"delete-delay", FLAG_DURATION, &delete_ms, "48h",
		 "Time before a block marked for deletion is deleted from bucket (0s: at once)."},
		{"consistency-delay", FLAG_DURATION, &consistency_ms, "30m",
		 "Minimum age of fresh (non-compacted) blocks before they are being processed."},
		{"block-sync-concurrency", FLAG_INT, &sync_conc, "20", "Number of goroutines to use when syncing block metadata."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Cleans up all blocks marked for deletion.", defs, ARRAY_LEN(defs),
					   argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	fetch_list_t l;
	if ((rc = fetch_for_lifecycle(argv[0], b, consistency_ms, &l)) == 0) {
		err_t e1 = {0}, e2 = {0};
		size_t deleted = 0, partial = 0;
		int64_t now = clock_now_ms();
		int r1 = cleanup_deleted(b, &l, delete_ms, now, &deleted, &e1);
		int r2 = cleanup_partial(b, &l, now, &partial, &e2);
		printf("deleted %zu blocks marked for deletion, %zu partial uploads\n", deleted, partial);
		if (r1 || r2) {
			fprintf(stderr, "%s: %s\n", argv[0], r1 ? e1.msg : e2.msg);
			rc = 1;
		}
		fetch_list_release(&l);
	}
	bucket_free(b);
	return rc;
}

static int cmd_retention(int argc, char **argv)
{
	static bucket_flags_t bf;
	static int64_t ret[3], consistency_ms;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"retention.resolution-raw", FLAG_DURATION, &ret[0], "0d",
		 "How long to retain raw samples in bucket. 0d: forever."},
		{"retention.resolution-5m", FLAG_DURATION, &ret[1], "0d", "How long to retain samples of resolution 5m. 0d: forever."},
		{"retention.resolution-1h", FLAG_DURATION, &ret[2], "0d", "How long to retain samples of resolution 1h. 0d: forever."},
		{"consistency-delay", FLAG_DURATION, &consistency_ms, "30m",
		 "Minimum age of fresh (non-compacted) blocks before they are being processed."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0],
					   "Retention applies retention policies on the given bucket (marks blocks for "
					   "deletion; do not run it next to a compactor of the same streams).",
					   defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	fetch_list_t l;
	if ((rc = fetch_for_lifecycle(argv[0], b, consistency_ms, &l)) == 0) {
		err_t err = {0};
		size_t marked = 0;
		if (cleanup_retention(b, &l, ret, clock_now_ms(), &marked, &err)) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			rc = 1;
		}
		printf("marked %zu blocks past retention for deletion\n", marked);
		fetch_list_release(&l);
	}
	bucket_free(b);
	return rc;
}

/* ---- downsample ---- */

static int downsample_once(const char *cmdline, bucket_t *b, block_fetcher_t *f, const downsampler_env_t *env)
{
	static const int64_t res[2] = {DOWNSAMPLE_RES_5M, DOWNSAMPLE_RES_1H};
	int rc = 0;
	for (int i = 0; i < 2 && !rc; i++) {
		fetch_list_t l;
		err_t err = {0};
		if (block_fetcher_fetch(f, &l, &err)) {
			fprintf(stderr, "%s: %s\n", cmdline, err.msg);
			return 1;
		}
		fetch_filter_deleted(&l, 0, clock_now_ms());
		fetch_filter_duplicates(&l);
		size_t done = 0;
		if (downsampler_pass(env, &l, res[i], &done, &err)) {
			fprintf(stderr, "%s: %s\n", cmdline, err.msg);
			rc = 1;
		}
		printf("downsampled %zu blocks to %s\n", done, i ? "1h" : "5m");
		fetch_list_release(&l);
	}
	(void)b;
	return rc;
}

static int cmd_downsample(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *data_dir;
	static int64_t wait_ms, conc;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"data-dir", FLAG_STRING, &data_dir, "./data", "Data directory in which to cache blocks and process downsamplings."},
		{"downsample.concurrency", FLAG_INT, &conc, "1", "Number of goroutines to use when downsampling blocks."},
		{"wait-interval", FLAG_DURATION, &wait_ms, "5m",
		 "Wait interval between downsample runs (0s: one run, then exit with its status)."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Continuously downsamples blocks in an object store bucket.", defs,
					   ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (conc < 1) {
		fprintf(stderr, "%s: --downsample.concurrency must be at least 1\n", argv[0]);
		return 2;
	}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	char work[4096];
	snprintf(work, sizeof work, "%s/downsample", data_dir);
	block_fetcher_t *f = block_fetcher_new(&(block_fetcher_config_t){.bkt = b});
	workers_t *pool = conc > 1 ? workers_new((int)conc - 1) : NULL;
	downsampler_env_t env = {.bkt = b, .work_dir = work, .pool = pool};
	for (;;) {
		rc = downsample_once(argv[0], b, f, &env);
		if (wait_ms <= 0)
			break;
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	workers_free(pool);
	block_fetcher_free(f);
	bucket_free(b);
	return rc;
}

/* ---- rewrite ---- */

static int cmd_rewrite(int argc, char **argv)
{
	static bucket_flags_t bf;
	static strlist_t ids;
	static char *tmp_dir, *del_cfg, *del_cfg_file;
	static bool dry_run, delete_blocks;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"id", FLAG_STRINGS, &ids, NULL, "ID (ULID) of the blocks for rewrite (repeated)."},
		{"tmp.dir", FLAG_STRING, &tmp_dir, "/tmp/thanos-rewrite", "Working directory for temporary files."},
		{"dry-run", FLAG_BOOL, &dry_run, "true",
		 "Prints the series changes instead of doing them (--no-dry-run to rewrite)."},
		{"delete-blocks", FLAG_BOOL, &delete_blocks, "true",
		 "Mark the original blocks for deletion after they were rewritten (non dry-run mode only)."},
		{"rewrite.to-delete-config", FLAG_STRING, &del_cfg, NULL,
		 "Alternative to 'rewrite.to-delete-config-file': YAML list of deletion requests (matchers, intervals, request_id)."},
		{"rewrite.to-delete-config-file", FLAG_STRING, &del_cfg_file, NULL, "Path to YAML file with the deletion requests."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Rewrite chosen blocks in the bucket, while deleting series.", defs,
					   ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (!ids.n) {
		fprintf(stderr, "%s: at least one --id is required\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < ids.n; i++)
		if (!ulid_valid(ids.v[i])) {
			fprintf(stderr, "%s: --id \"%s\" is not a block ULID\n", argv[0], ids.v[i]);
			return 2;
		}
	err_t err = {0};
	char *text;
	size_t len;
	const char *what = NULL;
	if (cmd_read_config(argv[0], del_cfg, del_cfg_file, &text, &len, &what))
		return 2;
	if (!text) {
		fprintf(stderr, "%s: --rewrite.to-delete-config or --rewrite.to-delete-config-file is required\n", argv[0]);
		return 2;
	}
	rewrite_config_t cfg;
	rc = rewrite_config_parse(text, len, what, &cfg, &err);
	free(text);
	if (rc) {
		fprintf(stderr, "%s: --rewrite.to-delete-config: %s\n", argv[0], err.msg);
		return 2;
	}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0) {
		rewrite_config_release(&cfg);
		return rc;
	}
	rewrite_opts_t o = {.tmp_dir = tmp_dir, .dry_run = dry_run, .mark_old = delete_blocks, .out = stdout};
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		rewrite_result_t rr;
		if (rewrite_block(b, ids.v[i], &cfg, &o, &rr, &err)) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			rc = 1;
		}
	}
	rewrite_config_release(&cfg);
	bucket_free(b);
	return rc;
}

int cmd_tools_bucket(int argc, char **argv)
{
	static const cmd_t subs[] = {
		{"cleanup", "Cleans up all blocks marked for deletion.", cmd_cleanup},
		{"downsample", "Continuously downsamples blocks in an object store bucket.", cmd_downsample},
		{"inspect", "Inspect all blocks in the bucket in detailed, table-like way.", cmd_inspect},
		{"ls", "List all blocks in the bucket.", cmd_ls},
		{"mark", "Mark block for deletion or no-compact in a safe way.", cmd_mark},
		{"retention", "Retention applies retention policies on the given bucket.", cmd_retention},
		{"rewrite", "Rewrite chosen blocks in the bucket, while deleting series.", cmd_rewrite},
		{"upload-blocks", "Upload blocks to a bucket.", cmd_upload_blocks},
		{"verify", "Verify all blocks in the bucket against specified issues.", cmd_verify},
		{"web", "Web interface for remote storage bucket.", cmd_web},
	};
	const char *sub = argc > 1 ? argv[1] : NULL;
	for (size_t i = 0; sub && i < ARRAY_LEN(subs); i++) {
		if (strcmp(sub, subs[i].name) != 0)
			continue;
		char cmdline[128];
		snprintf(cmdline, sizeof cmdline, "%s %s", argv[0], sub);
		/* Thanos's short -o for --output. */
		char **args = xcalloc((size_t)argc, sizeof(char *));
		args[0] = cmdline;
		for (int k = 2; k < argc; k++)
			args[k - 1] = !strcmp(argv[k], "-o") ? "--output" : argv[k];
		int rc = subs[i].run(argc - 1, args);
		free(args);
		return rc;
	}
	FILE *out = sub && strcmp(sub, "--help") && strcmp(sub, "-h") ? stderr : stdout;
	if (sub && out == stderr)
		fprintf(stderr, "%s: unknown subcommand \"%s\"\n", argv[0], sub);
	fprintf(out, "usage: %s <command> [<flags>]\n\nCommands:\n", argv[0]);
	for (size_t i = 0; i < ARRAY_LEN(subs); i++)
		fprintf(out, "  %-15s %s\n", subs[i].name, subs[i].summary);
	return out == stderr ? 2 : 0;
}
