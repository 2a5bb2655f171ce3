/*
 * indextoc_test.c — the shared index v2 table decoders on hand-built tables: symbols (one- and
 * multi-byte lengths, lookups by ordinal and by value across sample boundaries), the postings offset
 * table (grouping, samples, finds, the next entry's position, offset range and order), TOC and section
 * framing, and every fault code with where it points.
 */
#include "test.h"

#include "base/crc32c.h"
#include "base/str.h"
#include "base/varint.h"
#include "tsdb/indextoc.h"

static void put_str(buf_t *b, const char *s, size_t n)
{
	buf_put_uvarint(b, n);
	buf_append(b, s, n);
}

/* Symbol table body: count, then n symbols "s000".. with every 7th one 200 bytes long (two-byte
 * length); sorted because of the zero-padded prefix. */
static void symbols_body(buf_t *b, uint32_t n)
{
	uint8_t c[4];
	be32_put(c, n);
	buf_append(b, c, 4);
	for (uint32_t i = 0; i < n; i++) {
		char s[256];
		int l = snprintf(s, sizeof s, "s%03u", i);
		if (i % 7 == 0) {
			memset(s + l, 'x', 200 - (size_t)l);
			l = 200;
		}
		put_str(b, s, (size_t)l);
	}
}

TEST(symbols_lookup_across_samples_and_long_strings)
{
	buf_t b = BUF_INIT;
	symbols_body(&b, 100);
	indextoc_symbols_t s;
	indextoc_fault_t f;
	CHECK_EQ_INT(indextoc_symbols_init(&s, (uint8_t *)b.p, b.n, &f), INDEXTOC_OK);
	CHECK_EQ_INT(s.n, 100);
	CHECK_EQ_INT(indextoc_symbols_mem(&s), 4 * sizeof(uint32_t));
	for (uint32_t i = 0; i < 100; i++) {
		str_t v = indextoc_symbol(&s, i);
		char want[8];
		snprintf(want, sizeof want, "s%03u", i);
		CHECK(v.n == (i % 7 ? 4u : 200u) && !memcmp(v.p, want, 4));
		uint32_t idx = 1000;
		CHECK(indextoc_symbol_find(&s, v, &idx));
		CHECK_EQ_INT(idx, i);
	}
	uint32_t idx;
	CHECK(!indextoc_symbol_find(&s, STR("s0005"), &idx)); /* between s000x.. and s001 */
	CHECK(!indextoc_symbol_find(&s, STR("a"), &idx));
	CHECK(!indextoc_symbol_find(&s, STR("z"), &idx));
	indextoc_symbols_release(&s);

	/* faults: short body, absurd count, a symbol running past the end */
	CHECK_EQ_INT(indextoc_symbols_init(&s, (uint8_t *)b.p, 3, &f), INDEXTOC_SHORT);
	indextoc_symbols_release(&s);
	uint8_t big[8] = {0, 0, 1, 0};
	CHECK_EQ_INT(indextoc_symbols_init(&s, big, sizeof big, &f), INDEXTOC_SYM_COUNT);
	CHECK_EQ_INT(f.value, 256);
	indextoc_symbols_release(&s);
	size_t cut = b.n - 2; /* inside the last symbol */
	CHECK_EQ_INT(indextoc_symbols_init(&s, (uint8_t *)b.p, cut, &f), INDEXTOC_SYM_ENTRY);
	CHECK_EQ_INT(f.entry, 99);
	CHECK_EQ_INT(f.at - (uint8_t *)b.p, b.n - 5); /* "s099" with its length byte */
	indextoc_symbols_release(&s);
	buf_reset(&b);
	uint8_t c[4];
	be32_put(c, 1);
	buf_append(&b, c, 4);
	buf_append(&b, "\x80\x80", 2); /* unterminated length varint */
	CHECK_EQ_INT(indextoc_symbols_init(&s, (uint8_t *)b.p, b.n, &f), INDEXTOC_SYM_ENTRY);
	CHECK_EQ_INT(f.entry, 0);
	indextoc_symbols_release(&s);
	buf_release(&b);
}

/* Postings offset table body: "" = "" first (as Prometheus writes the all-postings entry), then
 * names a (3 values), b (70 values), c (1 value), offsets ascending by 16. */
static uint32_t ptab_body(buf_t *b)
{
	uint8_t c[4];
	be32_put(c, 1 + 3 + 70 + 1);
	buf_append(b, c, 4);
	uint64_t off = 16;
	struct {
		const char *name;
		int n;
	} names[] = {{"", 1}, {"a", 3}, {"b", 70}, {"c", 1}};
	for (size_t i = 0; i < 4; i++)
		for (int k = 0; k < names[i].n; k++) {
			char v[16];
			int l = names[i].name[0] ? snprintf(v, sizeof v, "v%02d", k) : 0;
			buf_putc(b, 2);
			put_str(b, names[i].name, strlen(names[i].name));
			put_str(b, v, (size_t)l);
			buf_put_uvarint(b, off);
			off += 16;
		}
	return (uint32_t)off;
}

TEST(postings_offset_table_groups_samples_and_finds)
{
	buf_t b = BUF_INIT;
	uint64_t end = ptab_body(&b);
	indextoc_ptab_t t;
	indextoc_fault_t f;
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)b.p, b.n, end, true, &f), INDEXTOC_OK);
	CHECK_EQ_INT(t.nnames, 4);
	const indextoc_name_t *nb = indextoc_ptab_name(&t, STR("b"));
	CHECK(nb && nb->nvalues == 70 && nb->nsamples == 3);
	CHECK(!indextoc_ptab_name(&t, STR("bb")));
	CHECK(!indextoc_ptab_name(&t, STR("d")));
	CHECK_EQ_INT(indextoc_ptab_mem(&t), t.cap * sizeof(indextoc_name_t) + 6 * sizeof(indextoc_sample_t));
	/* every value of b found, with the offset it was written with, and next = the following entry */
	for (int k = 0; k < 70; k++) {
		char v[8];
		snprintf(v, sizeof v, "v%02d", k);
		uint64_t off;
		uint32_t next;
		CHECK(indextoc_ptab_find(&t, nb, str_c(v), &off, &next));
		CHECK_EQ_INT(off, 16 * (1 + 3 + k + 1));
		str_t nv;
		uint64_t noff;
		indextoc_ptab_entry(&t, next, &nv, &noff);
		CHECK_EQ_INT(noff, off + 16);
	}
	uint64_t off;
	uint32_t next;
	CHECK(!indextoc_ptab_find(&t, nb, STR("v70"), &off, &next));
	CHECK(!indextoc_ptab_find(&t, nb, STR("v0"), &off, &next));
	CHECK(!indextoc_ptab_find(&t, nb, STR("a"), &off, &next));
	const indextoc_name_t *nc = indextoc_ptab_name(&t, STR("c"));
	CHECK(indextoc_ptab_find(&t, nc, STR("v00"), &off, &next));
	CHECK(t.p + next == t.end); /* the last entry */
	/* walking a name's entries gives its values in order */
	const indextoc_name_t *na = indextoc_ptab_name(&t, STR("a"));
	int k = 0;
	for (uint32_t pos = na->first; pos < na->end; k++) {
		str_t v;
		pos = indextoc_ptab_entry(&t, pos, &v, &off);
		char want[8];
		snprintf(want, sizeof want, "v%02d", k);
		CHECK(str_eq(v, str_c(want)));
	}
	CHECK_EQ_INT(k, 3);
	indextoc_ptab_release(&t);

	/* offsets: at or past max_off is out of range; descending only rejected when asked */
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)b.p, b.n, end - 16, true, &f), INDEXTOC_PT_OFFSET);
	CHECK_EQ_INT(f.entry, 74);
	CHECK_EQ_INT(f.value, end - 16);
	indextoc_ptab_release(&t);
	buf_t d = BUF_INIT;
	uint8_t c[4];
	be32_put(c, 2);
	buf_append(&d, c, 4);
	buf_append(&d, "\x02\x01x\x01y\x20", 6);
	buf_append(&d, "\x02\x01x\x01z\x10", 6);
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, d.n, 100, false, &f), INDEXTOC_OK);
	indextoc_ptab_release(&t);
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, d.n, 100, true, &f), INDEXTOC_PT_OFFSET);
	CHECK(f.entry == 1 && f.at == (uint8_t *)d.p + 10 && f.value == 0x10);
	indextoc_ptab_release(&t);
	/* names out of order: z then x */
	d.p[6] = 'z';
	d.p[15] = 0x30;
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, d.n, 100, true, &f), INDEXTOC_PT_UNSORTED);
	CHECK_EQ_INT(f.entry, 1);
	indextoc_ptab_release(&t);
	/* malformed: wrong count byte, truncated entry, more entries than bytes */
	d.p[10] = 3;
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, d.n, 100, true, &f), INDEXTOC_PT_ENTRY);
	CHECK_EQ_INT(f.entry, 1);
	indextoc_ptab_release(&t);
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, 8, 100, true, &f), INDEXTOC_PT_ENTRY);
	CHECK_EQ_INT(f.entry, 0);
	indextoc_ptab_release(&t);
	CHECK_EQ_INT(indextoc_ptab_init(&t, (uint8_t *)d.p, 2, 100, true, &f), INDEXTOC_SHORT);
	indextoc_ptab_release(&t);
	buf_release(&d);
	buf_release(&b);
}

TEST(toc_and_section_framing)
{
	uint8_t toc[52];
	for (int i = 0; i < 6; i++)
		be64_put(toc + 8 * i, (uint64_t)(i + 1) * 100);
	be32_put(toc + 48, crc32c(0, toc, 48));
	uint64_t v[6];
	indextoc_fault_t f;
	CHECK_EQ_INT(indextoc_toc(toc, 600, v, &f), INDEXTOC_OK);
	CHECK(v[0] == 100 && v[5] == 600);
	CHECK_EQ_INT(indextoc_toc(toc, 450, v, &f), INDEXTOC_TOC_RANGE);
	CHECK(f.entry == 4 && f.value == 500 && f.at == toc + 32);
	toc[3] ^= 1;
	CHECK_EQ_INT(indextoc_toc(toc, 600, v, &f), INDEXTOC_TOC_CRC);

	/* [len | body | crc] at offset 3 of a 20-byte buffer */
	uint8_t p[20] = {0};
	be32_put(p + 3, 5);
	memcpy(p + 7, "hello", 5);
	be32_put(p + 12, crc32c(0, p + 7, 5));
	const uint8_t *body;
	size_t bl;
	CHECK_EQ_INT(indextoc_section(p, sizeof p, 3, 0, &body, &bl, &f), INDEXTOC_OK);
	CHECK(body == p + 7 && bl == 5);
	CHECK_EQ_INT(indextoc_section(p, 16, 3, 0, &body, &bl, &f), INDEXTOC_OK);
	CHECK_EQ_INT(indextoc_section(p, 15, 3, 0, &body, &bl, &f), INDEXTOC_SEC_LEN);
	CHECK_EQ_INT(f.value, 5);
	CHECK_EQ_INT(indextoc_section(p, sizeof p, 3, 6, &body, &bl, &f), INDEXTOC_SEC_LEN);
	CHECK_EQ_INT(indextoc_section(p, sizeof p, 17, 0, &body, &bl, &f), INDEXTOC_SEC_NOLEN);
	p[9] = 'L';
	CHECK_EQ_INT(indextoc_section(p, sizeof p, 3, 0, &body, &bl, &f), INDEXTOC_SEC_CRC);
}

TEST(str_fast_and_slow_lengths)
{
	uint8_t b[300] = {0};
	b[0] = 3;
	memcpy(b + 1, "abc", 3);
	const uint8_t *p = b;
	str_t s;
	CHECK_EQ_INT(indextoc_str(&p, b + 4, &s), 0);
	CHECK(p == b + 4 && str_eq(s, STR("abc")));
	p = b;
	CHECK_EQ_INT(indextoc_str(&p, b + 3, &s), -1); /* runs past end */
	CHECK(p == b);
	p = b;
	CHECK_EQ_INT(indextoc_str(&p, b, &s), -1); /* empty input */
	b[0] = 0x80 | 10, b[1] = 1;                /* 138 */
	memset(b + 2, 'y', 138);
	p = b;
	CHECK_EQ_INT(indextoc_str(&p, b + 140, &s), 0);
	CHECK(p == b + 140 && s.n == 138 && s.p[137] == 'y');
	p = b;
	CHECK_EQ_INT(indextoc_str(&p, b + 139, &s), -1);
	p = b;
	CHECK_EQ_INT(indextoc_str(&p, b + 1, &s), -1); /* varint cut */
}

TEST_MAIN()
