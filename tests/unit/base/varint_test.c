#include "test.h"

#include "base/varint.h"

TEST(uvarint_round_trip_and_lengths)
{
	uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1ULL << 32) - 1, 1ULL << 63, UINT64_MAX};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		uint8_t b[10];
		size_t n = uvarint_put(b, vals[i]);
		CHECK_EQ_INT(n, uvarint_len(vals[i]));
		uint64_t out;
		CHECK_EQ_INT(uvarint_get(b, b + n, &out), (int)n);
		CHECK_EQ_U64(out, vals[i]);
		CHECK_EQ_INT(uvarint_get(b, b + n - 1, &out), 0); /* truncated */
	}
	uint8_t b[10];
	CHECK_EQ_INT(uvarint_put(b, 300), 2);
	CHECK(b[0] == 0xac && b[1] == 0x02);
	CHECK_EQ_INT(uvarint_put(b, UINT64_MAX), 10);
}

TEST(uvarint_overflow)
{
	uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
	uint64_t v;
	CHECK_EQ_INT(uvarint_get(eleven, eleven + 11, &v), -1);
	uint8_t tenth_big[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
	CHECK_EQ_INT(uvarint_get(tenth_big, tenth_big + 10, &v), -1);
	uint8_t max[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	CHECK_EQ_INT(uvarint_get(max, max + 10, &v), 10);
	CHECK_EQ_U64(v, UINT64_MAX);
	CHECK_EQ_INT(uvarint_get(max, max, &v), 0);
}

TEST(varint_zigzag)
{
	int64_t vals[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		uint8_t b[10];
		size_t n = varint_put(b, vals[i]);
		int64_t out;
		CHECK_EQ_INT(varint_get(b, b + n, &out), (int)n);
		CHECK_EQ_INT(out, vals[i]);
	}
	uint8_t b[10];
	varint_put(b, -1);
	CHECK_EQ_INT(b[0], 1);
	varint_put(b, 1);
	CHECK_EQ_INT(b[0], 2);
}

TEST(big_endian)
{
	uint8_t b[8];
	be64_put(b, 0x0102030405060708ULL);
	CHECK_EQ_INT(b[0], 1);
	CHECK_EQ_INT(b[7], 8);
	CHECK_EQ_U64(be64_get(b), 0x0102030405060708ULL);
	CHECK_EQ_U64(be32_get(b + 4), 0x05060708);
	CHECK_EQ_U64(be16_get(b + 6), 0x0708);
	buf_t bb = BUF_INIT;
	buf_put_be32(&bb, 0xdeadbeef);
	buf_put_uvarint(&bb, 300);
	CHECK_EQ_INT(bb.n, 6);
	CHECK_EQ_U64(be32_get((uint8_t *)bb.p), 0xdeadbeef);
	buf_release(&bb);
}

TEST_MAIN()
