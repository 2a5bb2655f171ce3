#include "test.h"

#include <math.h>

#include "base/str.h"
#include "base/vec.h"

TEST(slices)
{
	str_t s = STR("  hello world \n");
	str_t t = str_trim(s);
	CHECK_SLICE(t, "hello world");
	str_t h, r;
	CHECK(str_split2(t, ' ', &h, &r));
	CHECK_SLICE(h, "hello");
	CHECK_SLICE(r, "world");
	CHECK(!str_split2(h, '=', &h, &r));
	CHECK_EQ_INT(r.n, 0);
	CHECK(str_has_prefix(t, STR("hell")));
	CHECK(str_has_suffix(t, STR("rld")));
	CHECK(!str_has_prefix(STR("a"), STR("ab")));
	CHECK(str_cmp(STR("a"), STR("ab")) < 0);
	CHECK(str_cmp(STR("b"), STR("ab")) > 0);
	CHECK(str_cmp(STR(""), STR("")) == 0);
	CHECK_EQ_INT(str_chr(STR("abc"), 'c'), 2);
	CHECK_EQ_INT(str_chr(STR("abc"), 'z'), -1);
	CHECK_SLICE(str_sub(STR("abcdef"), 2, 100), "cdef");
}

TEST(integers)
{
	int64_t v;
	uint64_t u;
	CHECK(str_to_i64(STR("-9223372036854775808"), &v) && v == INT64_MIN);
	CHECK(str_to_i64(STR("9223372036854775807"), &v) && v == INT64_MAX);
	CHECK(!str_to_i64(STR("9223372036854775808"), &v));
	CHECK(str_to_u64(STR("18446744073709551615"), &u) && u == UINT64_MAX);
	CHECK(!str_to_u64(STR("18446744073709551616"), &u));
	CHECK(!str_to_i64(STR(""), &v));
	CHECK(!str_to_i64(STR("12a"), &v));
	CHECK(!str_to_i64(STR("-"), &v));
}

TEST(doubles_like_go_parsefloat)
{
	double d;
	CHECK(str_to_double(STR("1.5"), &d) && d == 1.5);
	CHECK(str_to_double(STR("-1e3"), &d) && d == -1000);
	CHECK(str_to_double(STR(".5"), &d) && d == 0.5);
	CHECK(str_to_double(STR("0x1p-2"), &d) && d == 0.25);
	CHECK(str_to_double(STR("+Inf"), &d) && isinf(d) && d > 0);
	CHECK(str_to_double(STR("-inf"), &d) && isinf(d) && d < 0);
	CHECK(str_to_double(STR("NaN"), &d) && isnan(d));
	CHECK(!str_to_double(STR(" 1"), &d));
	CHECK(!str_to_double(STR("1 "), &d));
	CHECK(!str_to_double(STR("abc"), &d));
	CHECK(!str_to_double(STR(""), &d));
	CHECK(!str_to_double(STR("1e400"), &d));
	CHECK(!str_to_double(STR("1_000"), &d));
}

TEST(buffers)
{
	buf_t b = BUF_INIT;
	CHECK_STR(b.p, "");
	buf_puts(&b, "abc");
	buf_putc(&b, '-');
	buf_printf(&b, "%d", 12345);
	buf_put_i64(&b, INT64_MIN);
	CHECK_STR(b.p, "abc-12345-9223372036854775808");
	buf_truncate(&b, 3);
	CHECK_STR(b.p, "abc");
	for (int i = 0; i < 10000; i++)
		buf_printf(&b, "%04d", i % 10000);
	CHECK_EQ_INT(b.n, 3 + 40000);
	CHECK_EQ_INT(strlen(b.p), b.n);
	size_t len;
	char *p = buf_detach(&b, &len);
	CHECK_EQ_INT(len, 40003);
	free(p);
	CHECK_EQ_INT(b.n, 0);
	buf_release(&b);
}

TEST(hex_digits)
{
	const char *digits = "0123456789abcdef", *upper = "ABCDEF";
	for (int i = 0; i < 16; i++)
		CHECK_EQ_INT(str_hex_digit(digits[i]), i);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(str_hex_digit(upper[i]), 10 + i);
	int nhex = 0;
	for (int c = -128; c < 256; c++)
		nhex += str_hex_digit(c) >= 0;
	CHECK_EQ_INT(nhex, 22);
	CHECK_EQ_INT(str_hex_digit('g'), -1);
	CHECK_EQ_INT(str_hex_digit('/'), -1);
	CHECK_EQ_INT(str_hex_digit((char)0xc3), -1);
}

TEST(json_strings_escape_like_go)
{
	buf_t b = BUF_INIT;
	buf_json_str(&b, STR("a<b&c>\"\\ \xc3\xa9\t\n\x01"));
	CHECK_STR(b.p, "\"a\\u003cb\\u0026c\\u003e\\\"\\\\ \xc3\xa9\\t\\n\\u0001\"");
	buf_reset(&b);
	buf_json_str(&b, STR("bad\xff utf8 \xe2\x80\xa8"));
	CHECK_STR(b.p, "\"bad\\ufffd utf8 \\u2028\"");
	buf_release(&b);
}

TEST(vectors)
{
	VEC(int) v = {0};
	for (int i = 0; i < 1000; i++)
		VEC_PUSH(&v, i);
	CHECK_EQ_INT(v.n, 1000);
	CHECK_EQ_INT(VEC_LAST(&v), 999);
	CHECK_EQ_INT(VEC_POP(&v), 999);
	int *z = VEC_ADD(&v);
	CHECK_EQ_INT(*z, 0);
	VEC_FREE(&v);
	CHECK(v.v == NULL);
}

TEST_MAIN()
