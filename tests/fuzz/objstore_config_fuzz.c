/* objstore_config_fuzz — objstore YAML configuration (objstore/config.h) with FILESYSTEM and S3 keys:
 * never a crash, errors carry a message. mkdir is replaced so a fuzzed
 * FILESYSTEM directory never touches the disk (fs_bucket_new then fails to resolve it, or opens an
 * existing directory read-only). */
#include <errno.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "objstore/config.h"

int mkdir(const char *path, mode_t mode);
int mkdir(const char *path, mode_t mode)
{
	(void)path;
	(void)mode;
	errno = EEXIST;
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	char *p = fuzz_copy(data, size);
	bucket_t *b = NULL;
	err_t err = {0};
	int rc = objstore_from_config(p, size, &b, &err);
	fuzz_check_err(rc, &err, "objstore_from_config");
	if (rc == 0) {
		if (!b)
			abort();
		bucket_free(b);
	}
	free(p);
	return 0;
}
