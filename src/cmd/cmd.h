/*
 * cmd.h — the `strata` command table and helpers shared by subcommands.
 *
 * Every subcommand is one line in the static table in main.c:
 *
 *     {"query", "Query node exposing PromQL over StoreAPI endpoints.", cmd_query},
 *     {"tools bucket ls", "List all blocks in the bucket.", cmd_tools_bucket_ls},
 *
 * The name is a space-separated path, so nesting needs no extra code: `strata tools bucket ls ...`
 * runs the entry with the longest name matching the leading words; `strata tools --help` (or just
 * `strata tools`) lists the entries under "tools". An entry may also own a whole group and dispatch
 * its own sub-subcommands ({"tools block", ..., cmd_tools_block} receives "dump ..." as argv[1..]).
 * Groups appear only when they contain an entry, so commands that do not exist are simply absent.
 *
 * run(argc, argv): argv[0] is the full command ("strata tools bucket ls"), argv[1..argc-1] are the
 * remaining arguments (pass argc - 1, argv + 1 to flags_parse). Return the process exit code:
 * 0 success, 1 runtime failure, 2 usage error (unknown flag, bad value — print a message naming it).
 */
#ifndef STRATA_CMD_CMD_H
#define STRATA_CMD_CMD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/flags.h"
#include "base/log.h"
#include "base/str.h"
#include "net/conn.h"
#include "net/webconfig.h"

typedef struct cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
} cmd_t;

/* Subcommand entry points (one per src/cmd/<name>.c) are declared here, one line each. */
int cmd_query(int argc, char **argv);
int cmd_receive(int argc, char **argv);
int cmd_rule(int argc, char **argv);
int cmd_sidecar(int argc, char **argv);
int cmd_tools_block(int argc, char **argv);
int cmd_tools_bucket(int argc, char **argv);
int cmd_tools_query(int argc, char **argv);
int cmd_tools_rules_check(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_query_frontend(int argc, char **argv);
int cmd_compact(int argc, char **argv);

/* ---- flags common to server components (Thanos names and defaults) ---- */

typedef struct cmd_server_flags {
	char *http_address;
	int64_t http_grace_ms;
	char *log_level;
	char *log_format;
	bool check_config;
	char *http_config; /* web configuration file (net/webconfig.h) */
} cmd_server_flags_t;

/* Expand inside a flag_def_t array: flag_def_t defs[] = { CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"), ... }; */
#define CMD_SERVER_FLAGS(sf, default_http_address)                                                       \
	{"http-address", FLAG_STRING, &(sf)->http_address, (default_http_address),                       \
	 "Listen host:port for HTTP endpoints."},                                                        \
	{"http-grace-period", FLAG_DURATION, &(sf)->http_grace_ms, "2m",                                 \
	 "Time to wait after an interrupt received for HTTP Server."},                                   \
	{"log.level", FLAG_ENUM, &(sf)->log_level, "info", "Log filtering level.", "debug|info|warn|error"}, \
	{"log.format", FLAG_ENUM, &(sf)->log_format, "logfmt", "Log format to use.", "logfmt|json"},   \
	{"check-config", FLAG_BOOL, &(sf)->check_config, "false",                                        \
	 "Dry run: parse the flags and every configuration file they name, check the listen "            \
	 "addresses, then exit (0, or non-zero with the error) without starting anything."},           \
	{"http.config", FLAG_STRING, &(sf)->http_config, "",                                             \
	 "Path to the configuration file that can enable TLS or authentication for all HTTP endpoints."}

/* --web.route-prefix and --web.external-prefix (char * destinations), for commands serving the web
 * UI; ui_web_prefixes turns them into the server's route prefix and the UI's link prefix. */
#define CMD_WEB_PREFIX_FLAGS(route_prefix, external_prefix)                                              \
	{"web.route-prefix", FLAG_STRING, (route_prefix), "",                                            \
	 "Prefix for API and UI endpoints (/metrics and /-/ probes stay at the root). This allows the UI " \
	 "to be served on a sub-path. Defaults to the value of --web.external-prefix."},                  \
	{"web.external-prefix", FLAG_STRING, (external_prefix), "",                                      \
	 "Static prefix for all HTML links and redirect URLs in the web UI. Actual endpoints are still "  \
	 "served on / or the web.route-prefix. This allows the UI to be served behind a reverse proxy "   \
	 "that strips a URL sub-path."}

/* Parse a subcommand's flags: prints usage and returns 0 with *exit_now set for --help; prints
 * "strata <cmd>: <message naming the flag>" and returns 2 (with *exit_now set) for bad flags;
 * otherwise 0, and the caller frees res->pos when done with the positional arguments. */
static inline int cmd_parse_flags(const char *cmdline, const char *summary, const flag_def_t *defs, size_t n,
				  int argc, char **argv, flags_result_t *res, int *exit_now)
{
	err_t err = {0};
	*exit_now = 0;
	if (flags_parse(defs, n, argc - 1, argv + 1, res, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		fprintf(stderr, "Try '%s --help'.\n", cmdline);
		free(res->pos);
		res->pos = NULL;
		*exit_now = 1;
		return 2;
	}
	if (res->help) {
		char usage[256];
		snprintf(usage, sizeof usage, "%s [<flags>]", cmdline);
		flags_usage(stdout, usage, summary, defs, n);
		free(res->pos);
		res->pos = NULL;
		*exit_now = 1;
		return 0;
	}
	return 0;
}

/* A YAML config given inline (--x.config) or as a file (--x.config-file): *out is a heap copy (NULL when
 * neither is set), *what names it for messages. Returns 0, or 1 after printing why the file is unreadable. */
static inline int cmd_read_config(const char *cmdline, const char *inline_yaml, const char *file, char **out,
				  size_t *len, const char **what)
{
	*out = NULL;
	*len = 0;
	if (inline_yaml && *inline_yaml) {
		*out = xstrdup(inline_yaml);
		*len = strlen(inline_yaml);
		*what = "<inline>";
		return 0;
	}
	if (!file || !*file)
		return 0;
	FILE *f = fopen(file, "rb");
	if (!f) {
		fprintf(stderr, "%s: cannot read %s\n", cmdline, file);
		return 1;
	}
	buf_t b = BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	*out = buf_detach(&b, len);
	*what = file;
	return 0;
}

/* Thanos TimeOrDuration (--min-time/--max-time): RFC 3339, or a duration relative to now ("-2w",
 * "1d"); the flags' defaults 0000-01-01T00:00:00Z / 9999-12-31T23:59:59Z are INT64_MIN / INT64_MAX.
 * ERR_INVALID naming the flag. (cmd_util.c) */
int cmd_time_or_duration(const char *flag, const char *s, int64_t *out, err_t *err);

/* What every server component does first: the allocator set up for a long-running process
 * (alloc_tune_server), then --log.level / --log.format. Returns 0, or 2 after printing the error. */
static inline int cmd_server_setup_logging(const char *cmdline, const cmd_server_flags_t *sf)
{
	alloc_tune_server();
	err_t err = {0};
	if (log_setup(sf->log_level, sf->log_format, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 2;
	}
	return 0;
}

/* --check-config (in CMD_SERVER_FLAGS): the dry run deploy files are verified with. A server command
 * calls this once it has parsed its flags and loaded every configuration file they name (objstore,
 * caches, relabel, endpoints, hashrings, rules, ...) and before it binds a port, starts a thread,
 * dials a peer or touches its data directory; the trailing arguments are its other listen addresses,
 * NULL-terminated:
 *
 *     if ((rc = cmd_check_config("strata store", &sf, grpc_address, NULL)) >= 0) {
 *             ...release what was loaded...
 *             return rc;
 *     }
 *
 * Without --check-config: returns -1 (carry on). With it: checks --http-address and the given
 * addresses (form, host resolves; nothing is bound) and loads --http.config (certificates
 * included), then prints "<cmd>: configuration OK" and returns 0, or prints the error and returns 2. */
static inline int cmd_check_config(const char *cmdline, const cmd_server_flags_t *sf, ...)
{
	if (!sf->check_config)
		return -1;
	err_t err = {0};
	int rc = listener_check_address(sf->http_address, &err);
	va_list ap;
	va_start(ap, sf);
	for (const char *a; !rc && (a = va_arg(ap, const char *));)
		rc = listener_check_address(a, &err);
	va_end(ap);
	webcfg_t *web = NULL;
	if (!rc && sf->http_config && *sf->http_config && !(rc = webcfg_new(&web, sf->http_config, &err)))
		webcfg_free(web);
	if (rc) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 2;
	}
	printf("%s: configuration OK\n", cmdline);
	return 0;
}

#endif
