/*
 * fs.h — FILESYSTEM bucket: objects are files under a root directory (Thanos `type: FILESYSTEM`).
 *
 * Object "a/b/c" is <root>/a/b/c. Puts write a temp file next to the target (".<base>.strata-tmp-*"),
 * fsync it, rename it over the target and fsync the directory, so readers see the old or the whole new
 * object. Parent directories are created as needed and removed again when a delete leaves them empty.
 * Iteration hides temp files. Names with "." / ".." segments or a leading '/' are rejected
 * (bucket_check_name), so no name can reach outside the root. Thread-safe.
 *
 * Reads keep up to 64 read-only fds open (LRU by object name) and use pread, so a range read of a cached
 * object costs an fstat of the fd instead of open+fstat+close (no path lookup). Renaming a file over the
 * object's path or deleting it drops a link of the old inode (its link count and ctime change); the
 * fstat sees that, and the fd is used again only if the path still names the same inode, else the path
 * is re-opened. So an object replaced by rename from any process is read from the new file. Puts and
 * deletes through this bucket drop the name's fd at once; bucket_free closes them all. An fd of an
 * object deleted by another process stays open (at most 64 of them) until it is next read or evicted.
 */
#ifndef STRATA_OBJSTORE_FS_H
#define STRATA_OBJSTORE_FS_H

#include "objstore/bucket.h"

/* Creates the directory if missing. ERR_INVALID for an empty path, ERR_IO/ERR_ACCESS if it cannot be
 * created or is not a directory. */
int fs_bucket_new(const char *dir, bucket_t **out, err_t *err);

#endif
