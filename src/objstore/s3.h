/*
 * s3.h — S3 bucket over libcurl with our own SigV4 signer (Thanos `type: S3`).
 *
 * Requests: GetObject (whole / Range), PutObject, multipart upload above part_size (create, parts,
 * complete; abort on any failure; up to 4 parts hashed ahead and sent concurrently, file parts read with
 * pread as they are sent, never buffered), HeadObject, DeleteObject, ListObjectsV2 with continuation (V1 with
 * list_objects_version: v1). Batched range reads run on a curl multi handle (connections reused across
 * calls). Retries: 5xx, 429, S3 RequestTimeout/SlowDown and connection/timeout errors are retried up to
 * max_retries times with exponential backoff and full jitter; 403 and other 4xx are never retried.
 * Secrets are never logged or put into error messages. Thread-safe.
 */
#ifndef STRATA_OBJSTORE_S3_H
#define STRATA_OBJSTORE_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore/bucket.h"

typedef struct s3_config {
	char *bucket;
	char *endpoint; /* "host[:port]" (a scheme prefix is accepted and overrides `insecure`) */
	char *region;   /* "" -> $AWS_REGION -> us-east-1 */
	char *access_key, *secret_key, *session_token; /* "" -> AWS_* environment */
	bool insecure;           /* plain HTTP */
	bool signature_version2; /* rejected: only SigV4 is implemented */
	/* http_config */
	int64_t idle_conn_timeout_ms;       /* default 90s */
	int64_t response_header_timeout_ms; /* default 2m: a transfer stalled this long is aborted */
	int64_t tls_handshake_timeout_ms;   /* default 10s (used as the connect timeout) */
	bool insecure_skip_verify;
	char *ca_file, *cert_file, *key_file, *server_name;
	int64_t part_size;          /* default 64 MiB; 0 -> 128 MiB; minimum 5 MiB */
	char *list_objects_version; /* "" or "v2" / "v1" */
	char *bucket_lookup_type;   /* "auto" | "virtual-hosted" | "path" */
	bool send_content_md5;      /* default true */
	bool disable_multipart;
	int max_retries;            /* 0 -> 3 */
	char *sse_type;             /* "" | "SSE-S3" | "SSE-KMS" ("SSE-C" rejected) */
	char *sse_kms_key_id;
	/* Not config keys: knobs for tests. */
	int64_t retry_base_ms;    /* first backoff step, default 100 ms (cap 5 s) */
	int64_t (*now_s)(void);   /* signing clock; NULL = wall clock */
} s3_config_t;

/* Defaults as in Thanos. */
void s3_config_init(s3_config_t *c);
void s3_config_release(s3_config_t *c);

/* Validates the config (ERR_INVALID naming the key) and creates the bucket. No request is made. */
int s3_bucket_new(const s3_config_t *c, bucket_t **out, err_t *err);

/* Number of HTTP requests (including retries) this S3 bucket has sent; 0 for other backends. For tests
 * ("no retry storm") and debugging. */
uint64_t s3_bucket_requests(const bucket_t *b);

#endif
