#include "test.h"

#include <stdlib.h>

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

TEST(hardware_streams_joined_on_long_inputs)
{
	size_t n = 3 * 3 * 8192 + 3 * 256 * 5 + 77;
	uint8_t *data = malloc(n + 16);
	uint32_t x = 1;
	for (size_t i = 0; i < n + 16; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	static const size_t lens[] = {767, 768, 769, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 768, 65536, 65536 + 5};
	for (size_t off = 0; off < 9; off += 4)
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
			CHECK_EQ_U64(crc32c(0, data + off, lens[i]), crc32c_sw(0, data + off, lens[i]));
	CHECK_EQ_U64(crc32c(0, data, n), crc32c_sw(0, data, n));
	CHECK_EQ_U64(crc32c(crc32c(0, data, 30000), data + 30000, n - 30000), crc32c_sw(0, data, n));
	free(data);
}

TEST_MAIN()
