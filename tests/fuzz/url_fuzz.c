/* url_fuzz — percent-decoding and query/form parsing (net/url.h): never a crash, errors carry a
 * message, and escaping then parsing a decoded pair gives it back. */
#include "base/arena.h"
#include "fuzz_util.h"
#include "net/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *p = fuzz_copy(data, size);
	str_t s = str_from(p, size);
	arena_t a;
	arena_init(&a, 0);
	for (int plus = 0; plus <= 1; plus++) {
		str_t out;
		err_t err = {0};
		int rc = url_unescape(&a, s, plus, &out, &err);
		fuzz_check_err(rc, &err, "url_unescape");
		if (rc == 0 && out.p[out.n] != 0)
			abort();
	}
	url_params_t params = {0};
	err_t err = {0};
	int rc = url_parse_query(&a, s, &params, &err);
	fuzz_check_err(rc, &err, "url_parse_query");
	for (size_t i = 0; i < params.n; i++) {
		buf_t b = BUF_INIT;
		url_escape(&b, params.v[i].key);
		buf_append(&b, "=", 1);
		url_escape(&b, params.v[i].val);
		url_params_t back = {0};
		if (url_parse_query(&a, buf_str(&b), &back, &err) != 0 || back.n != 1) {
			fprintf(stderr, "escaped pair does not parse back: %s\n", b.p);
			abort();
		}
		if ((!str_eq(back.v[0].key, params.v[i].key) || !str_eq(back.v[0].val, params.v[i].val))) {
			fprintf(stderr, "escaped pair parses to something else: %s\n", b.p);
			abort();
		}
		buf_release(&b);
	}
	str_t vals[4], v1;
	(void)url_params_get(&params, "match[]", &v1);
	(void)url_params_all(&params, "match[]", vals, 4);
	arena_release(&a);
	free(p);
	return 0;
}
