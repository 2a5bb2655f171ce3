/*
 * tools_rules.c — `strata tools rules-check --rules=GLOB`: validates rule files as `promtool check
 * rules` does (same messages, same output layout, exit 0 when every file is good, 1 otherwise), plus
 * Thanos's partial_response_strategy group key (reference thanos.md §1.11, §9).
 */
#include <glob.h>

#include "cmd/cmd.h"
#include "rule/rulefile.h"

int cmd_tools_rules_check(int argc, char **argv)
{
	strlist_t globs = {0};
	flag_def_t defs[] = {
	    {"rules", FLAG_STRINGS, &globs, NULL, "The rule files glob to check (repeated)."},
	};
	flags_result_t res = {0};
	int exit_now, ret = cmd_parse_flags(argv[0], "Check if the rule files are valid or not.", defs, ARRAY_LEN(defs),
	                                    argc, argv, &res, &exit_now);
	if (exit_now)
		return ret;
	for (int i = 0; i < res.npos; i++)
		strlist_push(&globs, res.pos[i]);
	free(res.pos);
	if (!globs.n) {
		fprintf(stderr, "%s: --rules is required\n", argv[0]);
		return 2;
	}
	strlist_t files = {0};
	ret = 0;
	for (size_t i = 0; i < globs.n; i++) {
		glob_t g;
		if (glob(globs.v[i], 0, NULL, &g) == 0) {
			for (size_t j = 0; j < g.gl_pathc; j++)
				strlist_push(&files, g.gl_pathv[j]);
		} else {
			printf("Checking %s\n  FAILED:\n%s: no such file or no match\n\n", globs.v[i], globs.v[i]);
			ret = 1;
		}
		globfree(&g);
	}
	for (size_t i = 0; i < files.n; i++) {
		/* each file on its own, as promtool checks them */
		arena_t a;
		arena_init(&a, 0);
		strlist_t one = {0}, errs = {0}, dups = {0};
		strlist_push(&one, files.v[i]);
		rule_set_t set = {0};
		printf("Checking %s\n", files.v[i]);
		if (rulefile_load(&a, &one, true, &set, &errs)) {
			printf("  FAILED:\n");
			for (size_t j = 0; j < errs.n; j++)
				printf("%s\n", errs.v[j]);
			ret = 1;
		} else {
			printf("  SUCCESS: %zu rules found\n", set.nrules);
			if (rulefile_duplicates(&set, &dups)) {
				fprintf(stderr, "lint error %zu duplicate rule(s) found.\n", dups.n);
				for (size_t d = 0; d < dups.n; d++)
					fprintf(stderr, "Metric: %s\n", dups.v[d]);
				fprintf(stderr, "Might cause inconsistency while recording expressions\n");
			}
		}
		printf("\n");
		strlist_free(&one);
		strlist_free(&errs);
		strlist_free(&dups);
		rule_set_release(&set);
		arena_release(&a);
	}
	strlist_free(&files);
	strlist_free(&globs);
	return ret;
}
