/*
 * config.h — build a bucket from Thanos's object storage configuration (`--objstore.config` YAML or
 * `--objstore.config-file`):
 *
 *     type: S3            # or FILESYSTEM (case-insensitive)
 *     config: {...}       # backend keys, see thanos.md §10.1
 *     prefix: ""          # optional key prefix inside the bucket
 *
 * Only the first YAML document is used. Unknown keys, wrong value types and unsupported values are
 * ERR_INVALID with "<source>:<line>:<column>" in the message. Secret values never appear in messages.
 */
#ifndef STRATA_OBJSTORE_CONFIG_H
#define STRATA_OBJSTORE_CONFIG_H

#include <stddef.h>

#include "objstore/bucket.h"

int objstore_from_config(const char *yaml, size_t len, bucket_t **out, err_t *err);
int objstore_from_config_file(const char *path, bucket_t **out, err_t *err);

/* The two Thanos flags: inline YAML wins over the file when both are set; ERR_INVALID when neither. */
int objstore_from_flags(const char *config_yaml, const char *config_file, bucket_t **out, err_t *err);

#endif
