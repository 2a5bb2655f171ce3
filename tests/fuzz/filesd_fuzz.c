/* filesd_fuzz — the querier's file SD parser (query/endpoints.h: endpoint_set_new reads
 * --endpoint.sd-files documents, JSON or YAML by extension): the first byte picks the extension. Never
 * a crash, errors carry a message; nothing is dialled. */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "query/endpoints.h"

static char dir[64];

static store_t *no_dial(const char *address, void *arg, err_t *err)
{
	(void)address;
	(void)arg;
	err_set(err, ERR_INTERNAL, "fuzz: no dialling");
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/strata-sdfuzz-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	if (size < 1 || size > 65536)
		return 0;
	static const char *const exts[] = {"json", "yaml", "yml", "txt"};
	char path[128];
	snprintf(path, sizeof path, "%s/sd.%s", dir, exts[data[0] & 3]);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)))
		abort();
	close(fd);
	const char *files[] = {path};
	endpoint_set_config_t cfg = {.sd_files = files, .nsd_files = 1, .dial = no_dial};
	endpoint_set_t *es = NULL;
	err_t err = {0};
	int rc = endpoint_set_new(&es, &cfg, &err);
	fuzz_check_err(rc, &err, "endpoint_set_new");
	if (rc == 0) {
		arena_t a;
		arena_init(&a, 0);
		endpoint_status_t *st;
		(void)endpoint_set_status(es, &a, &st);
		arena_release(&a);
		endpoint_set_free(es);
	}
	unlink(path);
	return 0;
}
