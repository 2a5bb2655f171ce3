/*
 * tsdb_testutil.h — small helpers shared by the tsdb unit tests: temp dirs, whole-file I/O and a
 * check that an error message names a file and an offset.
 */
#ifndef STRATA_TSDB_TESTUTIL_H
#define STRATA_TSDB_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"

static int tu_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* rm -rf path */
static inline void tu_rm_rf(const char *path)
{
	nftw(path, tu_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh empty directory under $TMPDIR (or /tmp); out has >= 4096 bytes. */
static inline void tu_tmpdir(char *out)
{
	const char *t = getenv("TMPDIR");
	snprintf(out, 4096, "%s/strata-tsdb-test-XXXXXX", t && *t ? t : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"));
	if (!mkdtemp(out))
		die("mkdtemp %s failed", out);
}

static inline uint8_t *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("open %s failed", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = xmalloc((size_t)n + 1);
	if (n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n)
		die("read %s failed", path);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static inline void tu_write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		die("create %s failed", path);
	if (len && fwrite(p, 1, len, f) != len)
		die("write %s failed", path);
	fclose(f);
}

/* The message of a failed read must say which file and where. */
#define CHECK_ERR_WHERE(err, path)                                                                       \
	do {                                                                                             \
		if (!strstr((err).msg, (path)) || !strstr((err).msg, "offset"))                           \
			TEST_FAILF("error does not name file and offset: %s", (err).msg);                \
	} while (0)

#endif
