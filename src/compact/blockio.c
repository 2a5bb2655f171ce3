/*
 * blockio.c — block download (see blockio.h).
 */
#include "compact/blockio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/vec.h"
#include "block/marker.h"

static int collect(void *arg, const char *name)
{
	VEC(char *) *v = arg;
	VEC_PUSH(v, xstrdup(name));
	return 0;
}

int blockio_download(bucket_t *b, const char *ulid, const char *dir, err_t *err)
{
	VEC(char *) objs = {0};
	char prefix[64], chunks[4200];
	snprintf(prefix, sizeof prefix, "%s/", ulid);
	snprintf(chunks, sizeof chunks, "%s/chunks", dir);
	int rc = bucket_iter(b, prefix, BUCKET_ITER_RECURSIVE, collect, &objs, err);
	if (!rc && objs.n == 0)
		rc = err_set(err, ERR_NOT_FOUND, "block %s is not in the bucket", ulid);
	if (!rc)
		rc = fsutil_mkdir_p(chunks, err);
	for (size_t k = 0; !rc && k < objs.n; k++) {
		const char *rel = objs.v[k] + strlen(prefix);
		if (marker_kind_of(rel) >= 0 || (strncmp(rel, "chunks/", 7) != 0 && strchr(rel, '/')))
			continue; /* markers are not part of the block; nothing else lives in sub-directories
			           */
		char path[4400];
		snprintf(path, sizeof path, "%s/%s", dir, rel);
		rc = bucket_download(b, objs.v[k], path, err);
	}
	for (size_t k = 0; k < objs.n; k++)
		free(objs.v[k]);
	VEC_FREE(&objs);
	return rc;
}
