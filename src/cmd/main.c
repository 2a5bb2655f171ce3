/*
 * main.c — `strata <command> [flags]`: the command table and dispatch (see cmd.h for how to add a
 * command). No component logic lives here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cmd/cmd.h"

/* One line per command; names are space-separated paths ("tools bucket ls"). Keep sorted. */
static const cmd_t commands[] = {
	{"compact", "Continuously compacts blocks in an object store bucket.", cmd_compact},
	{"query", "Query node exposing PromQL enabled Query API with data retrieved from multiple store nodes.", cmd_query},
	{"query-frontend", "Query frontend: splits, aligns, caches and retries range queries in front of queriers.", cmd_query_frontend},
	{"receive", "Accept Prometheus remote write API requests and write to local tsdb.", cmd_receive},
	{"rule", "Ruler evaluating Prometheus rules against given Query nodes, exposing Store API and storing old blocks in bucket.", cmd_rule},
	{"sidecar", "Sidecar for Prometheus server: StoreAPI over remote read, block shipping, reloader.", cmd_sidecar},
	{"store", "Store gateway: StoreAPI over every block in an object storage bucket.", cmd_store},
	{"tools block", "Dump, inspect and write TSDB blocks.", cmd_tools_block},
	{"tools bucket", "Bucket tools: ls, inspect, verify, upload-blocks, mark, cleanup, retention, rewrite, downsample.", cmd_tools_bucket},
	{"tools rules-check", "Check if the rule files are valid or not (as promtool check rules, plus partial_response_strategy).", cmd_tools_rules_check},
	{"tools query", "Evaluate a PromQL expression over the blocks in a local directory.", cmd_tools_query},
	{NULL, NULL, NULL},
};

static const char summary[] =
	"Strata: a highly available, long-term-storage companion for Prometheus, compatible with Thanos.";

/* Number of leading words of argv (from index 1) that equal the words of name, or 0. With
 * prefix_ok, name may continue past the last argv word (group match). */
static int match_words(const char *name, int argc, char **argv, bool prefix_ok)
{
	const char *p = name;
	int k = 0;
	for (int i = 1; i < argc; i++) {
		size_t wl = strcspn(p, " ");
		if (strlen(argv[i]) != wl || strncmp(argv[i], p, wl) != 0)
			return prefix_ok && k > 0 ? k : 0;
		k++;
		p += wl;
		if (!*p)
			return k; /* full name matched */
		p++;
	}
	return prefix_ok ? k : 0;
}

static int count_words(const char *name)
{
	int n = 1;
	for (const char *p = name; *p; p++)
		n += *p == ' ';
	return n;
}

static void list_commands(FILE *out, const char *group)
{
	size_t glen = group ? strlen(group) : 0;
	size_t width = 0;
	int shown = 0;
	for (const cmd_t *c = commands; c->name; c++)
		if (!group || (strncmp(c->name, group, glen) == 0 && c->name[glen] == ' '))
			width = strlen(c->name) > width ? strlen(c->name) : width;
	fprintf(out, "Commands:\n");
	for (const cmd_t *c = commands; c->name; c++) {
		if (group && !(strncmp(c->name, group, glen) == 0 && c->name[glen] == ' '))
			continue;
		fprintf(out, "  %-*s  %s\n", (int)width, c->name, c->summary);
		shown++;
	}
	if (!shown)
		fprintf(out, "  (none yet: components land with later issues)\n");
}

static void usage(FILE *out)
{
	fprintf(out, "usage: strata [<flags>] <command> [<args> ...]\n\n%s\n\n", summary);
	fprintf(out, "Flags:\n  -h, --help\n      Show help (also: strata <command> --help).\n"
		     "  --version\n      Show application version.\n\n");
	list_commands(out, NULL);
}

static void version(void)
{
	printf("strata, version %s\n", STRATA_VERSION);
	printf("  build date:       %s %s\n", __DATE__, __TIME__);
#ifdef __VERSION__
	printf("  compiler:         %s\n", __VERSION__);
#endif
#ifdef STRATA_SANITIZE
	printf("  sanitizers:       address,undefined\n");
#endif
}

static bool is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0) {
		version();
		return 0;
	}
	if (argv[1][0] == '-') {
		fprintf(stderr, "strata: unknown flag %s (flags go after the command)\nTry 'strata --help'.\n",
			argv[1]);
		return 2;
	}
	/* The longest full name matching the leading words wins. */
	const cmd_t *best = NULL;
	int best_k = 0;
	for (const cmd_t *c = commands; c->name; c++) {
		int k = match_words(c->name, argc, argv, false);
		if (k > 0 && k == count_words(c->name) && k > best_k) {
			best = c;
			best_k = k;
		}
	}
	if (best) {
		size_t n = strlen(best->name) + 8;
		char *cmdline = xmalloc(n);
		snprintf(cmdline, n, "strata %s", best->name);
		char **sub = xcalloc((size_t)(argc - best_k) + 1, sizeof *sub);
		sub[0] = cmdline;
		for (int i = best_k + 1; i < argc; i++)
			sub[i - best_k] = argv[i];
		int rc = best->run(argc - best_k, sub);
		free(sub);
		free(cmdline);
		return rc;
	}
	/* A group ("tools", "tools bucket"): list what it contains. */
	int group_k = 0;
	for (const cmd_t *c = commands; c->name; c++) {
		int k = match_words(c->name, argc, argv, true);
		if (k > group_k && k < count_words(c->name))
			group_k = k;
	}
	if (group_k > 0) {
		char group[256] = "";
		for (int i = 1; i <= group_k; i++) {
			if (i > 1)
				strncat(group, " ", sizeof group - strlen(group) - 1);
			strncat(group, argv[i], sizeof group - strlen(group) - 1);
		}
		bool help = group_k + 1 < argc && is_help(argv[group_k + 1]);
		if (group_k + 1 < argc && !help)
			fprintf(stderr, "strata: unknown command \"%s %s\"\n\n", group, argv[group_k + 1]);
		FILE *out = help ? stdout : stderr;
		fprintf(out, "usage: strata %s <command> [<args> ...]\n\n", group);
		list_commands(out, group);
		return help ? 0 : 2;
	}
	fprintf(stderr, "strata: unknown command \"%s\"\nTry 'strata --help'.\n", argv[1]);
	return 2;
}
