#include "test.h"

#include "base/fsutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static void touch(const char *p)
{
	FILE *f = fopen(p, "w");
	if (!f)
		abort();
	fputs("x", f);
	fclose(f);
}

TEST(mkdir_p_makes_parents_and_accepts_existing)
{
	char dir[] = "/tmp/fsutil_test.XXXXXX";
	CHECK(mkdtemp(dir));
	char p[256];
	err_t err = {0};
	snprintf(p, sizeof p, "%s/a/b/c", dir);
	CHECK_EQ_INT(fsutil_mkdir_p(p, &err), 0);
	CHECK(is_dir(p));
	CHECK_EQ_INT(fsutil_mkdir_p(p, &err), 0); /* again: fine */
	snprintf(p, sizeof p, "%s/a/b/c/", dir);  /* trailing slash */
	CHECK_EQ_INT(fsutil_mkdir_p(p, &err), 0);
	/* a file in the way is an error naming the path */
	snprintf(p, sizeof p, "%s/f", dir);
	touch(p);
	snprintf(p, sizeof p, "%s/f/g", dir);
	CHECK(fsutil_mkdir_p(p, &err) != 0);
	CHECK(strstr(err.msg, "/f") != NULL);
	CHECK_EQ_INT(fsutil_rm_rf(dir, &err), 0);
	CHECK(!exists(dir));
}

TEST(rm_rf_removes_trees_not_symlink_targets)
{
	char dir[] = "/tmp/fsutil_test.XXXXXX", keep[] = "/tmp/fsutil_keep.XXXXXX";
	CHECK(mkdtemp(dir));
	CHECK(mkdtemp(keep));
	char p[256], q[256];
	err_t err = {0};
	snprintf(q, sizeof q, "%s/precious", keep);
	touch(q);
	snprintf(p, sizeof p, "%s/x/y", dir);
	CHECK_EQ_INT(fsutil_mkdir_p(p, &err), 0);
	snprintf(p, sizeof p, "%s/x/y/file", dir);
	touch(p);
	snprintf(p, sizeof p, "%s/x/link", dir);
	CHECK_EQ_INT(symlink(keep, p), 0);
	CHECK_EQ_INT(fsutil_rm_rf(dir, &err), 0);
	CHECK(!exists(dir));
	CHECK(exists(q)); /* the link went, not what it pointed to */
	/* a missing path is fine */
	CHECK_EQ_INT(fsutil_rm_rf(dir, &err), 0);
	CHECK_EQ_INT(fsutil_rm_rf(keep, &err), 0);
}

TEST_MAIN()
