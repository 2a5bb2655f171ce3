/*
 * blockio.h — a block's files between the bucket and a local directory, for the compactor's and the
 * bucket tools' work on whole blocks (upload is block/shipper.h's shipper_upload_block: meta.json last).
 */
#ifndef STRATA_COMPACT_BLOCKIO_H
#define STRATA_COMPACT_BLOCKIO_H

#include "base/err.h"
#include "objstore/bucket.h"

/* Download <ulid>/'s meta.json, index, tombstones and chunks/NNNNNN into dir (created; files
 * replaced); marker files and anything else are skipped. ERR_NOT_FOUND when the block has no objects;
 * bucket errors name the object. */
int blockio_download(bucket_t *b, const char *ulid, const char *dir, err_t *err);

#endif
