/*
 * sdconfig.h — the endpoint groups of Thanos's --query.config and --alertmanagers.config YAML
 * (reference thanos.md §9): each group has static_configs (host:port strings), file_sd_configs
 * ({files: [globs], refresh_interval}), scheme, path_prefix, timeout, api_version and http_config
 * (net/httpcfg.h: basic_auth, bearer_token[_file], tls_config, proxy_url). Targets resolve
 * to base URLs "scheme://host:port/prefix"; file SD files are Prometheus's (YAML or JSON lists of
 * {targets: [...], labels: {...}}).
 */
#ifndef STRATA_RULE_SDCONFIG_H
#define STRATA_RULE_SDCONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/flags.h"

typedef struct sdcfg_group {
	char *scheme, *path_prefix, *api_version;
	strlist_t statics, sd_files;
	int64_t timeout_ms; /* 0: the caller's default */
	struct httpcfg *http; /* http_config (net/httpcfg.h), NULL if none */
} sdcfg_group_t;

/* yaml: for alertmanagers the document is {alertmanagers: [group...]}, for queries [group...].
 * ERR_INVALID naming what and the line for anything unknown or malformed. */
int sdcfg_parse(const char *yaml, size_t len, const char *what, bool alertmanagers, sdcfg_group_t **out, size_t *n,
                err_t *err);
void sdcfg_free(sdcfg_group_t *g, size_t n);

/* A group from a bare address or URL flag ("host:port", "http://host:port/prefix"). */
int sdcfg_from_url(const char *addr, sdcfg_group_t *g, err_t *err);

/* Append the group's current base URLs (static targets, then file SD targets) to urls. Unreadable
 * SD files are skipped and reported in err (return value -1), the others still resolve. */
int sdcfg_resolve(const sdcfg_group_t *g, strlist_t *urls, err_t *err);

#endif
