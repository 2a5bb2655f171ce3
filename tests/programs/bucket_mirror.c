/*
 * bucket_mirror — copies every object of a bucket (any backend) into a local directory, so tests can
 * run promtool and file comparisons on what an S3 bucket holds.
 *
 *   bucket_mirror OBJSTORE_CONFIG_YAML DIR
 *
 * Prints nothing on success; errors go to stderr with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/vec.h"
#include "objstore/config.h"

static int collect(void *arg, const char *name)
{
	VEC(char *) *v = arg;
	VEC_PUSH(v, xstrdup(name));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bucket_mirror OBJSTORE_CONFIG_YAML DIR\n");
		return 2;
	}
	err_t err = {0};
	bucket_t *b;
	if (objstore_from_config(argv[1], strlen(argv[1]), &b, &err)) {
		fprintf(stderr, "error: %s\n", err.msg);
		return 1;
	}
	VEC(char *) objs = {0};
	int rc = bucket_iter(b, "", BUCKET_ITER_RECURSIVE, collect, &objs, &err);
	for (size_t i = 0; !rc && i < objs.n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", argv[2], objs.v[i]);
		char *slash = strrchr(path, '/');
		*slash = 0;
		rc = fsutil_mkdir_p(path, &err);
		*slash = '/';
		if (!rc)
			rc = bucket_download(b, objs.v[i], path, &err);
	}
	for (size_t i = 0; i < objs.n; i++)
		free(objs.v[i]);
	VEC_FREE(&objs);
	bucket_free(b);
	if (rc) {
		fprintf(stderr, "error: %s\n", err.msg);
		return 1;
	}
	return 0;
}
