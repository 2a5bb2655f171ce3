/*
 * seriesenc_test.c — the hand-written SeriesResponse encoder writes exactly the bytes protobuf-c's
 * thanos__series_response__pack writes for the same message: random series (empty and long label
 * strings, no/zero/negative/large times, every AggrChunk sub-chunk present or not, chunk types,
 * empty and long data, hashes), the empty series, and one message of megabytes (four-byte lengths).
 * The bytes also decode back with protobuf-c to what was encoded.
 */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "store/seriesenc.h"
#include "storepb_rpc.pb-c.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	return test_xorshift(&rng);
}

static size_t rlen(size_t max)
{
	switch (rnd() % 4) {
	case 0:
		return 0;
	case 1:
		return 1 + rnd() % 8;
	default:
		return rnd() % (max + 1);
	}
}

static int64_t rtime(void)
{
	switch (rnd() % 5) {
	case 0:
		return 0;
	case 1:
		return -(int64_t)(rnd() % 100000000000ull); /* negative: ten bytes */
	case 2:
		return (int64_t)(rnd() % 128);
	default:
		return 1796652000000 + (int64_t)(rnd() % 100000000);
	}
}

/* A NUL-free string of n bytes (protobuf-c strings end at NUL). */
static char *rstr(size_t n)
{
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(1 + rnd() % 255);
	s[n] = 0;
	return s;
}

static Thanos__Chunk *rchunk(size_t maxdata)
{
	Thanos__Chunk *c = malloc(sizeof *c);
	thanos__chunk__init(c);
	c->type = (Thanos__Chunk__Encoding)(rnd() % 3);
	c->data.len = rlen(maxdata);
	c->data.data = (uint8_t *)rstr(c->data.len);
	c->hash = rnd() % 3 == 0 ? rnd() : 0;
	return c;
}

typedef struct msg {
	labels_t ls;
	Thanos__Label *pl, **plp;
	Thanos__AggrChunk **cs;
	size_t nc;
} msg_t;

static void make(msg_t *m, size_t nl, size_t nc, size_t maxstr, size_t maxdata)
{
	m->ls.n = nl;
	m->ls.v = calloc(nl + 1, sizeof *m->ls.v);
	m->pl = calloc(nl + 1, sizeof *m->pl);
	m->plp = calloc(nl + 1, sizeof *m->plp);
	for (size_t i = 0; i < nl; i++) {
		size_t a = rlen(maxstr), b = rlen(maxstr);
		char *name = rstr(a), *value = rstr(b);
		m->ls.v[i] = (label_t){str_from(name, a), str_from(value, b)};
		thanos__label__init(&m->pl[i]);
		m->pl[i].name = name;
		m->pl[i].value = value;
		m->plp[i] = &m->pl[i];
	}
	m->nc = nc;
	m->cs = calloc(nc + 1, sizeof *m->cs);
	for (size_t i = 0; i < nc; i++) {
		Thanos__AggrChunk *a = malloc(sizeof *a);
		thanos__aggr_chunk__init(a);
		a->min_time = rtime();
		a->max_time = rtime();
		if (rnd() % 4) {
			a->raw = rchunk(maxdata);
		} else { /* a downsampled chunk: some aggregates */
			Thanos__Chunk **f[] = {&a->count, &a->sum, &a->min, &a->max, &a->counter};
			for (int k = 0; k < 5; k++)
				if (rnd() % 2)
					*f[k] = rchunk(maxdata);
		}
		m->cs[i] = a;
	}
}

static void chunk_free(Thanos__Chunk *c)
{
	if (c) {
		free(c->data.data);
		free(c);
	}
}

static void release(msg_t *m)
{
	for (size_t i = 0; i < m->ls.n; i++) {
		free(m->pl[i].name);
		free(m->pl[i].value);
	}
	for (size_t i = 0; i < m->nc; i++) {
		Thanos__AggrChunk *a = m->cs[i];
		chunk_free(a->raw), chunk_free(a->count), chunk_free(a->sum);
		chunk_free(a->min), chunk_free(a->max), chunk_free(a->counter);
		free(a);
	}
	free(m->ls.v), free(m->pl), free(m->plp), free(m->cs);
}

/* Both encoders agree byte for byte, and protobuf-c reads ours back. */
static bool same_as_protobuf_c(const msg_t *m)
{
	Thanos__Series s = THANOS__SERIES__INIT;
	s.n_labels = m->ls.n, s.labels = m->plp, s.n_chunks = m->nc, s.chunks = m->cs;
	Thanos__SeriesResponse r = THANOS__SERIES_RESPONSE__INIT;
	r.result_case = THANOS__SERIES_RESPONSE__RESULT_SERIES;
	r.series = &s;
	size_t want = thanos__series_response__get_packed_size(&r);
	size_t got = seriesenc_size(&m->ls, m->cs, m->nc);
	if (want != got) {
		fprintf(stderr, "size: protobuf-c %zu, seriesenc %zu\n", want, got);
		return false;
	}
	uint8_t *a = malloc(want + 1), *b = malloc(got + 1);
	thanos__series_response__pack(&r, a);
	uint8_t *end = seriesenc_write(b, got, &m->ls, m->cs, m->nc);
	bool ok = (size_t)(end - b) == got && memcmp(a, b, got) == 0;
	if (!ok)
		for (size_t i = 0; i < got; i++)
			if (a[i] != b[i]) {
				fprintf(stderr, "first difference at byte %zu of %zu: %02x vs %02x\n", i, got,
				        a[i], b[i]);
				break;
			}
	Thanos__SeriesResponse *d = thanos__series_response__unpack(NULL, got, b);
	ok = ok && d && d->result_case == THANOS__SERIES_RESPONSE__RESULT_SERIES &&
	     d->series->n_labels == m->ls.n && d->series->n_chunks == m->nc;
	for (size_t i = 0; ok && i < m->nc; i++)
		ok = d->series->chunks[i]->min_time == m->cs[i]->min_time &&
		     d->series->chunks[i]->max_time == m->cs[i]->max_time;
	if (d)
		thanos__series_response__free_unpacked(d, NULL);
	free(a);
	free(b);
	return ok;
}

TEST(random_series_equal_protobuf_c)
{
	for (int i = 0; i < 3000; i++) {
		msg_t m;
		make(&m, rnd() % 8, rnd() % 6, 300, 400);
		if (!same_as_protobuf_c(&m))
			TEST_FAILF("case %d differs (%zu labels, %zu chunks)", i, m.ls.n, m.nc);
		release(&m);
	}
}

TEST(empty_and_large_series)
{
	msg_t m;
	make(&m, 0, 0, 0, 0);
	CHECK(same_as_protobuf_c(&m));
	CHECK_EQ_INT(seriesenc_size(&m.ls, m.cs, 0), 2); /* 0a 00 */
	release(&m);
	/* ~3 MB: the series' length takes four bytes, chunks' three */
	make(&m, 3, 120, 20000, 50000);
	for (size_t i = 0; i < m.nc; i++) {
		if (!m.cs[i]->raw)
			m.cs[i]->raw = rchunk(0);
		free(m.cs[i]->raw->data.data);
		m.cs[i]->raw->data.len = 20000 + rnd() % 30000;
		m.cs[i]->raw->data.data = (uint8_t *)rstr(m.cs[i]->raw->data.len);
	}
	CHECK(seriesenc_size(&m.ls, m.cs, m.nc) > (1u << 21));
	CHECK(same_as_protobuf_c(&m));
	release(&m);
}

TEST_MAIN()
