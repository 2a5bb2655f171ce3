/* selector_fuzz — series selector parsing (model/selector.h) and matcher construction/matching: never
 * a crash, errors carry a message, a parsed selector formats to a selector that parses again to the
 * same text, and matching a few subjects (including a long one, for PCRE2's limits) terminates. */
#include "fuzz_util.h"
#include "model/selector.h"

static void match_some(const matcher_t *ms, size_t n)
{
	static char longs[4096];
	if (!longs[0])
		memset(longs, 'a', sizeof longs - 1);
	const str_t subjects[] = {STR(""), STR("a"), STR("foo"), STR("up"), STR("job\nx"), {longs, sizeof longs - 1}};
	labels_t ls = {0};
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < sizeof subjects / sizeof subjects[0]; k++)
			(void)matcher_matches(&ms[i], subjects[k]);
		(void)matcher_matches_empty(&ms[i]);
		(void)matcher_matches_labels(&ms[i], &ls);
		const str_t *vals;
		(void)matcher_literal_values(&ms[i], &vals);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *p = fuzz_copy(data, size);
	matcher_t *ms = NULL;
	size_t n = 0;
	err_t err = {0};
	int rc = selector_parse(str_from(p, size), &ms, &n, &err);
	fuzz_check_err(rc, &err, "selector_parse");
	if (rc == 0) {
		if (n == 0)
			abort();
		match_some(ms, n);
		buf_t b = BUF_INIT, b2 = BUF_INIT;
		matchers_format(&b, ms, n);
		matcher_t *ms2 = NULL;
		size_t n2 = 0;
		if (selector_parse(buf_str(&b), &ms2, &n2, &err) != 0) {
			fprintf(stderr, "formatted selector does not parse: %s: %s\n", b.p, err.msg);
			abort();
		}
		matchers_format(&b2, ms2, n2);
		if (b.n != b2.n || memcmp(b.p, b2.p, b.n) != 0) {
			fprintf(stderr, "selector round trip differs: %s vs %s\n", b.p, b2.p);
			abort();
		}
		selector_free(ms2, n2);
		buf_release(&b);
		buf_release(&b2);
		selector_free(ms, n);
	}
	/* The input as a raw regex (both kinds) for the validator and PCRE2. */
	for (match_type_t t = MATCH_RE; t <= MATCH_NRE; t++) {
		matcher_t m;
		err = (err_t){0};
		rc = matcher_init(&m, t, STR("l"), str_from(p, size), &err);
		fuzz_check_err(rc, &err, "matcher_init");
		if (rc == 0) {
			match_some(&m, 1);
			matcher_release(&m);
		}
	}
	free(p);
	return 0;
}
