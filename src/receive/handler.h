/*
 * handler.h — POST /api/v1/receive: Prometheus remote write 1.0 into the tenants' TSDBs.
 *
 * Per request, in Thanos's order (reference thanos.md §8.2): readiness (503), tenant from
 * --receive.tenant-header (else the literal THANOS-TENANT header, else --receive.default-tenant-id;
 * with --receive.tenant-certificate-field the verified client certificate's organization,
 * organizationalUnit or commonName instead, a request without one being 400 as in Thanos; a name
 * that is not a valid directory name is 400), request size limit (413), then on a worker
 * thread: the max_concurrency gate (excess requests wait), snappy + protobuf decoding (400; a
 * decompressed size over the limit is 413), series and samples limits (413), relabelling, and the
 * write (receive/writer.h gives the status). Success is 200 with an empty body; errors are text.
 * Remote write 2.0 requests get 415 (not supported). With a router, the write goes through it
 * (router.h: placement, forwarding, quorum), with the replica number from --receive.replica-header
 * (a non-negative integer, else 400).
 *
 * Metrics: thanos_receive_write_timeseries and thanos_receive_write_samples (histograms of series and
 * samples per request, by code and tenant), thanos_receive_head_series_limited_requests_total{tenant};
 * the HTTP server adds http_requests_total{handler="/api/v1/receive",...}.
 */
#ifndef STRATA_RECEIVE_HANDLER_H
#define STRATA_RECEIVE_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "model/relabel.h"
#include "net/http.h"
#include "receive/limits.h"
#include "receive/multitsdb.h"
#include "receive/router.h"

typedef struct rcv_handler_config {
	mtsdb_t *mt;
	rcv_limiter_t *limits;    /* NULL = no limits */
	const relabel_t *relabel; /* NULL = none */
	const char *tenant_header;
	const char *default_tenant;
	size_t max_decoded;   /* decompressed body limit; 0 = 32 MiB (Prometheus sends well under 1 MiB) */
	rcv_router_t *router; /* writes go through it (hashring routing); NULL = rcv_write here */
	const char *replica_header; /* e.g. THANOS-REPLICA: the request is that replica (router.h) */
	const char *tenant_cert_field; /* organization|organizationalUnit|commonName: the tenant is that
	                                  field of the client certificate (headers ignored); NULL = off */
} rcv_handler_config_t;

typedef struct rcv_handler rcv_handler_t;

rcv_handler_t *rcv_handler_new(const rcv_handler_config_t *cfg);
void rcv_handler_free(rcv_handler_t *h);
/* Register POST /api/v1/receive on srv (whose worker pool runs the writes). */
void rcv_handler_register(rcv_handler_t *h, http_server_t *srv);
void rcv_handler_set_ready(rcv_handler_t *h, bool ready);
/* Wait until no write is running (after set_ready false: new ones get 503). */
void rcv_handler_wait_idle(rcv_handler_t *h);

#endif
