/*
 * walrec.c — WAL record encoders and decoders.
 */
#include "tsdb/walrec.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/varint.h"

int walrec_type(str_t rec)
{
	return rec.n ? (uint8_t)rec.p[0] : WALREC_UNKNOWN;
}

static void put_str(buf_t *b, str_t s)
{
	buf_put_uvarint(b, s.n);
	buf_append(b, s.p, s.n);
}

void walrec_series_begin(buf_t *b)
{
	buf_putc(b, WALREC_SERIES);
}

void walrec_series_add(buf_t *b, uint64_t ref, const labels_t *ls)
{
	buf_put_be64(b, ref);
	buf_put_uvarint(b, ls->n);
	for (size_t i = 0; i < ls->n; i++) {
		put_str(b, ls->v[i].name);
		put_str(b, ls->v[i].value);
	}
}

void walrec_samples_encode(buf_t *b, const walrec_sample_t *s, size_t n)
{
	buf_putc(b, WALREC_SAMPLES);
	if (!n)
		return;
	buf_reserve(b, 16 + n * 28);
	buf_put_be64(b, s[0].ref);
	buf_put_be64(b, (uint64_t)s[0].t);
	uint8_t *p = (uint8_t *)b->p + b->n;
	for (size_t i = 0; i < n; i++) {
		p += varint_put(p, (int64_t)(s[i].ref - s[0].ref));
		p += varint_put(p, s[i].t - s[0].t);
		uint64_t bits;
		memcpy(&bits, &s[i].v, 8);
		be64_put(p, bits);
		p += 8;
	}
	b->n = (size_t)(p - (uint8_t *)b->p);
	b->p[b->n] = 0;
}

void walrec_tombstones_encode(buf_t *b, const walrec_tombstone_t *t, size_t n)
{
	buf_putc(b, WALREC_TOMBSTONES);
	for (size_t i = 0; i < n; i++) {
		buf_put_be64(b, t[i].ref);
		buf_put_varint(b, t[i].mint);
		buf_put_varint(b, t[i].maxt);
	}
}

void walrec_metadata_begin(buf_t *b)
{
	buf_putc(b, WALREC_METADATA);
}

void walrec_metadata_add(buf_t *b, const walrec_meta_t *m)
{
	buf_put_uvarint(b, m->ref);
	buf_putc(b, (char)m->type);
	buf_put_uvarint(b, 2);
	put_str(b, STR("UNIT"));
	put_str(b, m->unit);
	put_str(b, STR("HELP"));
	put_str(b, m->help);
}

/* ---- decoding ---- */

static int bad(walrec_iter_t *it, err_t *err, const char *what)
{
	return err_set(err, ERR_CORRUPT, "wal record type %d: byte %zu: %s", walrec_type(it->rec), it->off,
	               what);
}

static const uint8_t *cur(const walrec_iter_t *it)
{
	return (const uint8_t *)it->rec.p + it->off;
}

static const uint8_t *end(const walrec_iter_t *it)
{
	return (const uint8_t *)it->rec.p + it->rec.n;
}

static bool get_uv(walrec_iter_t *it, uint64_t *v)
{
	int k = uvarint_get(cur(it), end(it), v);
	if (k <= 0)
		return false;
	it->off += (size_t)k;
	return true;
}

static bool get_v(walrec_iter_t *it, int64_t *v)
{
	int k = varint_get(cur(it), end(it), v);
	if (k <= 0)
		return false;
	it->off += (size_t)k;
	return true;
}

static bool get_be64(walrec_iter_t *it, uint64_t *v)
{
	if (it->rec.n - it->off < 8)
		return false;
	*v = be64_get(cur(it));
	it->off += 8;
	return true;
}

static bool get_str(walrec_iter_t *it, str_t *s)
{
	uint64_t n;
	if (!get_uv(it, &n) || n > it->rec.n - it->off)
		return false;
	*s = str_from((const char *)cur(it), (size_t)n);
	it->off += (size_t)n;
	return true;
}

int walrec_iter_init(walrec_iter_t *it, str_t rec, err_t *err)
{
	memset(it, 0, sizeof *it);
	it->rec = rec;
	it->off = 1;
	if (!rec.n)
		return err_set(err, ERR_CORRUPT, "wal record: empty");
	if (walrec_type(rec) == WALREC_SAMPLES && rec.n > 1) {
		uint64_t t;
		if (!get_be64(it, &it->base_ref) || !get_be64(it, &t))
			return bad(it, err, "samples header cut short");
		it->base_t = (int64_t)t;
	}
	return 0;
}

void walrec_iter_release(walrec_iter_t *it)
{
	free(it->lbuf);
	it->lbuf = NULL;
	it->lcap = 0;
}

int walrec_next_series(walrec_iter_t *it, uint64_t *ref, labels_t *ls, err_t *err)
{
	if (it->off >= it->rec.n)
		return 0;
	uint64_t n;
	if (!get_be64(it, ref) || !get_uv(it, &n) || n > (it->rec.n - it->off) / 2)
		return bad(it, err, "bad series entry");
	if (n > it->lcap) {
		it->lcap = alloc_grow_cap(it->lcap, (size_t)n);
		it->lbuf = xreallocarray(it->lbuf, it->lcap, sizeof(label_t));
	}
	for (size_t i = 0; i < n; i++)
		if (!get_str(it, &it->lbuf[i].name) || !get_str(it, &it->lbuf[i].value))
			return bad(it, err, "bad label string");
	ls->v = it->lbuf;
	ls->n = (size_t)n;
	return 1;
}

int walrec_next_sample(walrec_iter_t *it, walrec_sample_t *s, err_t *err)
{
	if (it->off >= it->rec.n)
		return 0;
	int64_t dref, dt;
	uint64_t bits;
	if (!get_v(it, &dref) || !get_v(it, &dt) || !get_be64(it, &bits))
		return bad(it, err, "bad sample entry");
	s->ref = it->base_ref + (uint64_t)dref;
	s->t = (int64_t)((uint64_t)it->base_t + (uint64_t)dt);
	memcpy(&s->v, &bits, 8);
	return 1;
}

int walrec_next_tombstone(walrec_iter_t *it, walrec_tombstone_t *t, err_t *err)
{
	if (it->off >= it->rec.n)
		return 0;
	if (!get_be64(it, &t->ref) || !get_v(it, &t->mint) || !get_v(it, &t->maxt))
		return bad(it, err, "bad tombstone entry");
	return 1;
}

int walrec_next_metadata(walrec_iter_t *it, walrec_meta_t *m, err_t *err)
{
	if (it->off >= it->rec.n)
		return 0;
	uint64_t nf;
	memset(m, 0, sizeof *m);
	if (!get_uv(it, &m->ref) || it->off >= it->rec.n)
		return bad(it, err, "bad metadata entry");
	m->type = *cur(it);
	it->off++;
	if (!get_uv(it, &nf) || nf > it->rec.n)
		return bad(it, err, "bad metadata field count");
	for (uint64_t i = 0; i < nf; i++) {
		str_t k, v;
		if (!get_str(it, &k) || !get_str(it, &v))
			return bad(it, err, "bad metadata field");
		if (str_eq(k, STR("UNIT")))
			m->unit = v;
		else if (str_eq(k, STR("HELP")))
			m->help = v;
	}
	return 1;
}
