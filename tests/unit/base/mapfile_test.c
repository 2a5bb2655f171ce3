#include "test.h"

#include "base/mapfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (n && fwrite(data, 1, n, f) != n)
		abort();
	fclose(f);
}

TEST(maps_whole_file)
{
	char dir[] = "/tmp/mapfile_test.XXXXXX";
	CHECK(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/f", dir);
	write_file(path, "hello, mapped world", 19);
	const uint8_t *p = (const uint8_t *)"x";
	size_t len = 99;
	err_t err = {0};
	CHECK_EQ_INT(mapfile_map(path, 4, &p, &len, &err), 0);
	CHECK(p != NULL);
	CHECK_EQ_U64(len, 19);
	CHECK(memcmp(p, "hello, mapped world", 19) == 0);
	mapfile_unmap(p, len);
	/* min_len equal to the size still maps. */
	CHECK_EQ_INT(mapfile_map(path, 19, &p, &len, &err), 0);
	CHECK(p != NULL);
	mapfile_unmap(p, len);
	unlink(path);
	rmdir(dir);
}

TEST(short_and_empty_files_are_not_mapped)
{
	char dir[] = "/tmp/mapfile_test.XXXXXX";
	CHECK(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/short", dir);
	write_file(path, "abc", 3);
	const uint8_t *p = (const uint8_t *)"x";
	size_t len = 99;
	CHECK_EQ_INT(mapfile_map(path, 4, &p, &len, NULL), 0);
	CHECK(p == NULL);
	CHECK_EQ_U64(len, 3);
	mapfile_unmap(p, len); /* no-op */
	write_file(path, "", 0);
	p = (const uint8_t *)"x";
	CHECK_EQ_INT(mapfile_map(path, 0, &p, &len, NULL), 0);
	CHECK(p == NULL);
	CHECK_EQ_U64(len, 0);
	unlink(path);
	rmdir(dir);
}

TEST(errors_name_the_path)
{
	char dir[] = "/tmp/mapfile_test.XXXXXX";
	CHECK(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/missing", dir);
	const uint8_t *p = (const uint8_t *)"x";
	size_t len = 99;
	err_t err = {0};
	CHECK_EQ_INT(mapfile_map(path, 0, &p, &len, &err), ERR_NOT_FOUND);
	CHECK(p == NULL);
	CHECK_EQ_U64(len, 0);
	char want[400];
	snprintf(want, sizeof want, "open %s: No such file or directory", path);
	CHECK_STR(err.msg, want);
	/* A directory opens and stats but cannot be mapped (a file in it keeps its size above 0). */
	write_file(path, "x", 1);
	err_clear(&err);
	int rc = mapfile_map(dir, 1, &p, &len, &err);
	CHECK(rc < 0);
	CHECK(p == NULL);
	snprintf(want, sizeof want, "mmap %s: ", dir);
	CHECK(strncmp(err.msg, want, strlen(want)) == 0);
	unlink(path);
	rmdir(dir);
}

TEST_MAIN()
