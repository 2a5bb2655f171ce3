/* tombstones_fuzz — the tombstones file reader (tsdb/meta.h: tombstones_read, tombstones_load) over
 * arbitrary file contents in a private temporary block directory; loaded intervals are sorted by ref
 * and can be written back and read again to the same intervals. */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tsdb/meta.h"

static char dir[64];

static void write_file(const uint8_t *data, size_t size)
{
	char path[96];
	snprintf(path, sizeof path, "%s/tombstones", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/strata-tombfuzz-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	if (size > 65536)
		return 0;
	write_file(data, size);
	err_t err = {0};
	uint64_t n = 0;
	int rc = tombstones_read(dir, &n, &err);
	fuzz_check_err(rc, &err, "tombstones_read");
	tombstones_t t = {0};
	err = (err_t){0};
	int rc2 = tombstones_load(dir, &t, &err);
	fuzz_check_err(rc2, &err, "tombstones_load");
	if ((rc == 0) != (rc2 == 0)) {
		fprintf(stderr, "tombstones_read %d but tombstones_load %d\n", rc, rc2);
		abort();
	}
	if (rc2 == 0) {
		if (t.n != n)
			abort();
		for (size_t i = 1; i < t.n; i++)
			if (t.v[i - 1].ref > t.v[i].ref)
				abort();
		for (size_t i = 0; i < t.n; i++) {
			size_t k;
			const tomb_interval_t *iv = tombstones_of(&t, t.v[i].ref, &k);
			if (!iv || k == 0)
				abort();
		}
		if (tombstones_write(dir, t.v, t.n, &err) != 0)
			abort();
		tombstones_t t2 = {0};
		if (tombstones_load(dir, &t2, &err) != 0 || t2.n != t.n)
			abort();
		tombstones_release(&t2);
	}
	tombstones_release(&t);
	return 0;
}
