/*
 * blockmerge_test.c — compaction of blocks written by the block writer: chunks passed through
 * unchanged where series do not overlap, overlapping samples merged (one-to-one and a custom
 * merger), deletions and tombstones applied, chunks outside their block trimmed, a corrupt input
 * named, the output verified.
 */
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/vec.h"
#include "test.h"
#include "tsdb/blockmerge.h"
#include "tsdb/xor.h"
#include "tsdb_testutil.h"

#define H (3600 * 1000ll)

typedef struct sample {
	int64_t t;
	double v;
} sample_t;

typedef VEC(sample_t) samples_t;

/* A block of series m{i="<s>"} for s in [s0, s1), samples every `step` ms in [from, to), value
 * f(s, t) = s * 1e6 + t / 1000 + bias. */
static void write_block(const char *parent, int s0, int s1, int64_t from, int64_t to, int64_t step,
                        double bias, char *out)
{
	block_writer_t *bw;
	err_t err = {0};
	if (block_writer_new(&bw, parent, NULL, &err))
		TEST_FAILF("%s", err.msg);
	arena_t a;
	arena_init(&a, 0);
	size_t n = (size_t)((to - from + step - 1) / step);
	int64_t *t = xcalloc(n, sizeof *t);
	double *v = xcalloc(n, sizeof *v);
	for (int s = s0; s < s1; s++) {
		label_t lv[2] = {{STR("__name__"), STR("m")}, {STR("i"), str_c(arena_printf(&a, "%03d", s))}};
		labels_t ls = {lv, 2};
		for (size_t k = 0; k < n; k++)
			t[k] = from + (int64_t)k * step, v[k] = s * 1e6 + (double)t[k] / 1000 + bias;
		if (block_writer_add_series(bw, &ls, t, v, n, &err))
			TEST_FAILF("%s", err.msg);
	}
	if (block_writer_finish(bw, NULL, out, &err))
		TEST_FAILF("%s", err.msg);
	free(t);
	free(v);
	arena_release(&a);
}

/* Every series of a block: labels "i" value -> samples (in series order). */
typedef struct dump {
	char (*ids)[8];
	samples_t *s;
	size_t n;
} dump_t;

static void dump_block(const char *dir, dump_t *d)
{
	memset(d, 0, sizeof *d);
	block_t *b;
	err_t err = {0};
	if (block_open(&b, dir, &err))
		TEST_FAILF("open %s: %s", dir, err.msg);
	arena_t a;
	arena_init(&a, 0);
	series_set_t *ss;
	if (b->q.ops->select(&b->q, &a, NULL, 0, INT64_MIN, INT64_MAX, NULL, &ss, &err))
		TEST_FAILF("select: %s", err.msg);
	int rc;
	while ((rc = series_set_next(ss, &err)) == 1) {
		d->ids = xreallocarray(d->ids, d->n + 1, sizeof *d->ids);
		d->s = xreallocarray(d->s, d->n + 1, sizeof *d->s);
		bool found;
		str_t v = labels_get(series_set_labels(ss), STR("i"), &found);
		snprintf(d->ids[d->n], 8, "%.*s", (int)v.n, v.p);
		memset(&d->s[d->n], 0, sizeof d->s[d->n]);
		sample_iter_t *it = series_set_samples(ss);
		int64_t t[64];
		double vv[64];
		int k;
		while ((k = sample_iter_next_batch(it, t, vv, 64, &err)) > 0)
			for (int i = 0; i < k; i++)
				VEC_PUSH(&d->s[d->n], ((sample_t){t[i], vv[i]}));
		if (k < 0)
			TEST_FAILF("samples: %s", err.msg);
		d->n++;
	}
	if (rc < 0)
		TEST_FAILF("next: %s", err.msg);
	series_set_close(ss);
	arena_release(&a);
	block_close(b);
}

static void dump_free(dump_t *d)
{
	for (size_t i = 0; i < d->n; i++)
		VEC_FREE(&d->s[i]);
	free(d->s);
	free(d->ids);
}

static block_t *open_or_fail(const char *dir)
{
	block_t *b;
	err_t err = {0};
	if (block_open(&b, dir, &err))
		TEST_FAILF("open %s: %s", dir, err.msg);
	return b;
}

static void meta_for(block_meta_t *m, block_t *const *in, size_t n)
{
	memset(m, 0, sizeof *m);
	m->level = 2;
	for (size_t i = 0; i < n; i++)
		meta_add_source(m, in[i]->meta.ulid);
	m->has_thanos = true;
	meta_set_label(m, "cluster", "c1");
	m->source = xstrdup("compactor");
}

TEST(non_overlapping_blocks_pass_chunks_through)
{
	char parent[4096], dirs[3][4096], out[4096];
	tu_tmpdir(parent);
	/* Series 0..9 in every block, series 10..11 only in the middle one. */
	write_block(parent, 0, 10, 0, 2 * H, 15000, 0, dirs[0]);
	write_block(parent, 0, 12, 2 * H, 4 * H, 15000, 0, dirs[1]);
	write_block(parent, 0, 10, 4 * H, 6 * H, 15000, 0, dirs[2]);
	block_t *in[3] = {open_or_fail(dirs[0]), open_or_fail(dirs[1]), open_or_fail(dirs[2])};
	uint64_t in_chunks = 0, in_samples = 0;
	for (int i = 0; i < 3; i++)
		in_chunks += in[i]->meta.num_chunks, in_samples += in[i]->meta.num_samples;
	block_meta_t m;
	meta_for(&m, in, 3);
	blockmerge_result_t res;
	err_t err = {0};
	snprintf(out, sizeof out, "%s/out", parent);
	if (blockmerge_run(in, 3, out, &m, NULL, &res, &err))
		TEST_FAILF("%s", err.msg);
	CHECK(!res.empty);
	CHECK_EQ_INT(res.bad_input, -1);
	CHECK_EQ_U64(res.series, 12);
	CHECK_EQ_U64(res.chunks, in_chunks);
	CHECK_EQ_U64(res.chunks_copied, in_chunks);
	CHECK_EQ_U64(res.chunks_reencoded, 0);
	CHECK_EQ_U64(res.samples, in_samples);
	CHECK_EQ_INT(blockmerge_verify(res.dir, &err), 0);
	block_t *o = open_or_fail(res.dir);
	CHECK_EQ_INT(o->meta.mint, 0);
	CHECK_EQ_INT(o->meta.maxt, 6 * H - 15000 + 1);
	CHECK_EQ_INT(o->meta.level, 2);
	CHECK_EQ_INT(o->meta.nsources, 3);
	CHECK_EQ_U64(o->meta.num_samples, in_samples);
	CHECK_STR(o->meta.source, "compactor");
	CHECK(o->meta.series_max_size > 0 && o->meta.chunk_max_size > 0);
	block_close(o);
	dump_t d;
	dump_block(res.dir, &d);
	CHECK_EQ_INT(d.n, 12);
	CHECK_STR(d.ids[11], "011");
	CHECK_EQ_INT(d.s[0].n, 6 * 240);
	CHECK_EQ_INT(d.s[11].n, 480);
	for (size_t k = 0; k < d.s[3].n; k++) {
		CHECK_EQ_INT(d.s[3].v[k].t, (int64_t)k * 15000);
		CHECK_DBL(d.s[3].v[k].v, 3e6 + (double)k * 15);
	}
	dump_free(&d);
	meta_release(&m);
	for (int i = 0; i < 3; i++)
		block_close(in[i]);
	tu_rm_rf(parent);
}

TEST(overlapping_blocks_one_to_one)
{
	char parent[4096], a[4096], b[4096], out[4096];
	tu_tmpdir(parent);
	/* Same series, same timestamps for [1h, 2h) (identical samples, like receive replicas), b goes on
	 * to 3h; b also has a series a lacks. */
	write_block(parent, 0, 5, 0, 2 * H, 15000, 0, a);
	write_block(parent, 0, 6, 1 * H, 3 * H, 15000, 0, b);
	block_t *in[2] = {open_or_fail(a), open_or_fail(b)};
	block_meta_t m;
	meta_for(&m, in, 2);
	blockmerge_result_t res;
	err_t err = {0};
	snprintf(out, sizeof out, "%s/out", parent);
	CHECK_EQ_INT(blockmerge_run(in, 2, out, &m, NULL, &res, &err), 0);
	CHECK_EQ_INT(blockmerge_verify(res.dir, &err), 0);
	CHECK(res.chunks_reencoded > 0);
	CHECK_EQ_U64(res.samples, 5 * (3 * H / 15000) + 2 * H / 15000);
	dump_t d;
	dump_block(res.dir, &d);
	CHECK_EQ_INT(d.n, 6);
	CHECK_EQ_INT(d.s[0].n, 3 * H / 15000);
	for (size_t k = 0; k < d.s[2].n; k++) {
		CHECK_EQ_INT(d.s[2].v[k].t, (int64_t)k * 15000);
		CHECK_DBL(d.s[2].v[k].v, 2e6 + (double)k * 15);
	}
	dump_free(&d);
	/* Re-encoded chunks hold at most 120 samples. */
	block_t *o = open_or_fail(res.dir);
	CHECK(o->meta.num_chunks >= (uint64_t)5 * (3 * H / 15000) / 120);
	block_close(o);
	meta_release(&m);
	block_close(in[0]);
	block_close(in[1]);
	tu_rm_rf(parent);
}

/* A merger taking only the last input's samples where inputs overlap (to see it is used). */
typedef struct last_only {
	blockmerge_merger_t base;
	int calls;
} last_only_t;

static sample_iter_t *take_last(blockmerge_merger_t *m, sample_iter_t *const *its, size_t n)
{
	((last_only_t *)m)->calls++;
	return its[n - 1];
}

TEST(custom_merger_and_replica_values)
{
	char parent[4096], a[4096], b[4096], out[4096];
	tu_tmpdir(parent);
	write_block(parent, 0, 2, 0, 2 * H, 15000, 0.5, a);  /* replica a: values +0.5 */
	write_block(parent, 0, 2, 0, 2 * H, 15000, 0.25, b); /* replica b: values +0.25 */
	block_t *in[2] = {open_or_fail(a), open_or_fail(b)};
	block_meta_t m;
	meta_for(&m, in, 2);
	blockmerge_result_t res;
	err_t err = {0};
	snprintf(out, sizeof out, "%s/out", parent);
	/* one-to-one: identical timestamps keep the first input's value */
	CHECK_EQ_INT(blockmerge_run(in, 2, out, &m, NULL, &res, &err), 0);
	dump_t d;
	dump_block(res.dir, &d);
	CHECK_EQ_INT(d.s[1].n, 2 * H / 15000);
	CHECK_DBL(d.s[1].v[7].v, 1e6 + 105 + 0.5);
	dump_free(&d);
	last_only_t lo = {{take_last}, 0};
	blockmerge_opts_t o = {.merger = &lo.base};
	CHECK_EQ_INT(blockmerge_run(in, 2, out, &m, &o, &res, &err), 0);
	CHECK(lo.calls > 0);
	dump_block(res.dir, &d);
	CHECK_DBL(d.s[1].v[7].v, 1e6 + 105 + 0.25);
	dump_free(&d);
	meta_release(&m);
	block_close(in[0]);
	block_close(in[1]);
	tu_rm_rf(parent);
}

/* Deletes series i="001" entirely and [30m, 40m] of every other series. */
static size_t deletions(void *arg, const labels_t *ls, const tomb_interval_t **out)
{
	static const tomb_interval_t all = {0, INT64_MIN, INT64_MAX}, part = {0, 30 * 60000, 40 * 60000};
	(void)arg;
	bool found;
	*out = str_eq_c(labels_get(ls, STR("i"), &found), "001") ? &all : &part;
	return 1;
}

TEST(deletions_tombstones_and_out_of_range_chunks)
{
	char parent[4096], a[4096], out[4096];
	tu_tmpdir(parent);
	write_block(parent, 0, 3, 0, 2 * H, 15000, 0, a);
	/* Tombstone: series 3 (the third series, id from the index) loses [1h, 1h+59s]. */
	block_t *in0 = open_or_fail(a);
	uint32_t id = 0;
	err_t err = {0};
	for (int k = 0; k < 3; k++)
		CHECK_EQ_INT(index_reader_next_series(&in0->ix, &id, &err), 0);
	tomb_interval_t tv = {id, H, H + 59999};
	CHECK_EQ_INT(tombstones_write(a, &tv, 1, &err), 0);
	/* The block's meta range shrunk to [0, 1h30m): samples after it are trimmed (Prometheus issue 347).
	 */
	block_close(in0);
	block_meta_t bm;
	CHECK_EQ_INT(meta_read(&bm, a, &err), 0);
	bm.maxt = 90 * 60000;
	CHECK_EQ_INT(meta_write(&bm, a, &err), 0);
	meta_release(&bm);
	block_t *in[1] = {open_or_fail(a)};
	block_meta_t m;
	meta_for(&m, in, 1);
	blockmerge_opts_t o = {.deletions = deletions};
	blockmerge_result_t res;
	snprintf(out, sizeof out, "%s/out", parent);
	CHECK_EQ_INT(blockmerge_run(in, 1, out, &m, &o, &res, &err), 0);
	CHECK_EQ_INT(blockmerge_verify(res.dir, &err), 0);
	dump_t d;
	dump_block(res.dir, &d);
	CHECK_EQ_INT(d.n, 2);
	CHECK_STR(d.ids[0], "000");
	CHECK_STR(d.ids[1], "002");
	/* [0, 90m) every 15s = 360, minus [30m, 40m] = 41 samples */
	CHECK_EQ_INT(d.s[0].n, 360 - 41);
	CHECK_EQ_INT(d.s[1].n, 360 - 41 - 4); /* and the tombstone's 4 samples in [1h, 1h+59s] */
	for (size_t k = 0; k < d.s[1].n; k++) {
		int64_t t = d.s[1].v[k].t;
		CHECK(t < 90 * 60000);
		CHECK(t < 30 * 60000 || t > 40 * 60000);
		CHECK(t < H || t > H + 59999);
	}
	dump_free(&d);
	meta_release(&m);
	block_close(in[0]);
	tu_rm_rf(parent);
}

static size_t delete_all(void *arg, const labels_t *ls, const tomb_interval_t **out)
{
	static const tomb_interval_t all = {0, INT64_MIN, INT64_MAX};
	(void)arg, (void)ls;
	*out = &all;
	return 1;
}

TEST(empty_result_writes_nothing)
{
	char parent[4096], a[4096], out[4096];
	tu_tmpdir(parent);
	write_block(parent, 0, 3, 0, H, 15000, 0, a);
	block_t *in[1] = {open_or_fail(a)};
	block_meta_t m;
	meta_for(&m, in, 1);
	blockmerge_opts_t o = {.deletions = delete_all};
	blockmerge_result_t res;
	err_t err = {0};
	snprintf(out, sizeof out, "%s/out", parent);
	CHECK_EQ_INT(blockmerge_run(in, 1, out, &m, &o, &res, &err), 0);
	CHECK(res.empty);
	CHECK_EQ_U64(res.series, 0);
	meta_release(&m);
	block_close(in[0]);
	tu_rm_rf(parent);
}

TEST(corrupt_chunk_names_the_input)
{
	char parent[4096], a[4096], b[4096], out[4096];
	tu_tmpdir(parent);
	write_block(parent, 0, 3, 0, H, 15000, 0, a);
	write_block(parent, 0, 3, H, 2 * H, 15000, 0, b);
	/* Flip a byte in b's first chunk segment, after the header. */
	char seg[4200];
	snprintf(seg, sizeof seg, "%s/chunks/000001", b);
	size_t len;
	uint8_t *p = tu_read_file(seg, &len);
	p[40] ^= 0xff;
	tu_write_file(seg, p, len);
	free(p);
	block_t *in[2] = {open_or_fail(a), open_or_fail(b)};
	block_meta_t m;
	meta_for(&m, in, 2);
	blockmerge_result_t res;
	err_t err = {0};
	snprintf(out, sizeof out, "%s/out", parent);
	CHECK(blockmerge_run(in, 2, out, &m, NULL, &res, &err) != 0);
	CHECK_EQ_INT(res.bad_input, 1);
	CHECK(strstr(err.msg, b) != NULL);
	/* nothing left behind under out */
	CHECK_EQ_INT(rmdir(out), 0);
	/* verify catches a corrupt block too */
	CHECK(blockmerge_verify(b, &err) != 0);
	CHECK(blockmerge_verify(a, &err) == 0);
	meta_release(&m);
	block_close(in[0]);
	block_close(in[1]);
	tu_rm_rf(parent);
}

TEST_MAIN()
