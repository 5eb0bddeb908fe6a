/* file_util.h - files for the port's I/O suites (test_port_io.c, test_port_epfile.c):
 * contents every reader can check (pat), files whose pages can be dropped from the page
 * cache, and the kernel's word on which pages are cached. Static inline: each suite uses
 * what it needs. */
#ifndef WEFT_TEST_FILE_UTIL_H
#define WEFT_TEST_FILE_UTIL_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weft_test.h"

#define PG 4096u

/* The byte at offset i of every test file. */
static inline unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 131u + (i >> 12) * 7u + 1u);
}

/* A temporary file of n bytes of pat() in dir (unlinked at once); -1 when dir is
 * unusable. */
static inline int tmpfile_in(const char *dir, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "%s/weft-pio-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	unsigned char *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = pat(i);
	ssize_t w = pwrite(fd, b, n, 0);
	free(b);
	if (w != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A file of n bytes of pat() on a disk-backed filesystem (its pages can be dropped),
 * readahead off; -1 when none is usable. */
static inline int cold_file(size_t n)
{
	static const char *dirs[] = {"/var/tmp", "/tmp", "."};
	for (size_t k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
		int fd = tmpfile_in(dirs[k], n);
		if (fd < 0)
			continue;
		posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
		return fd;
	}
	return -1;
}

/* Pages of [off, off + len) in the page cache (at most 64 pages). */
static inline uint32_t resident(int fd, uint64_t off, uint32_t len)
{
	uint64_t start = off / PG * PG;
	size_t n = (size_t)(off + len - start);
	void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, (off_t)start);
	assert_true(m != MAP_FAILED);
	unsigned char v[64];
	size_t pages = (n + PG - 1) / PG;
	assert_true(pages <= sizeof v);
	assert_int_equal(mincore(m, n, v), 0);
	munmap(m, n);
	uint32_t c = 0;
	for (size_t i = 0; i < pages; i++)
		c += v[i] & 1u;
	return c;
}

/* Drops the file's clean pages; true when none is left (the cache can be dropped here). */
static inline bool drop(int fd, size_t n)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	for (size_t off = 0; off < n; off += 64 * PG)
		if (resident(fd, off, (uint32_t)(n - off < 64 * PG ? n - off : 64 * PG)) != 0)
			return false;
	return true;
}

#endif
