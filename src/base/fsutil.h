/*
 * fsutil.h — directory helpers: mkdir -p and rm -rf.
 */
#ifndef STRATA_BASE_FSUTIL_H
#define STRATA_BASE_FSUTIL_H

#include "base/err.h"

/* Create path and its missing parents (0755); existing directories are fine. ERR_IO naming the
 * directory that could not be made. */
int fsutil_mkdir_p(const char *path, err_t *err);
/* Remove path and everything below it (symlinks are removed, not followed); a missing path is
 * fine. Best effort: returns ERR_IO naming the first entry that could not be removed. */
int fsutil_rm_rf(const char *path, err_t *err);

#endif
