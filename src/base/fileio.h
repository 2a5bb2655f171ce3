/*
 * fileio.h — the file-system chores durable writers share: write a whole buffer, fsync a directory
 * (after creating or renaming in it), mkdir -p, rm -rf.
 *
 * Errors: negative ERR_* codes from err_errno naming the path. Thread-safe (no shared state).
 */
#ifndef STRATA_BASE_FILEIO_H
#define STRATA_BASE_FILEIO_H

#include <stddef.h>

#include "base/err.h"

/* write(2) until all n bytes are written (EINTR retried); -1 with errno set on failure. */
int fileio_write_all(int fd, const void *p, size_t n);
/* fsync the directory itself, so entries created or renamed in it survive a crash. */
int fileio_fsync_dir(const char *dir, err_t *err);
/* mkdir -p (mode 0755); existing directories are fine. */
int fileio_mkdirs(const char *path, err_t *err);
/* rm -rf, best effort (no error: what cannot be removed stays). */
void fileio_rm_rf(const char *path);

#endif
