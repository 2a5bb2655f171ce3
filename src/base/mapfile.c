/* mapfile.c — map a whole file read-only; see mapfile.h. */
#include "base/mapfile.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mapfile_map(const char *path, size_t min_len, const uint8_t **p, size_t *len, err_t *err)
{
	*p = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(err, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = err_errno(err, "stat %s", path);
		close(fd);
		return rc;
	}
	size_t n = (size_t)st.st_size;
	if (n == 0 || n < min_len) {
		close(fd);
		*len = n;
		return 0;
	}
	void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return err_errno(err, "mmap %s", path);
	*p = m;
	*len = n;
	return 0;
}

void mapfile_unmap(const uint8_t *p, size_t len)
{
	if (p)
		munmap((void *)p, len);
}

void mapfile_release(const uint8_t *p, size_t from, size_t to)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t a = (from + pg - 1) / pg * pg, b = to / pg * pg;
	if (p && b > a)
		madvise((void *)(p + a), b - a, MADV_DONTNEED);
}
