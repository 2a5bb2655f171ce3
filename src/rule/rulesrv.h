/*
 * rulesrv.h — the ruler's thanos.Rules/Rules gRPC service (reference thanos.md §2.7): one
 * RulesResponse per group from a snapshot of the rules manager, rule and alert labels carrying the
 * ruler's external labels (so a querier can deduplicate HA rulers by replica label).
 */
#ifndef STRATA_RULE_RULESRV_H
#define STRATA_RULE_RULESRV_H

#include "model/labels.h"
#include "net/grpc.h"
#include "rule/manager.h"

typedef struct rulesrv rulesrv_t;

/* ext is copied; m must outlive the server's calls. */
rulesrv_t *rulesrv_register(grpc_server_t *srv, rulemgr_t *m, const labels_t *ext);
void rulesrv_free(rulesrv_t *s);

#endif
