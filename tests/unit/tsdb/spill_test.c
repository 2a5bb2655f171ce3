#include <dirent.h>
#include <string.h>

#include "test.h"
#include "tsdb/spill.h"
#include "tsdb_testutil.h"

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

TEST(spill_roundtrip_unlinked)
{
	char dir[4096], prefix[4200];
	tu_tmpdir(dir);
	snprintf(prefix, sizeof prefix, "%s/x", dir);
	spill_t s;
	spill_init(&s);
	CHECK(!spill_is_open(&s));
	err_t err = {0};
	CHECK_EQ_INT(spill_open(&s, prefix, &err), 0);
	CHECK_EQ_INT(entries(dir), 0); /* no name while in use */
	/* 1 MiB of a counter pattern: crosses the 256 KiB append buffer several times */
	static uint32_t v[1 << 18];
	for (uint32_t i = 0; i < ARRAY_LEN(v); i++)
		v[i] = i * 2654435761u;
	for (size_t i = 0; i < ARRAY_LEN(v); i += 1000)
		CHECK_EQ_INT(spill_append(&s, v + i, 4 * (ARRAY_LEN(v) - i < 1000 ? ARRAY_LEN(v) - i : 1000), &err), 0);
	CHECK_EQ_U64(s.end, sizeof v);
	/* two readers over different ranges at once, small buffers, needs larger than the buffer */
	spill_reader_t a, b;
	spill_reader_init(&a, &s, 0, 4000, 16);
	spill_reader_init(&b, &s, 4 * 100000, sizeof v, 64);
	const uint8_t *p;
	uint32_t x;
	for (uint32_t i = 0; i < 1000; i++) {
		CHECK_EQ_INT(spill_reader_need(&a, 4, &p, &err), 0);
		memcpy(&x, p, 4);
		CHECK_EQ_U64(x, v[i]);
		spill_reader_skip(&a, 4);
		CHECK_EQ_INT(spill_reader_need(&b, 4, &p, &err), 0);
		memcpy(&x, p, 4);
		CHECK_EQ_U64(x, v[100000 + i]);
		spill_reader_skip(&b, 4);
	}
	CHECK_EQ_U64(spill_reader_left(&a), 0);
	CHECK_EQ_INT(spill_reader_need(&b, 4096, &p, &err), 0); /* grows the buffer */
	CHECK(memcmp(p, v + 101000, 4096) == 0);
	spill_reader_skip(&b, 4096);
	/* past the end of the range: an error naming the temp file and the offset */
	CHECK_EQ_INT(spill_reader_need(&a, 1, &p, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, dir) != NULL && strstr(err.msg, ".spill-") != NULL);
	CHECK(strstr(err.msg, "offset 4000") != NULL);
	spill_reader_release(&a);
	spill_reader_release(&b);
	/* appends after reads land after the earlier bytes */
	uint32_t tail = 7;
	CHECK_EQ_INT(spill_append(&s, &tail, 4, &err), 0);
	spill_reader_init(&a, &s, sizeof v, sizeof v + 4, 0);
	CHECK_EQ_INT(spill_reader_need(&a, 4, &p, &err), 0);
	memcpy(&x, p, 4);
	CHECK_EQ_U64(x, 7);
	spill_reader_release(&a);
	spill_close(&s);
	spill_close(&s); /* idempotent */
	CHECK_EQ_INT(entries(dir), 0);
	tu_rm_rf(dir);
}

TEST(spill_open_fails_naming_the_file)
{
	spill_t s;
	spill_init(&s);
	err_t err = {0};
	CHECK_EQ_INT(spill_open(&s, "/nonexistent/strata/dir/x", &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "/nonexistent/strata/dir/x.spill-") != NULL);
	CHECK(!spill_is_open(&s));
	spill_close(&s);
}

TEST_MAIN()
