/*
 * fsutil.c — mkdir -p, rm -rf (see fsutil.h).
 */
#include "base/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

int fsutil_mkdir_p(const char *path, err_t *err)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1; *s && !rc; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			rc = err_errno(err, "mkdir %s", p);
		*s = '/';
	}
	if (!rc && mkdir(p, 0755) != 0 && errno != EEXIST)
		rc = err_errno(err, "mkdir %s", p);
	free(p);
	return rc;
}

int fsutil_rm_rf(const char *path, err_t *err)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : err_errno(err, "stat %s", path);
	if (!S_ISDIR(st.st_mode))
		return unlink(path) == 0 || errno == ENOENT ? 0 : err_errno(err, "unlink %s", path);
	int rc = 0;
	DIR *d = opendir(path);
	if (!d)
		return err_errno(err, "open directory %s", path);
	struct dirent *de;
	size_t n = strlen(path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t m = n + strlen(de->d_name) + 2;
		char *sub = xmalloc(m);
		snprintf(sub, m, "%s/%s", path, de->d_name);
		int r = fsutil_rm_rf(sub, rc ? NULL : err);
		if (r && !rc)
			rc = r;
		free(sub);
	}
	closedir(d);
	if (rmdir(path) != 0 && errno != ENOENT && !rc)
		rc = err_errno(err, "rmdir %s", path);
	return rc;
}
