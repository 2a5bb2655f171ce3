#include "test.h"

#include "base/crc32c.h"

TEST(known_vectors)
{
	/* RFC 3720 (iSCSI) B.4 test vectors and the classic check value. */
	CHECK_EQ_U64(crc32c(0, "123456789", 9), 0xE3069283);
	uint8_t zeros[32] = {0}, ones[32], inc[32], dec[32];
	for (int i = 0; i < 32; i++) {
		ones[i] = 0xff;
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	CHECK_EQ_U64(crc32c(0, zeros, 32), 0x8A9136AA);
	CHECK_EQ_U64(crc32c(0, ones, 32), 0x62A8AB43);
	CHECK_EQ_U64(crc32c(0, inc, 32), 0x46DD794E);
	CHECK_EQ_U64(crc32c(0, dec, 32), 0x113FDB5C);
	CHECK_EQ_U64(crc32c(0, "", 0), 0);
}

TEST(hardware_matches_table_and_is_incremental)
{
	uint8_t data[4099];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len < 300; len += 7) {
			CHECK_EQ_U64(crc32c(0, data + off, len), crc32c_sw(0, data + off, len));
		}
	}
	uint32_t whole = crc32c(0, data, sizeof data);
	uint32_t part = crc32c(crc32c(0, data, 1000), data + 1000, sizeof data - 1000);
	CHECK_EQ_U64(whole, part);
	CHECK_EQ_U64(whole, crc32c_sw(0, data, sizeof data));
}

TEST_MAIN()
