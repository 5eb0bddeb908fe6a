/* test_http_server.c - weft-server's HTTP/1.1 file server (net/src/http_server.c) on
 * 127.0.0.1, on each backend (ctest runs it with WEFT_BACKEND=uring and =epoll).
 *
 * Each test starts a server in-process on port 0 over a fresh temporary root and drives
 * it with blocking sockets (every receive bounded by SO_RCVTIMEO, so a hang fails the
 * test). If curl is on the machine, one test also runs it against the server. */
#include "weft_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "http_parse.h"
#include "http_server.h"

#define HEADER_TIMEOUT_MS 1000u
#define MAX_UPLOAD (128ull << 20)
#define FILE_CACHE_MS 100u
#ifndef CURL_MB
#define CURL_MB 100u                /* the curl test's file, in MB (10^6 bytes) */
#endif          /* a cached small file is rechecked after this */

struct fixture {
	char root[64];
	weft__http_server *h;
	bool stopped;
	int port;
	size_t data_len;
	unsigned char *data;        /* the contents of data.bin */
};

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static unsigned char *read_file(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	unsigned char *p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*n = got;
	return p;
}

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

static bool g_copy;   /* the next setup serves bodies by copy instead of sendfile */
static bool g_walk;   /* the next setup opens by the O_NOFOLLOW walk, not openat2 */
static bool g_solo;   /* the next setup runs one port thread: the port's solo mode */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->root, sizeof f->root, "/tmp/weft-http-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	char p[256];
	snprintf(p, sizeof p, "%s/sub", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	write_file(f->root, "small.txt", "hello, weft\n", 12);
	write_file(f->root, "index.html", "<p>hi</p>\n", 10);
	f->data_len = (size_t)weft_test_iters(4u << 20) + 123;
	f->data = malloc(f->data_len);
	assert_non_null(f->data);
	fill(f->data, f->data_len, 7);
	write_file(f->root, "data.bin", f->data, f->data_len);
	snprintf(p, sizeof p, "%s/out", f->root);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof p, "%s/outdir", f->root);
	assert_int_equal(symlink("/etc", p), 0);
	snprintf(p, sizeof p, "%s/inside", f->root);
	assert_int_equal(symlink("small.txt", p), 0);

	struct weft__http_server_config cfg = { .net = { .listen = "127.0.0.1:0", .threads = g_solo ? 1 : 2 },
		.root = f->root, .max_upload = MAX_UPLOAD, .header_timeout_ms = HEADER_TIMEOUT_MS,
		.no_sendfile = g_copy, .force_walk = g_walk, .file_cache_ms = FILE_CACHE_MS };
	int err = 0;
	f->h = weft__http_server_create(&cfg, &err);
	if (!f->h && err == -ENODEV) {
		fprintf(stderr, "backend %s not available here: skipped\n", getenv("WEFT_BACKEND"));
		exit(77);
	}
	if (!f->h)
		fail_msg("weft__http_server_create: %s", strerror(-err));
	f->port = weft_server_port(weft__http_server_net(f->h));
	const char *be = getenv("WEFT_BACKEND");
	if (be)
		assert_string_equal(weft_server_backend(weft__http_server_net(f->h)), be);
	*state = f;
	return 0;
}

static int setup_copy(void **state)
{
	g_copy = true;
	int rc = setup(state);
	g_copy = false;
	return rc;
}

static int setup_walk(void **state)
{
	g_walk = true;
	int rc = setup(state);
	g_walk = false;
	return rc;
}

static int setup_solo(void **state)
{
	g_solo = true;
	int rc = setup(state);
	g_solo = false;
	return rc;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f->stopped)
		weft__http_server_stop(f->h, 2000);
	weft__http_server_destroy(f->h);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f->data);
	free(f);
	return 0;
}

/* ---- a client ---------------------------------------------------------------------------- */

struct client {
	int fd;
	char *buf;                  /* received, not yet consumed */
	size_t len, cap;
};

struct resp {
	int status;
	char head[4096];
	long long content_length;   /* -1: none */
	unsigned char *body;
	size_t body_len;
};

static void cl_open(struct client *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		/* a signal may interrupt it; the connection then completes on its own */
		if (errno != EINTR)
			fail_msg("connect: %s", strerror(errno));
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		int pr;
		while ((pr = poll(&pfd, 1, 10000)) < 0 && errno == EINTR) {
		}
		int e = 0;
		socklen_t el = sizeof e;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (pr != 1 || e != 0)
			fail_msg("connect: %s", pr != 1 ? "timed out" : strerror(e));
	}
	c->cap = 65536;
	c->buf = malloc(c->cap);
	assert_non_null(c->buf);
}

static void cl_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

static void cl_send(struct client *c, const void *p, size_t n)
{
	const char *q = p;
	while (n) {
		ssize_t r = send(c->fd, q, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail_msg("send: %s", strerror(errno));
		q += r;
		n -= (size_t)r;
	}
}

static void cl_sends(struct client *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Reads more bytes; false at EOF or reset. Fails on the receive timeout. */
static bool cl_fill(struct client *c)
{
	if (c->len == c->cap) {
		c->cap *= 2;
		c->buf = realloc(c->buf, c->cap);
		assert_non_null(c->buf);
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r > 0) {
			c->len += (size_t)r;
			return true;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fail_msg("no answer from the server within the receive timeout");
		return false;
	}
}

static void cl_consume(struct client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static const char *find_header(const struct resp *r, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			*vlen = (size_t)(strstr(v, "\r\n") - v);
			return v;
		}
	}
	return NULL;
}

/* Reads one response (no body for HEAD or when no_body). Returns false if the connection
 * ended before a head arrived. */
static bool cl_response(struct client *c, struct resp *r, bool no_body)
{
	memset(r, 0, sizeof *r);
	char *end;
	for (;;) {
		end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (end)
			break;
		if (!cl_fill(c))
			return false;
	}
	size_t hl = (size_t)(end - c->buf) + 4;
	assert_true(hl < sizeof r->head);
	memcpy(r->head, c->buf, hl);
	r->head[hl] = '\0';
	cl_consume(c, hl);
	assert_int_equal(strncmp(r->head, "HTTP/1.1 ", 9), 0);
	r->status = atoi(r->head + 9);
	size_t vl;
	const char *v = find_header(r, "Content-Length", &vl);
	r->content_length = v ? atoll(v) : -1;
	if (no_body || r->content_length <= 0)
		return true;
	r->body_len = (size_t)r->content_length;
	r->body = malloc(r->body_len + 1);
	assert_non_null(r->body);
	size_t got = 0;
	while (got < r->body_len) {
		if (c->len == 0 && !cl_fill(c))
			fail_msg("connection closed after %zu of %zu body bytes", got, r->body_len);
		size_t n = c->len < r->body_len - got ? c->len : r->body_len - got;
		memcpy(r->body + got, c->buf, n);
		cl_consume(c, n);
		got += n;
	}
	return true;
}

/* True when the server closes the connection (EOF or reset) with nothing more sent. */
static bool cl_sees_close(struct client *c)
{
	size_t before = c->len;
	while (cl_fill(c)) {
	}
	return c->len == before;
}

/* One request on a fresh connection; returns the status, body kept in r. */
static int one(struct fixture *f, const char *req, struct resp *r)
{
	struct client c;
	cl_open(&c, f->port);
	cl_sends(&c, req);
	bool head = strncmp(req, "HEAD ", 5) == 0;
	if (!cl_response(&c, r, head))
		fail_msg("no response to %.40s", req);
	cl_close(&c);
	return r->status;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

static bool body_has(const struct resp *r, const char *s)
{
	return r->body && memmem(r->body, r->body_len, s, strlen(s)) != NULL;
}

/* ---- GET, HEAD, Range ------------------------------------------------------------------------ */

static void test_get(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	assert_int_equal(one(f, "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_int_equal(r.body_len, f->data_len);
	assert_memory_equal(r.body, f->data, f->data_len);
	size_t vl;
	assert_non_null(find_header(&r, "Last-Modified", &vl));
	const char *ct = find_header(&r, "Content-Type", &vl);
	assert_non_null(ct);
	assert_int_equal(strncmp(ct, "application/octet-stream", vl), 0);
	resp_free(&r);

	assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_int_equal(r.body_len, 12);
	assert_memory_equal(r.body, "hello, weft\n", 12);
	ct = find_header(&r, "Content-Type", &vl);
	assert_non_null(ct);
	assert_int_equal(strncmp(ct, "text/plain", 10), 0);
	resp_free(&r);

	/* a symlink that stays beneath the root is followed */
	assert_int_equal(one(f, "GET /inside HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_memory_equal(r.body, "hello, weft\n", 12);
	resp_free(&r);

	assert_int_equal(one(f, "GET /index.html HTTP/1.0\r\n\r\n", &r), 200);
	assert_memory_equal(r.body, "<p>hi</p>\n", 10);
	resp_free(&r);

	/* /stats: JSON with the counters */
	assert_int_equal(one(f, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_true(body_has(&r, "\"accepted\":"));
	assert_true(body_has(&r, "\"requests\":"));
	resp_free(&r);
}

static void test_head_and_range(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	/* HEAD: the length of the file and no body: the next response follows at once */
	cl_sends(&c, "HEAD /data.bin HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, true));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.content_length, (long long)f->data_len);
	cl_sends(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 206);
	assert_int_equal(r.body_len, 10);
	assert_memory_equal(r.body, f->data + 10, 10);
	size_t vl;
	const char *cr = find_header(&r, "Content-Range", &vl);
	assert_non_null(cr);
	char want[64];
	snprintf(want, sizeof want, "bytes 10-19/%zu", f->data_len);
	assert_int_equal(vl, strlen(want));
	assert_memory_equal(cr, want, vl);
	resp_free(&r);

	/* a suffix, and an open range from the middle */
	cl_sends(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 206);
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, f->data + f->data_len - 5, 5);
	resp_free(&r);
	size_t mid = f->data_len / 3;
	char req[128];
	snprintf(req, sizeof req, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=%zu-\r\n\r\n", mid);
	cl_sends(&c, req);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 206);
	assert_int_equal(r.body_len, f->data_len - mid);
	assert_memory_equal(r.body, f->data + mid, f->data_len - mid);
	resp_free(&r);

	/* unsatisfiable: 416 with the size, and the connection stays usable */
	snprintf(req, sizeof req, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=%zu-\r\n\r\n", f->data_len);
	cl_sends(&c, req);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 416);
	cr = find_header(&r, "Content-Range", &vl);
	assert_non_null(cr);
	snprintf(want, sizeof want, "bytes */%zu", f->data_len);
	assert_memory_equal(cr, want, strlen(want));
	resp_free(&r);
	cl_sends(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	resp_free(&r);
	cl_close(&c);
}

/* ---- keep-alive and pipelining ---------------------------------------------------------------- */

static void test_pipelining(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	/* three requests in one write, the big one in the middle: answered in order */
	cl_sends(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
	struct resp r;
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 12);
	assert_memory_equal(r.body, "hello, weft\n", 12);
	resp_free(&r);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, f->data_len);
	assert_memory_equal(r.body, f->data, f->data_len);
	resp_free(&r);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, "<p>hi</p>\n", 10);
	resp_free(&r);

	/* many small ones in one write, then Connection: close ends it after the answer */
	char big[64 * 40 + 128];
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	n += (size_t)snprintf(big + n, sizeof big - n, "GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	cl_send(&c, big, n);
	for (int i = 0; i < 40; i++) {
		assert_true(cl_response(&c, &r, false));
		assert_int_equal(r.status, 200);
		assert_memory_equal(r.body, "hello, weft\n", 12);
		resp_free(&r);
	}
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, "<p>hi</p>\n", 10);
	size_t vl;
	const char *cn = find_header(&r, "Connection", &vl);
	assert_non_null(cn);
	assert_int_equal(strncasecmp(cn, "close", 5), 0);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
}

/* ---- refusals --------------------------------------------------------------------------------- */

static void expect_refused(struct fixture *f, const char *req, int status)
{
	struct resp r;
	int st = one(f, req, &r);
	if (st != status)
		fail_msg("%.60s: %d, expected %d", req, st, status);
	assert_false(body_has(&r, "root:"));
	resp_free(&r);
}

static void test_not_found_and_traversal(void **state)
{
	struct fixture *f = *state;
	expect_refused(f, "GET /nope.txt HTTP/1.1\r\nHost: t\r\n\r\n", 404);
	expect_refused(f, "GET /sub HTTP/1.1\r\nHost: t\r\n\r\n", 404);   /* a directory */
	expect_refused(f, "GET /../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 403);
	expect_refused(f, "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 403);
	expect_refused(f, "GET /sub/%2E%2E/%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 403);
	expect_refused(f, "GET /%2fetc%2fpasswd HTTP/1.1\r\nHost: t\r\n\r\n", 403);
	/* symlinks out of the root: refused however they are reached */
	struct resp r;
	int st = one(f, "GET /out HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	assert_true(st == 403 || st == 404);
	assert_false(body_has(&r, "root:"));
	resp_free(&r);
	st = one(f, "GET /outdir/passwd HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	assert_true(st == 403 || st == 404);
	assert_false(body_has(&r, "root:"));
	resp_free(&r);
	/* nor may PUT write through one */
	st = one(f, "PUT /outdir/weft-test-escape HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", &r);
	assert_true(st == 403 || st == 404);
	resp_free(&r);
	assert_int_equal(access("/etc/weft-test-escape", F_OK), -1);
}

static void test_bad_input(void **state)
{
	struct fixture *f = *state;
	struct client c;
	struct resp r;
	/* garbage: 400 and closed */
	cl_open(&c, f->port);
	cl_sends(&c, "\x01\x02 garbage \x7f\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 400);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
	cl_open(&c, f->port);
	cl_sends(&c, "GET /small.txt HTTP/1.1\r\nHost t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 400);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);

	/* a head over the limit: 431 and closed */
	size_t n = 20000;
	char *big = malloc(n + 64);
	assert_non_null(big);
	int k = snprintf(big, 64, "GET / HTTP/1.1\r\nX-Big: ");
	memset(big + k, 'a', n);
	memcpy(big + k + n, "\r\n\r\n", 5);
	cl_open(&c, f->port);
	cl_sends(&c, big);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 431);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
	free(big);

	expect_refused(f, "DELETE /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 405);
	expect_refused(f, "FROB /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 501);
	/* the server is still up */
	assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	resp_free(&r);
	assert_int_equal(access("/tmp", F_OK), 0);
	char p[256];
	snprintf(p, sizeof p, "%s/small.txt", f->root);
	assert_int_equal(access(p, F_OK), 0);   /* DELETE did not delete */
}

/* ---- PUT -------------------------------------------------------------------------------------- */

static void put(struct client *c, const char *path, const unsigned char *p, size_t n, struct resp *r)
{
	char head[256];
	snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", path, n);
	cl_sends(c, head);
	cl_send(c, p, n);
	assert_true(cl_response(c, r, false));
}

static void test_put_roundtrip(void **state)
{
	struct fixture *f = *state;
	size_t n = (size_t)weft_test_iters(6u << 20) + 7;
	unsigned char *p = malloc(n);
	assert_non_null(p);
	fill(p, n, 99);
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	put(&c, "/sub/up.bin", p, n, &r);
	assert_int_equal(r.status, 201);
	resp_free(&r);
	cl_sends(&c, "GET /sub/up.bin HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, n);
	assert_memory_equal(r.body, p, n);
	resp_free(&r);
	/* replaced: 204, and the new bytes */
	fill(p, 1000, 5);
	put(&c, "/sub/up.bin", p, 1000, &r);
	assert_int_equal(r.status, 204);
	resp_free(&r);
	char path[256];
	snprintf(path, sizeof path, "%s/sub/up.bin", f->root);
	size_t got = 0;
	unsigned char *disk = read_file(path, &got);
	assert_non_null(disk);
	assert_int_equal(got, 1000);
	assert_memory_equal(disk, p, 1000);
	free(disk);
	/* an empty upload */
	put(&c, "/empty", p, 0, &r);
	assert_int_equal(r.status, 201);
	resp_free(&r);
	cl_close(&c);

	/* no Content-Length: 411; too large: 413; both close */
	expect_refused(f, "PUT /x HTTP/1.1\r\nHost: t\r\n\r\n", 411);
	char req[160];
	snprintf(req, sizeof req, "PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n",
		 (unsigned long long)MAX_UPLOAD + 1);
	expect_refused(f, req, 413);
	expect_refused(f, "PUT /nodir/x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", 404);
	snprintf(path, sizeof path, "%s/x", f->root);
	assert_int_equal(access(path, F_OK), -1);
	free(p);
}

/* ---- the small-file cache ------------------------------------------------------------------------ */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* GET path on c (keep-alive) and expect 200 with exactly body. */
static void get_expect(struct client *c, const char *path, const char *body)
{
	char req[256];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	cl_sends(c, req);
	struct resp r;
	assert_true(cl_response(c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, strlen(body));
	assert_memory_equal(r.body, body, r.body_len);
	size_t vl;
	assert_non_null(find_header(&r, "Date", &vl));
	assert_int_equal(vl, 29);
	assert_non_null(find_header(&r, "Last-Modified", &vl));
	assert_null(find_header(&r, "Connection", &vl));
	resp_free(&r);
}

static void test_file_cache(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	/* repeated and pipelined hits: every answer whole and in order (threads = 2, so
	 * both threads' caches fill) */
	for (int i = 0; i < 20; i++)
		get_expect(&c, "/small.txt", "hello, weft\n");
	char pipe[1024] = "";
	for (int i = 0; i < 10; i++)
		strcat(pipe, i % 2 ? "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n" : "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	cl_sends(&c, pipe);
	for (int i = 0; i < 10; i++) {
		struct resp r;
		assert_true(cl_response(&c, &r, false));
		assert_int_equal(r.status, 200);
		const char *want = i % 2 ? "<p>hi</p>\n" : "hello, weft\n";
		assert_int_equal(r.body_len, strlen(want));
		assert_memory_equal(r.body, want, r.body_len);
		resp_free(&r);
	}
	/* HEAD from the cache: the length, no body, the next answer follows at once */
	cl_sends(&c, "HEAD /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	struct resp r;
	assert_true(cl_response(&c, &r, true));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.content_length, 12);
	get_expect(&c, "/small.txt", "hello, weft\n");

	/* changed on disk (same inode, other size): served new within FILE_CACHE_MS */
	write_file(f->root, "small.txt", "hello again, weft\n", 18);
	sleep_ms(FILE_CACHE_MS * 2 + 50);
	for (int i = 0; i < 4; i++)
		get_expect(&c, "/small.txt", "hello again, weft\n");
	/* replaced by rename (a new inode, the same size and maybe the same mtime second) */
	write_file(f->root, "tmp.txt", "HELLO AGAIN, WEFT\n", 18);
	char a[256], b[256];
	snprintf(a, sizeof a, "%s/tmp.txt", f->root);
	snprintf(b, sizeof b, "%s/small.txt", f->root);
	assert_int_equal(rename(a, b), 0);
	sleep_ms(FILE_CACHE_MS * 2 + 50);
	for (int i = 0; i < 4; i++)
		get_expect(&c, "/small.txt", "HELLO AGAIN, WEFT\n");
	/* removed: 404 once the entry is rechecked */
	assert_int_equal(unlink(b), 0);
	sleep_ms(FILE_CACHE_MS * 2 + 50);
	for (int i = 0; i < 4; i++) {
		cl_sends(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
		assert_true(cl_response(&c, &r, false));
		assert_int_equal(r.status, 404);
		resp_free(&r);
	}
	/* an upload through the server is seen at once by every thread's cache */
	get_expect(&c, "/index.html", "<p>hi</p>\n");
	get_expect(&c, "/index.html", "<p>hi</p>\n");
	put(&c, "/index.html", (const unsigned char *)"<p>new</p>\n", 11, &r);
	assert_int_equal(r.status, 204);
	resp_free(&r);
	struct client d;
	cl_open(&d, f->port);
	for (int i = 0; i < 4; i++) {
		get_expect(&c, "/index.html", "<p>new</p>\n");
		get_expect(&d, "/index.html", "<p>new</p>\n");
	}
	cl_close(&d);
	cl_close(&c);

	/* HTTP/1.0 keep-alive and Connection: close from the cache */
	cl_open(&c, f->port);
	cl_sends(&c, "GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	size_t vl;
	const char *v = find_header(&r, "Connection", &vl);
	assert_non_null(v);
	assert_int_equal(strncasecmp(v, "keep-alive", vl), 0);
	assert_memory_equal(r.body, "<p>new</p>\n", 11);
	resp_free(&r);
	cl_sends(&c, "GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	v = find_header(&r, "Connection", &vl);
	assert_non_null(v);
	assert_int_equal(strncasecmp(v, "close", vl), 0);
	assert_memory_equal(r.body, "<p>new</p>\n", 11);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
}

/* ---- conditional requests ---------------------------------------------------------------------- */

/* One request on c; the status (body read unless HEAD or 304). */
static int ask(struct client *c, const char *req, struct resp *r)
{
	cl_sends(c, req);
	assert_true(cl_response(c, r, strncmp(req, "HEAD ", 5) == 0));
	return r->status;
}

/* The ETag and Last-Modified of path, by a HEAD on c. */
static void validators(struct client *c, const char *path, char *etag, size_t ecap, char *lm, size_t lcap)
{
	char req[256];
	struct resp r;
	snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	assert_int_equal(ask(c, req, &r), 200);
	size_t vl;
	const char *v = find_header(&r, "ETag", &vl);
	assert_non_null(v);
	assert_true(vl < ecap);
	memcpy(etag, v, vl);
	etag[vl] = '\0';
	v = find_header(&r, "Last-Modified", &vl);
	assert_non_null(v);
	assert_true(vl < lcap);
	memcpy(lm, v, vl);
	lm[vl] = '\0';
}

static void test_conditional(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	char req[512], etag[128], lm[64];
	size_t vl;
	for (int k = 0; k < 2; k++) {   /* small.txt (the cache), data.bin (sendfile) */
		const char *path = k ? "/data.bin" : "/small.txt";
		validators(&c, path, etag, sizeof etag, lm, sizeof lm);
		vl = strlen(etag);
		assert_true(vl > 2 && etag[0] == '"' && etag[vl - 1] == '"');
		assert_int_equal(strlen(lm), 29);
		/* If-None-Match: the tag, a list holding it, *, its weak form: 304 without a body */
		const char *inm[] = { etag, NULL, "*", NULL };
		char list[256], weak[160];
		snprintf(list, sizeof list, "\"nope\", %s", etag);
		snprintf(weak, sizeof weak, "W/%s", etag);
		inm[1] = list;
		inm[3] = weak;
		for (int i = 0; i < 4; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n", path, inm[i]);
			assert_int_equal(ask(&c, req, &r), 304);
			assert_int_equal(r.content_length, -1);
			const char *v = find_header(&r, "ETag", &vl);
			assert_non_null(v);
			assert_int_equal(strncmp(v, etag, vl), 0);
		}
		/* another tag: 200 and the bytes, even with a matching If-Modified-Since (the
		 * tag decides when both are sent) */
		snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"nope\"\r\nIf-Modified-Since: %s\r\n\r\n", path, lm);
		assert_int_equal(ask(&c, req, &r), 200);
		assert_int_equal(r.body_len, k ? f->data_len : 12);
		resp_free(&r);
		/* If-Modified-Since: the same date or later 304; earlier 200; unreadable 200 */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", path, lm);
		assert_int_equal(ask(&c, req, &r), 304);
		snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n", path);
		assert_int_equal(ask(&c, req, &r), 304);
		snprintf(req, sizeof req,
			 "HEAD %s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", path);
		assert_int_equal(ask(&c, req, &r), 200);
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: yesterday\r\n\r\n", path);
		assert_int_equal(ask(&c, req, &r), 200);
		resp_free(&r);
		/* If-Range: the tag or the date keeps the range (206); another tag, a weak one,
		 * another date or the field repeated (invalid, even with the tag twice) sends the
		 * whole file (200) */
		const char *ir[] = { etag, lm, "\"nope\"", weak, "Thu, 01 Jan 1970 00:00:00 GMT", etag };
		for (int i = 0; i < 6; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nRange: bytes=2-5\r\nIf-Range: %s\r\n%s%s%s\r\n",
				 path, ir[i], i == 5 ? "If-Range: " : "", i == 5 ? etag : "", i == 5 ? "\r\n" : "");
			int st = ask(&c, req, &r);
			if (i < 2) {
				assert_int_equal(st, 206);
				assert_int_equal(r.body_len, 4);
				assert_memory_equal(r.body, k ? (const char *)f->data + 2 : "llo,", 4);
			} else {
				assert_int_equal(st, 200);
				assert_int_equal(r.body_len, k ? f->data_len : 12);
			}
			resp_free(&r);
		}
	}
	/* the connection stayed usable throughout (keep-alive after 304) */
	get_expect(&c, "/small.txt", "hello, weft\n");
	cl_close(&c);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Waits (bounded) until the server has no connection and the fd count is back to (or
 * below: a late close of a connection from before the baseline) fds; fds < 0 waits for
 * no connection only. */
static void wait_baseline(struct fixture *f, int fds)
{
	uint64_t end = weft_test_now_ns() + 10000000000ull;
	for (;;) {
		weft_server_stats st;
		weft_server_get_stats(weft__http_server_net(f->h), &st);
		if (st.active == 0 && (fds < 0 || count_fds() <= fds))
			return;
		if (weft_test_now_ns() > end)
			fail_msg("still %llu connections, %d fds (baseline %d)", (unsigned long long)st.active,
				 count_fds(), fds);
		usleep(10000);
	}
}

/* Warms the server (one GET: its thread caches, buffers), waits until no connection is
 * left, and returns the descriptor count the test must come back to. */
static int warm_baseline(struct fixture *f)
{
	struct resp r;
	assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	resp_free(&r);
	wait_baseline(f, -1);
	usleep(100000);
	return count_fds();
}

static void test_interrupted(void **state)
{
	struct fixture *f = *state;
	char sub[128];
	snprintf(sub, sizeof sub, "%s/sub", f->root);
	int fds = warm_baseline(f);
	/* the client closes mid-body: no file, no temporary left */
	size_t n = 300000;
	unsigned char *p = malloc(n);
	assert_non_null(p);
	fill(p, n, 3);
	for (int i = 0; i < 3; i++) {
		struct client c;
		cl_open(&c, f->port);
		if (i < 2) {
			cl_sends(&c, "PUT /sub/cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
			cl_send(&c, p, n);
		} else {
			/* a reset, once the server said it takes the body: a reset may discard
			 * bytes the server has not read yet, so first make sure it began */
			cl_sends(&c, "PUT /sub/cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n"
				     "Expect: 100-continue\r\n\r\n");
			struct resp r100;
			assert_true(cl_response(&c, &r100, true));
			assert_int_equal(r100.status, 100);
			cl_send(&c, p, n);
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		cl_close(&c);
	}
	/* a reset in the middle of a download */
	for (int i = 0; i < 2; i++) {
		struct client c;
		cl_open(&c, f->port);
		cl_sends(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n");
		assert_true(cl_fill(&c));
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		cl_close(&c);
	}
	wait_baseline(f, fds);
	assert_int_equal(count_entries(sub), 0);
	/* memory back too: no buffer held, nothing counted as queued (sendfile pieces cut
	 * by the reset included) */
	weft_server_stats ns;
	weft_server_get_stats(weft__http_server_net(f->h), &ns);
	assert_int_equal(ns.buf_in_use, 0);
	assert_int_equal(ns.queued_bytes, 0);
	struct weft__http_stats hs;
	weft__http_server_get_stats(f->h, &hs);
	assert_int_equal(hs.upload_aborts, 3);
	assert_int_equal(hs.uploads, 0);
	free(p);
}

/* ---- a slow client ---------------------------------------------------------------------------- */

static void test_slow_client(void **state)
{
	struct fixture *f = *state;
	struct client slow;
	cl_open(&slow, f->port);
	uint64_t t0 = weft_test_now_ns();
	cl_sends(&slow, "GET /small.txt HTTP/1.1\r\nHo");
	/* others are served meanwhile */
	for (int i = 0; i < 5; i++) {
		struct resp r;
		assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
		resp_free(&r);
	}
	assert_true(cl_sees_close(&slow));
	uint64_t ms = (weft_test_now_ns() - t0) / 1000000u;
	assert_true(ms >= HEADER_TIMEOUT_MS * 3 / 4);
	assert_true(ms < 15000);
	cl_close(&slow);
	/* the counter may trail the close the client saw by a moment */
	uint64_t end = weft_test_now_ns() + 10000000000ull;
	weft_server_stats st;
	do {
		weft_server_get_stats(weft__http_server_net(f->h), &st);
		if (st.timeouts >= 1)
			break;
		usleep(10000);
	} while (weft_test_now_ns() < end);
	assert_true(st.timeouts >= 1);
}

/* The fallback where openat2 is missing: the same refusals, and no symlink is followed,
 * even one that stays inside; plain files and uploads work as before. */
static void test_walk_fallback(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	assert_int_equal(one(f, "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_int_equal(r.body_len, f->data_len);
	assert_memory_equal(r.body, f->data, f->data_len);
	resp_free(&r);
	const char *bad[] = { "/out", "/outdir/passwd", "/inside", "/../etc/passwd", "/%2e%2e/etc/passwd" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char req[128];
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", bad[i]);
		int st = one(f, req, &r);
		if (st != 403 && st != 404)
			fail_msg("%s: %d", bad[i], st);
		assert_false(body_has(&r, "root:"));
		resp_free(&r);
	}
	int st = one(f, "PUT /outdir/weft-test-escape HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", &r);
	assert_true(st == 403 || st == 404);
	resp_free(&r);
	assert_int_equal(access("/etc/weft-test-escape", F_OK), -1);
	assert_int_equal(one(f, "PUT /sub/w.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r), 201);
	resp_free(&r);
	assert_int_equal(one(f, "GET /sub/w.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	assert_int_equal(r.body_len, 3);
	assert_memory_equal(r.body, "abc", 3);
	resp_free(&r);
}

/* ---- graceful stop ---------------------------------------------------------------------------- */

struct stopper {
	weft__http_server *h;
	int forced;
	uint64_t ns;
};

static void *stop_thread(void *arg)
{
	struct stopper *st = arg;
	uint64_t t0 = weft_test_now_ns();
	st->forced = weft__http_server_stop(st->h, 20000);
	st->ns = weft_test_now_ns() - t0;
	return NULL;
}

static void test_graceful_stop(void **state)
{
	struct fixture *f = *state;
	struct client busy, idle;
	struct resp r;
	/* idle: one answered request, then nothing (keep-alive) */
	cl_open(&idle, f->port);
	cl_sends(&idle, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&idle, &r, false));
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* busy: a download under way, its head read and its body not yet */
	cl_open(&busy, f->port);
	cl_sends(&busy, "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n");
	while (!memmem(busy.buf, busy.len, "\r\n\r\n", 4))
		assert_true(cl_fill(&busy));
	struct stopper st = { .h = f->h };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, stop_thread, &st), 0);
	/* the download finishes whole, then the server closes both connections */
	assert_true(cl_response(&busy, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, f->data_len);
	assert_memory_equal(r.body, f->data, f->data_len);
	resp_free(&r);
	assert_true(cl_sees_close(&busy));
	assert_true(cl_sees_close(&idle));
	assert_int_equal(pthread_join(t, NULL), 0);
	f->stopped = true;
	assert_int_equal(st.forced, 0);              /* nothing had to be cut at the deadline */
	assert_true(st.ns < 15000000000ull);
	cl_close(&busy);
	cl_close(&idle);
}

/* A head trickling in one byte at a time, each well inside the idle timeout: the head's
 * own deadline answers 408 and closes, while others are served. */
static void test_trickling_client(void **state)
{
	struct fixture *f = *state;
	struct client slow;
	cl_open(&slow, f->port);
	uint64_t t0 = weft_test_now_ns();
	const char *head = "GET /small.txt HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	size_t i = 0;
	bool refused = false;
	while (!refused && weft_test_now_ns() - t0 < 20000000000ull) {
		char ch = head[i % strlen(head)];
		i++;
		if (send(slow.fd, &ch, 1, MSG_NOSIGNAL) != 1)
			break;   /* closed under us */
		usleep(HEADER_TIMEOUT_MS * 1000 / 5);
		struct pollfd pfd = { .fd = slow.fd, .events = POLLIN };
		if (poll(&pfd, 1, 0) == 1)
			refused = true;
		if (i % 5 == 0) {
			struct resp r;   /* another client is served meanwhile */
			assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
			resp_free(&r);
		}
	}
	struct resp r;
	assert_true(cl_response(&slow, &r, false));
	assert_int_equal(r.status, 408);
	resp_free(&r);
	assert_true(cl_sees_close(&slow));
	uint64_t ms = (weft_test_now_ns() - t0) / 1000000u;
	assert_true(ms >= HEADER_TIMEOUT_MS);
	assert_true(ms < 15000);
	cl_close(&slow);
}

/* ---- preconditions: If-Match, If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4, 13.2.2) ---------- */

/* A 412: no body (Content-Length: 0) and, unless said otherwise, the connection kept. */
static void assert_412(const struct resp *r)
{
	assert_int_equal(r->status, 412);
	assert_int_equal(r->content_length, 0);
	size_t vl;
	assert_null(find_header(r, "Connection", &vl));
}

static void test_preconditions_get(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	char req[512], etag[128], lm[64], weak[160], list[256];
	for (int k = 0; k < 2; k++) {   /* small.txt (cacheable), data.bin (sendfile) */
		const char *path = k ? "/data.bin" : "/small.txt";
		size_t size = k ? f->data_len : 12;
		validators(&c, path, etag, sizeof etag, lm, sizeof lm);
		snprintf(weak, sizeof weak, "W/%s", etag);
		snprintf(list, sizeof list, "\"nope\", %s", etag);
		/* If-Match: the tag, *, a list holding it: the file; another tag or the weak form
		 * (strong comparison): 412 without a body, the connection kept */
		const char *yes[] = { etag, "*", list };
		for (int i = 0; i < 3; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\n\r\n", path, yes[i]);
			assert_int_equal(ask(&c, req, &r), 200);
			assert_int_equal(r.body_len, size);
			resp_free(&r);
		}
		const char *no[] = { "\"nope\"", weak, "\"nope\", W/\"x\"" };
		for (int i = 0; i < 3; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\n\r\n", path, no[i]);
			assert_int_equal(ask(&c, req, &r), 412);
			assert_412(&r);
			snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\n\r\n", path, no[i]);
			assert_int_equal(ask(&c, req, &r), 412);
			assert_412(&r);
		}
		/* If-Unmodified-Since: the date itself or later: the file; earlier: 412; a date
		 * weft cannot read is ignored */
		const char *dates[] = { lm, "Fri, 31 Dec 9999 23:59:59 GMT", "yesterday" };
		for (int i = 0; i < 3; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: %s\r\n\r\n", path,
				 dates[i]);
			assert_int_equal(ask(&c, req, &r), 200);
			assert_int_equal(r.body_len, size);
			resp_free(&r);
		}
		snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", path);
		assert_int_equal(ask(&c, req, &r), 412);
		assert_412(&r);
		/* the order of 13.2.2: If-Match decides and If-Unmodified-Since is then ignored */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\n"
			 "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", path, etag);
		assert_int_equal(ask(&c, req, &r), 200);
		resp_free(&r);
		/* step 1 before step 3: a failed If-Match is 412 even when If-None-Match would be 304 */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: \"nope\"\r\nIf-None-Match: %s\r\n\r\n",
			 path, etag);
		assert_int_equal(ask(&c, req, &r), 412);
		/* both pass: If-None-Match then answers 304 */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\nIf-None-Match: %s\r\n\r\n", path,
			 etag, etag);
		assert_int_equal(ask(&c, req, &r), 304);
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 "
			 "GMT\r\nIf-None-Match: %s\r\n\r\n", path, etag);
		assert_int_equal(ask(&c, req, &r), 412);
		/* If-Match with a Range: the range */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\nRange: bytes=1-3\r\n\r\n", path,
			 etag);
		assert_int_equal(ask(&c, req, &r), 206);
		assert_int_equal(r.body_len, 3);
		assert_memory_equal(r.body, k ? (const char *)f->data + 1 : "ell", 3);
		resp_free(&r);
	}
	/* no file: the 404 it would get anyway (13.2.1: preconditions only on a 2xx path) */
	assert_int_equal(ask(&c, "GET /nope HTTP/1.1\r\nHost: t\r\nIf-Match: *\r\n\r\n", &r), 404);
	resp_free(&r);
	/* the connection stayed usable throughout */
	get_expect(&c, "/small.txt", "hello, weft\n");
	cl_close(&c);
	/* HTTP/1.0 and Connection: close: the 412 says close and closes */
	cl_open(&c, f->port);
	assert_int_equal(ask(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\nIf-Match: \"x\"\r\nConnection: close\r\n\r\n", &r),
			 412);
	size_t vl;
	const char *v = find_header(&r, "Connection", &vl);
	assert_non_null(v);
	assert_int_equal(strncasecmp(v, "close", vl), 0);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
}

/* The bytes of root/name are exactly want (NULL: no such file). */
static void assert_file(struct fixture *f, const char *name, const char *want)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", f->root, name);
	size_t n = 0;
	unsigned char *p = read_file(path, &n);
	if (!want) {
		assert_null(p);
		return;
	}
	assert_non_null(p);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
	free(p);
}

/* PUT with a body of len bytes, Content-Length or chunked (two chunks), extra headers. */
static int put_cond(struct client *c, const char *path, const char *hdrs, const char *body, bool chunked,
		    struct resp *r)
{
	char req[1024];
	size_t n = strlen(body), h = n / 2;
	if (chunked && h == 0)
		snprintf(req, sizeof req, "PUT %s HTTP/1.1\r\nHost: t\r\n%sTransfer-Encoding: chunked\r\n\r\n"
			 "%zx\r\n%s\r\n0\r\n\r\n", path, hdrs, n, body);
	else if (chunked)
		snprintf(req, sizeof req, "PUT %s HTTP/1.1\r\nHost: t\r\n%sTransfer-Encoding: chunked\r\n\r\n"
			 "%zx\r\n%.*s\r\n%zx\r\n%s\r\n0\r\n\r\n", path, hdrs, h, (int)h, body, n - h, body + h);
	else
		snprintf(req, sizeof req, "PUT %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s", path, hdrs, n,
			 body);
	cl_sends(c, req);
	assert_true(cl_response(c, r, false));
	resp_free(r);
	return r->status;
}

/* Repeated If-Match / If-None-Match lines make one list (RFC 9110 5.3): a tag on any line
 * counts. A repeated If-Modified-Since / If-Unmodified-Since is no valid date: ignored. */
static void test_preconditions_repeated(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	char req[768], etag[128], lm[64];
	const char *epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
	for (int k = 0; k < 2; k++) {   /* small.txt (cacheable), data.bin (sendfile) */
		const char *path = k ? "/data.bin" : "/small.txt";
		size_t size = k ? f->data_len : 12;
		validators(&c, path, etag, sizeof etag, lm, sizeof lm);
		/* If-None-Match: the tag (or *) only on the second line: 304 */
		const char *second[] = { etag, "*" };
		for (int i = 0; i < 3; i++) {
			if (i < 2)
				snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"nope\"\r\n"
					 "If-None-Match: %s\r\n\r\n", path, second[i]);
			else   /* the tag on the first line: it still counts */
				snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n"
					 "If-None-Match: \"a\", \"b\"\r\n\r\n", path, etag);
			assert_int_equal(ask(&c, req, &r), 304);
			assert_int_equal(r.content_length, -1);
			resp_free(&r);
		}
		/* on neither line: 200 and the bytes */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"nope\"\r\n"
			 "If-None-Match: \"a\", W/\"b\"\r\n\r\n", path);
		assert_int_equal(ask(&c, req, &r), 200);
		assert_int_equal(r.body_len, size);
		resp_free(&r);
		/* If-Match: only the second line matches (the tag, *): the file, not 412 */
		const char *im[] = { etag, "*" };
		for (int i = 0; i < 2; i++) {
			snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: \"nope\"\r\n"
				 "If-Match: %s\r\n\r\n", path, im[i]);
			assert_int_equal(ask(&c, req, &r), 200);
			assert_int_equal(r.body_len, size);
			assert_memory_equal(r.body, k ? (const char *)f->data : "hello, weft\n", size);
			resp_free(&r);
		}
		/* neither line (a weak form fails the strong comparison): 412, GET and HEAD */
		for (int h = 0; h < 2; h++) {
			snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nIf-Match: \"nope\"\r\n"
				 "If-Match: \"x\", W/%s\r\n\r\n", h ? "HEAD" : "GET", path, etag);
			assert_int_equal(ask(&c, req, &r), 412);
			assert_412(&r);
		}
		/* a matching second If-Match line still lets a failed If-None-Match answer 304 */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Match: \"nope\"\r\nIf-Match: %s\r\n"
			 "If-None-Match: %s\r\n\r\n", path, etag, etag);
		assert_int_equal(ask(&c, req, &r), 304);
		resp_free(&r);
		/* each date alone decides (304, 412); sent twice, even the same date, the field
		 * is invalid and ignored: 200 and the bytes */
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", path, lm);
		assert_int_equal(ask(&c, req, &r), 304);
		resp_free(&r);
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: %s\r\n\r\n", path,
			 epoch);
		assert_int_equal(ask(&c, req, &r), 412);
		resp_free(&r);
		const char *dname[2] = { "If-Modified-Since", "If-Unmodified-Since" };
		const char *dates[2][3][2] = { { { lm, lm }, { epoch, lm }, { lm, epoch } },
					       { { epoch, epoch }, { lm, epoch }, { epoch, lm } } };
		for (int d = 0; d < 2; d++)
			for (int i = 0; i < 3; i++) {
				snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s: %s\r\n%s: %s\r\n\r\n",
					 path, dname[d], dates[d][i][0], dname[d], dates[d][i][1]);
				assert_int_equal(ask(&c, req, &r), 200);
				assert_int_equal(r.body_len, size);
				resp_free(&r);
			}
	}
	/* PUT, with Content-Length and chunked bodies */
	char hdr[384];
	for (int ch = 0; ch < 2; ch++) {
		const char *fresh = ch ? "sub/rc.txt" : "sub/rn.txt";
		char url[64];
		snprintf(url, sizeof url, "/%s", fresh);
		/* If-None-Match: * on the second line: create-only */
		const char *inm = "If-None-Match: \"x\"\r\nIf-None-Match: *\r\n";
		assert_int_equal(put_cond(&c, url, inm, "first", ch, &r), 201);
		assert_int_equal(put_cond(&c, url, inm, "second", ch, &r), 412);
		assert_412(&r);
		assert_file(f, fresh, "first");
		/* If-Match: the current tag on the second line replaces (204) */
		validators(&c, url, etag, sizeof etag, lm, sizeof lm);
		snprintf(hdr, sizeof hdr, "If-Match: \"nope\"\r\nIf-Match: %s\r\n", etag);
		assert_int_equal(put_cond(&c, url, hdr, "third!", ch, &r), 204);
		assert_file(f, fresh, "third!");
		/* the same tag, now stale, on the second line: 412; no line matching: 412 */
		assert_int_equal(put_cond(&c, url, hdr, "fourth", ch, &r), 412);
		assert_412(&r);
		assert_int_equal(put_cond(&c, url, "If-Match: \"a\"\r\nIf-Match: \"b\"\r\n", "fifth", ch, &r), 412);
		assert_file(f, fresh, "third!");
		/* If-None-Match with the current tag on the second line refuses too */
		validators(&c, url, etag, sizeof etag, lm, sizeof lm);
		snprintf(hdr, sizeof hdr, "If-None-Match: \"nope\"\r\nIf-None-Match: %s\r\n", etag);
		assert_int_equal(put_cond(&c, url, hdr, "sixth", ch, &r), 412);
		assert_file(f, fresh, "third!");
		/* a repeated If-Unmodified-Since is ignored: the upload goes through */
		snprintf(hdr, sizeof hdr, "If-Unmodified-Since: %s\r\nIf-Unmodified-Since: %s\r\n", epoch, epoch);
		assert_int_equal(put_cond(&c, url, hdr, "seventh", ch, &r), 204);
		assert_file(f, fresh, "seventh");
	}
	/* every answer kept the connection */
	get_expect(&c, "/small.txt", "hello, weft\n");
	cl_close(&c);
}

static void test_preconditions_put(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	char etag[128], lm[64], hdr[256];
	for (int ch = 0; ch < 2; ch++) {   /* Content-Length bodies, then chunked ones */
		/* If-None-Match: * creates only: 412 on an existing file, which stays as it was;
		 * the body is read and dropped, so the connection goes on */
		assert_int_equal(put_cond(&c, "/small.txt", "If-None-Match: *\r\n", "clobbered", ch, &r), 412);
		assert_412(&r);
		assert_file(f, "small.txt", "hello, weft\n");
		const char *fresh = ch ? "sub/c1.txt" : "sub/n1.txt";
		char url[64];
		snprintf(url, sizeof url, "/%s", fresh);
		assert_int_equal(put_cond(&c, url, "If-None-Match: *\r\n", "first", ch, &r), 201);
		assert_int_equal(put_cond(&c, url, "If-None-Match: *\r\n", "second", ch, &r), 412);
		assert_file(f, fresh, "first");
		/* If-Match on a missing file (even *): 412, nothing created */
		assert_int_equal(put_cond(&c, "/sub/none.txt", "If-Match: *\r\n", "x", ch, &r), 412);
		assert_int_equal(put_cond(&c, "/sub/none.txt", "If-Match: \"a\"\r\n", "x", ch, &r), 412);
		assert_file(f, "sub/none.txt", NULL);
		/* If-Match with the current tag replaces (204); the same, now stale, tag again is
		 * a lost update refused (412) */
		validators(&c, url, etag, sizeof etag, lm, sizeof lm);
		snprintf(hdr, sizeof hdr, "If-Match: %s\r\n", etag);
		assert_int_equal(put_cond(&c, url, hdr, "third!", ch, &r), 204);
		assert_file(f, fresh, "third!");
		assert_int_equal(put_cond(&c, url, hdr, "fourth", ch, &r), 412);
		assert_file(f, fresh, "third!");
		assert_int_equal(put_cond(&c, url, "If-Match: *\r\n", "fifth", ch, &r), 204);
		assert_file(f, fresh, "fifth");
		/* If-Unmodified-Since: before the file's date 412, at or after it 204 */
		assert_int_equal(put_cond(&c, url, "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n", "sixth", ch, &r),
				 412);
		assert_file(f, fresh, "fifth");
		assert_int_equal(put_cond(&c, url, "If-Unmodified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n", "seventh", ch,
					  &r), 204);
		assert_file(f, fresh, "seventh");
		/* and If-None-Match with the current tag (weak comparison) refuses too */
		validators(&c, url, etag, sizeof etag, lm, sizeof lm);
		snprintf(hdr, sizeof hdr, "If-None-Match: W/%s\r\n", etag);
		assert_int_equal(put_cond(&c, url, hdr, "eighth", ch, &r), 412);
		assert_file(f, fresh, "seventh");
	}
	/* every 412 above kept the connection, and the dropped bodies were not taken for
	 * requests */
	get_expect(&c, "/small.txt", "hello, weft\n");
	cl_close(&c);

	/* with Expect: 100-continue the body may never come: 412 instead of 100, and close */
	cl_open(&c, f->port);
	cl_sends(&c, "PUT /small.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\nContent-Length: 5\r\n"
		     "Expect: 100-continue\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 412);
	size_t vl;
	const char *v = find_header(&r, "Connection", &vl);
	assert_non_null(v);
	assert_int_equal(strncasecmp(v, "close", vl), 0);
	assert_true(cl_sees_close(&c));
	cl_close(&c);
	assert_file(f, "small.txt", "hello, weft\n");
	/* two create-only uploads racing: both pass the check at their start (100 Continue
	 * says so), and the rename decides: the first to finish 201, the other 412, and the
	 * file holds the winner's bytes */
	struct client a, b;
	cl_open(&a, f->port);
	cl_open(&b, f->port);
	const char *race = "PUT /sub/race.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\nContent-Length: 6\r\n"
			   "Expect: 100-continue\r\n\r\n";
	cl_sends(&a, race);
	cl_sends(&b, race);
	assert_true(cl_response(&a, &r, true));
	assert_int_equal(r.status, 100);
	assert_true(cl_response(&b, &r, true));
	assert_int_equal(r.status, 100);
	cl_sends(&a, "AAAAA");
	cl_sends(&b, "BBBBB");
	cl_sends(&b, "B");
	assert_true(cl_response(&b, &r, false));
	assert_int_equal(r.status, 201);
	resp_free(&r);
	cl_sends(&a, "A");
	assert_true(cl_response(&a, &r, false));
	assert_412(&r);
	assert_file(f, "sub/race.txt", "BBBBBB");
	/* a lost update caught at the end: If-Match held at the start, then another upload
	 * replaced the file while this body arrived: 412, the other upload's bytes stay */
	validators(&a, "/sub/race.txt", etag, sizeof etag, lm, sizeof lm);
	snprintf(hdr, sizeof hdr, "PUT /sub/race.txt HTTP/1.1\r\nHost: t\r\nIf-Match: %s\r\nContent-Length: 6\r\n"
		 "Expect: 100-continue\r\n\r\n", etag);
	cl_sends(&a, hdr);
	assert_true(cl_response(&a, &r, true));
	assert_int_equal(r.status, 100);
	cl_sends(&a, "CCC");
	assert_int_equal(put_cond(&b, "/sub/race.txt", "", "DDDDDD", false, &r), 204);
	cl_sends(&a, "CCC");
	assert_true(cl_response(&a, &r, false));
	assert_412(&r);
	assert_file(f, "sub/race.txt", "DDDDDD");
	/* an If-Unmodified-Since that was ignored at the start (sent twice, or unreadable)
	 * guards nothing at the end either: the file replaced meanwhile, the upload still
	 * goes through (204) */
	const char *ius[2] = { "If-Unmodified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"
			       "If-Unmodified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n",
			       "If-Unmodified-Since: yesterday\r\n" };
	for (int i = 0; i < 2; i++) {
		snprintf(hdr, sizeof hdr, "PUT /sub/race.txt HTTP/1.1\r\nHost: t\r\n%sContent-Length: 6\r\n"
			 "Expect: 100-continue\r\n\r\n", ius[i]);
		cl_sends(&a, hdr);
		assert_true(cl_response(&a, &r, true));
		assert_int_equal(r.status, 100);
		cl_sends(&a, "EEE");
		assert_int_equal(put_cond(&b, "/sub/race.txt", "", "FFFFFF", false, &r), 204);
		cl_sends(&a, i ? "EEe" : "EEE");
		assert_true(cl_response(&a, &r, false));
		assert_int_equal(r.status, 204);
		resp_free(&r);
		assert_file(f, "sub/race.txt", i ? "EEEEEe" : "EEEEEE");
	}
	/* both connections still usable */
	get_expect(&a, "/sub/race.txt", "EEEEEe");
	get_expect(&b, "/small.txt", "hello, weft\n");
	cl_close(&a);
	cl_close(&b);
	/* no temporary left behind by the refused ones */
	char sub[128];
	snprintf(sub, sizeof sub, "%s/sub", f->root);
	assert_int_equal(count_entries(sub), 3);   /* n1.txt, c1.txt, race.txt */
}

/* ---- several ranges: multipart/byteranges (RFC 9110 14.6) ---------------------------------- */

struct part {
	uint64_t first, last, total;
};

/* The boundary of a multipart/byteranges Content-Type value; NULL if it is not one. */
static const char *mp_boundary(const char *ct, size_t ctl, char *out, size_t cap)
{
	static const char pre[] = "multipart/byteranges; boundary=";
	if (ctl <= sizeof pre - 1 || strncasecmp(ct, pre, sizeof pre - 1) != 0 || ctl - (sizeof pre - 1) >= cap)
		return NULL;
	memcpy(out, ct + sizeof pre - 1, ctl - (sizeof pre - 1));
	out[ctl - (sizeof pre - 1)] = '\0';
	return out;
}

/* Parses a multipart/byteranges body strictly (delimiters, each part's headers, its
 * bytes, the closing delimiter and nothing after it) and checks every part's bytes
 * against file (file_len bytes) and its Content-Type against ctype. Returns the parts
 * found (at most max) in parts. */
static size_t mp_parse(const unsigned char *b, size_t n, const char *boundary, const unsigned char *file,
		       size_t file_len, const char *ctype, struct part *parts, size_t max)
{
	char delim[96];
	int dl = snprintf(delim, sizeof delim, "--%s", boundary);
	size_t pos = 0, np = 0;
	for (;;) {
		/* CRLF before every delimiter but the first */
		if (np > 0) {
			assert_true(pos + 2 <= n && memcmp(b + pos, "\r\n", 2) == 0);
			pos += 2;
		}
		assert_true(pos + (size_t)dl <= n && memcmp(b + pos, delim, (size_t)dl) == 0);
		pos += (size_t)dl;
		if (pos + 2 <= n && memcmp(b + pos, "--", 2) == 0) {
			pos += 2;
			assert_true(pos + 2 == n && memcmp(b + pos, "\r\n", 2) == 0);   /* the end, exactly */
			return np;
		}
		assert_true(pos + 2 <= n && memcmp(b + pos, "\r\n", 2) == 0);
		pos += 2;
		/* the part's header lines, up to a blank line */
		bool have_range = false, have_type = false;
		struct part p = { 0 };
		for (;;) {
			const unsigned char *eol = memmem(b + pos, n - pos, "\r\n", 2);
			assert_non_null(eol);
			size_t ll = (size_t)(eol - (b + pos));
			char line[256];
			assert_true(ll < sizeof line);
			memcpy(line, b + pos, ll);
			line[ll] = '\0';
			pos += ll + 2;
			if (ll == 0)
				break;
			unsigned long long a, z, t;
			if (strncasecmp(line, "Content-Range: ", 15) == 0) {
				assert_int_equal(sscanf(line + 15, "bytes %llu-%llu/%llu", &a, &z, &t), 3);
				p.first = a;
				p.last = z;
				p.total = t;
				have_range = true;
			} else if (strncasecmp(line, "Content-Type: ", 14) == 0) {
				assert_string_equal(line + 14, ctype);
				have_type = true;
			} else {
				fail_msg("unexpected part header [%s]", line);
			}
		}
		assert_true(have_range && have_type);
		assert_int_equal(p.total, file_len);
		assert_true(p.first <= p.last && p.last < file_len);
		size_t len = (size_t)(p.last - p.first + 1);
		assert_true(pos + len <= n);
		assert_memory_equal(b + pos, file + p.first, len);
		pos += len;
		assert_true(np < max);
		parts[np++] = p;
	}
}

/* A multipart answer on c to Range: spec of path; checks it against file and returns
 * the parts. Content-Length must be exact: the next answer on c follows it directly. */
static size_t ask_multi(struct client *c, const char *path, const char *spec, const unsigned char *file,
			size_t file_len, const char *ctype, struct part *parts, size_t max)
{
	char req[512];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n", path, spec);
	struct resp r;
	assert_int_equal(ask(c, req, &r), 206);
	size_t vl;
	const char *ct = find_header(&r, "Content-Type", &vl);
	assert_non_null(ct);
	char b[96];
	assert_non_null(mp_boundary(ct, vl, b, sizeof b));
	assert_null(find_header(&r, "Content-Range", &vl));   /* only in the parts */
	size_t np = mp_parse(r.body, r.body_len, b, file, file_len, ctype, parts, max);
	/* HEAD: the same head, Content-Length included, and no body */
	snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n", path, spec);
	struct resp h;
	assert_int_equal(ask(c, req, &h), 206);
	assert_int_equal(h.content_length, r.content_length);
	ct = find_header(&h, "Content-Type", &vl);
	assert_non_null(ct);
	assert_int_equal(strncmp(ct, "multipart/byteranges; boundary=", 31), 0);
	resp_free(&r);
	return np;
}

static void expect_parts(const struct part *p, size_t np, const uint64_t *want, size_t nw)
{
	assert_int_equal(np, nw);
	for (size_t i = 0; i < np; i++) {
		if (p[i].first != want[2 * i] || p[i].last != want[2 * i + 1])
			fail_msg("part %zu: %llu-%llu, want %llu-%llu", i, (unsigned long long)p[i].first,
				 (unsigned long long)p[i].last, (unsigned long long)want[2 * i],
				 (unsigned long long)want[2 * i + 1]);
	}
}

static void test_multirange(void **state)
{
	struct fixture *f = *state;
	struct client c;
	cl_open(&c, f->port);
	struct part p[WEFT_HTTP_MAX_RANGES];
	const char *oct = "application/octet-stream";
	uint64_t n = f->data_len;
	size_t np = ask_multi(&c, "/data.bin", "bytes=0-9,20-29,100-", f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ 0, 9, 20, 29, 100, n - 1 }, 3);
	/* big parts: each takes several sendfile pieces (128 KiB) or copy chunks */
	char big[128];
	snprintf(big, sizeof big, "bytes=0-%llu,%llu-%llu,-%llu", (unsigned long long)(n / 8), (unsigned long long)(n / 4),
		 (unsigned long long)(n / 2), (unsigned long long)(n / 8));
	np = ask_multi(&c, "/data.bin", big, f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ 0, n / 8, n / 4, n / 2, n - n / 8, n - 1 }, 3);
	/* the same backwards: the file read from the end, then the middle, then the start */
	snprintf(big, sizeof big, "bytes=-%llu,%llu-%llu,0-%llu", (unsigned long long)(n / 8), (unsigned long long)(n / 4),
		 (unsigned long long)(n / 2), (unsigned long long)(n / 8));
	np = ask_multi(&c, "/data.bin", big, f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ n - n / 8, n - 1, n / 4, n / 2, 0, n / 8 }, 3);
	/* out of order: the parts in the order asked (RFC 9110 14.6); overlapping and
	 * adjacent specs merged into one part, in the place of the first of them */
	np = ask_multi(&c, "/data.bin", "bytes=500-599,0-9,5-14,15-19, -1", f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ 500, 599, 0, 19, n - 1, n - 1 }, 3);
	np = ask_multi(&c, "/data.bin", "bytes=20-29,0-9", f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ 20, 29, 0, 9 }, 2);
	np = ask_multi(&c, "/data.bin", "bytes=50-59,0-9,55-70", f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ 50, 70, 0, 9 }, 2);
	np = ask_multi(&c, "/data.bin", "bytes=-5,60-69,0-9,20-29,10-19", f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, (const uint64_t[]){ n - 5, n - 1, 60, 69, 0, 29 }, 3);
	/* 16 specs of one byte: 16 parts */
	char spec[256] = "bytes=";
	uint64_t want[32];
	for (int i = 0; i < 16; i++) {
		char one[32];
		snprintf(one, sizeof one, "%d-%d%s", 7 * i + 1, 7 * i + 1, i < 15 ? "," : "");
		strcat(spec, one);
		want[2 * i] = want[2 * i + 1] = (uint64_t)(7 * i + 1);
	}
	np = ask_multi(&c, "/data.bin", spec, f->data, f->data_len, oct, p, 16);
	expect_parts(p, np, want, 16);
	/* a small (cached) file, and its Content-Type in each part */
	np = ask_multi(&c, "/small.txt", "bytes=0-1,7-", (const unsigned char *)"hello, weft\n", 12,
		       "text/plain; charset=utf-8", p, 16);
	expect_parts(p, np, (const uint64_t[]){ 0, 1, 7, 11 }, 2);

	struct resp r;
	char req[512];
	/* merged into one, or one left once the unsatisfiable are dropped: a plain 206 */
	const char *single[] = { "bytes=0-,0-,0-", "bytes=10-19,999999999-", "bytes=10-14,15-19" };
	for (int i = 0; i < 3; i++) {
		snprintf(req, sizeof req, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n", single[i]);
		assert_int_equal(ask(&c, req, &r), 206);
		size_t vl;
		const char *cr = find_header(&r, "Content-Range", &vl);
		assert_non_null(cr);
		uint64_t a = i ? 10 : 0, z = i ? 19 : n - 1;
		assert_int_equal(r.body_len, z - a + 1);
		assert_memory_equal(r.body, f->data + a, r.body_len);
		resp_free(&r);
	}
	/* nothing satisfiable: 416 with the size */
	assert_int_equal(ask(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=999999999-,-0\r\n\r\n", &r), 416);
	/* more than 16 specs, or a malformed one in the list: the whole file, 200 */
	strcat(spec, ",200-300");
	snprintf(req, sizeof req, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n", spec);
	assert_int_equal(ask(&c, req, &r), 200);
	assert_int_equal(r.body_len, n);
	resp_free(&r);
	assert_int_equal(ask(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,x-3\r\n\r\n", &r), 200);
	assert_int_equal(r.body_len, n);
	resp_free(&r);
	/* If-Range: the tag keeps the ranges, another sends the whole file */
	char etag[128], lm[64];
	validators(&c, "/data.bin", etag, sizeof etag, lm, sizeof lm);
	snprintf(req, sizeof req, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\nIf-Range: %s\r\n\r\n",
		 etag);
	assert_int_equal(ask(&c, req, &r), 206);
	resp_free(&r);
	assert_int_equal(ask(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\nIf-Range: \"x\"\r\n\r\n", &r),
			 200);
	assert_int_equal(r.body_len, n);
	resp_free(&r);
	/* pipelined: two multipart answers and a plain one, in order */
	cl_sends(&c, "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2,1000-\r\n\r\n"
		     "GET /small.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,2-2\r\n\r\n"
		     "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	for (int i = 0; i < 2; i++) {
		assert_true(cl_response(&c, &r, false));
		assert_int_equal(r.status, 206);
		size_t vl;
		const char *ct = find_header(&r, "Content-Type", &vl);
		char b[96];
		assert_non_null(mp_boundary(ct, vl, b, sizeof b));
		np = i ? mp_parse(r.body, r.body_len, b, (const unsigned char *)"hello, weft\n", 12,
				  "text/plain; charset=utf-8", p, 16)
		       : mp_parse(r.body, r.body_len, b, f->data, f->data_len, oct, p, 16);
		assert_int_equal(np, 2);
		resp_free(&r);
	}
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 12);
	assert_memory_equal(r.body, "hello, weft\n", 12);
	resp_free(&r);
	get_expect(&c, "/small.txt", "hello, weft\n");
	/* boundaries differ from answer to answer */
	char b1[96], b2[96];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ask(&c, "HEAD /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2,5-6\r\n\r\n", &r), 206);
		size_t vl;
		const char *ct = find_header(&r, "Content-Type", &vl);
		assert_non_null(mp_boundary(ct, vl, i ? b2 : b1, sizeof b1));
	}
	assert_string_not_equal(b1, b2);
	cl_close(&c);
}

/* ---- chunked uploads (RFC 9112 7.1) ---------------------------------------------------------- */

/* p[0, n) as a chunked body: chunks of pseudo-random sizes (1 byte to 70 KB), some with
 * extensions, the last chunk with a trailer. Returns a malloc'd stream, its length in *len. */
static char *chunk_encode(const unsigned char *p, size_t n, uint32_t seed, size_t *len)
{
	size_t cap = n + n / 8 + 4096;
	char *out = malloc(cap);
	assert_non_null(out);
	size_t o = 0, i = 0;
	uint32_t x = seed | 1;
	while (i < n) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		size_t k = x % 4 == 0 ? 1 + x % 16 : 1 + x % 70000;
		if (k > n - i)
			k = n - i;
		assert_true(o + k + 64 < cap);
		o += (size_t)snprintf(out + o, cap - o, x % 3 == 0 ? "%zX;ext=\"v\"\r\n" : "%zx\r\n", k);
		memcpy(out + o, p + i, k);
		o += k;
		memcpy(out + o, "\r\n", 2);
		o += 2;
		i += k;
	}
	o += (size_t)snprintf(out + o, cap - o, "0\r\nX-Checksum: none\r\n\r\n");
	*len = o;
	return out;
}

/* Sends p[0, n) in pieces of pseudo-random sizes, so chunk heads split anywhere. */
static void send_pieces(struct client *c, const char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed | 1;
	size_t i = 0;
	while (i < n) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		size_t k = 1 + x % 9000;
		if (k > n - i)
			k = n - i;
		cl_send(c, p + i, k);
		i += k;
	}
}

static void test_chunked_put(void **state)
{
	struct fixture *f = *state;
	size_t n = (size_t)weft_test_iters(3u << 20) + 11;
	unsigned char *p = malloc(n);
	assert_non_null(p);
	fill(p, n, 123);
	size_t el;
	char *enc = chunk_encode(p, n, 77, &el);
	struct client c;
	cl_open(&c, f->port);
	struct resp r;
	/* a chunked PUT in small pieces: 201, the bytes on disk and back */
	cl_sends(&c, "PUT /sub/ch.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	send_pieces(&c, enc, el, 5);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 201);
	resp_free(&r);
	char path[256];
	snprintf(path, sizeof path, "%s/sub/ch.bin", f->root);
	size_t got = 0;
	unsigned char *disk = read_file(path, &got);
	assert_non_null(disk);
	assert_int_equal(got, n);
	assert_memory_equal(disk, p, n);
	free(disk);
	cl_sends(&c, "GET /sub/ch.bin HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, n);
	assert_memory_equal(r.body, p, n);
	resp_free(&r);
	/* replaced, with Expect: 100-continue: 100, then 204 */
	fill(p, 5000, 6);
	free(enc);
	enc = chunk_encode(p, 5000, 78, &el);
	cl_sends(&c, "PUT /sub/ch.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
	assert_true(cl_response(&c, &r, true));
	assert_int_equal(r.status, 100);
	cl_send(&c, enc, el);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 204);
	resp_free(&r);
	disk = read_file(path, &got);
	assert_non_null(disk);
	assert_int_equal(got, 5000);
	assert_memory_equal(disk, p, 5000);
	free(disk);
	/* pipelined behind a chunked PUT in the same write: a GET of what it wrote; an empty
	 * chunked body; a GET with a chunked body (read and dropped) */
	cl_sends(&c, "PUT /sub/pipe.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"
		     "GET /sub/pipe.txt HTTP/1.1\r\nHost: t\r\n\r\n"
		     "PUT /sub/empty.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		     "GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n"
		     "GET /sub/pipe.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 201);
	resp_free(&r);
	for (int i = 0; i < 4; i++) {
		assert_true(cl_response(&c, &r, false));
		assert_int_equal(r.status, i == 1 ? 201 : 200);
		if (i != 1) {
			const char *want = i == 2 ? "hello, weft\n" : "abcdefg";
			assert_int_equal(r.body_len, strlen(want));
			assert_memory_equal(r.body, want, r.body_len);
		}
		resp_free(&r);
	}
	assert_file(f, "sub/empty.txt", "");
	/* a dropped chunked body with bad framing: answered, then closed (framing lost) */
	cl_sends(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"
		     "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_true(cl_sees_close(&c));
	cl_close(&c);

	/* refusals, each answered and closed, leaving no file: bad framing 400, a chunk over
	 * --max-upload 413, another coding before chunked 501, chunked not final 400, both
	 * framings or two Transfer-Encoding lines 400 */
	struct {
		const char *req;
		int status;
	} bad[] = {
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n0\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "3\r\nabc\r\n0\r\nBad Trailer\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n8000001\r\n", 413 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		  501 },
		/* chunked not final: no body length, 400 and close (RFC 9112 6.3) */
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
		  "3\r\nabc\r\n0\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\nabc", 400 },
		{ "GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
		  "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
		  "0\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "0\r\n\r\n", 400 },
		{ "PUT /sub/bad.bin HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cl_open(&c, f->port);
		cl_sends(&c, bad[i].req);
		assert_true(cl_response(&c, &r, false));
		if (r.status != bad[i].status)
			fail_msg("case %zu: %d, want %d", i, r.status, bad[i].status);
		size_t vl;
		const char *v = find_header(&r, "Connection", &vl);
		assert_true(v && vl == 5 && strncasecmp(v, "close", 5) == 0);
		resp_free(&r);
		assert_true(cl_sees_close(&c));   /* and nothing more: the pipelined GET unanswered */
		cl_close(&c);
	}
	assert_file(f, "sub/bad.bin", NULL);
	/* the server still answers */
	assert_int_equal(one(f, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	resp_free(&r);
	free(enc);
	free(p);
}

/* A chunked upload cut before its last chunk (closed, or reset) leaves nothing. */
static void test_chunked_interrupted(void **state)
{
	struct fixture *f = *state;
	char sub[128];
	snprintf(sub, sizeof sub, "%s/sub", f->root);
	struct resp r;
	int fds = warm_baseline(f);
	struct weft__http_stats hs0;
	weft__http_server_get_stats(f->h, &hs0);
	size_t n = 300000;
	unsigned char *p = malloc(n);
	assert_non_null(p);
	fill(p, n, 4);
	size_t el;
	char *enc = chunk_encode(p, n, 9, &el);
	/* the stream without its final "0" chunk and trailers, cut in three ways: after
	 * whole chunks, in the middle of a chunk, and at the last chunk's size line */
	const char *z = memmem(enc, el, "\r\n0\r\nX-Checksum", 15);
	assert_non_null(z);
	size_t whole = (size_t)(z - enc) + 2;
	size_t cuts[3] = { whole, whole / 2, whole + 1 };
	for (int i = 0; i < 4; i++) {
		struct client c;
		cl_open(&c, f->port);
		cl_sends(&c, "PUT /sub/cut.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
			     "Expect: 100-continue\r\n\r\n");
		struct resp r100;
		assert_true(cl_response(&c, &r100, true));
		assert_int_equal(r100.status, 100);
		cl_send(&c, enc, cuts[i % 3]);
		if (i == 3) {   /* a reset */
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		cl_close(&c);
	}
	wait_baseline(f, fds);
	assert_int_equal(count_entries(sub), 0);
	struct weft__http_stats hs;
	weft__http_server_get_stats(f->h, &hs);
	assert_int_equal(hs.upload_aborts - hs0.upload_aborts, 4);
	assert_int_equal(hs.uploads - hs0.uploads, 0);
	/* and the server still takes a whole one */
	struct client c;
	cl_open(&c, f->port);
	cl_sends(&c, "PUT /sub/cut.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	cl_send(&c, enc, el);
	assert_true(cl_response(&c, &r, false));
	assert_int_equal(r.status, 201);
	resp_free(&r);
	cl_close(&c);
	char path[256];
	snprintf(path, sizeof path, "%s/cut.bin", sub);
	size_t got = 0;
	unsigned char *disk = read_file(path, &got);
	assert_non_null(disk);
	assert_int_equal(got, n);
	assert_memory_equal(disk, p, n);
	free(disk);
	free(enc);
	free(p);
}

/* ---- curl, if it is here ---------------------------------------------------------------------- */

/* True when a[a_off, a_off + len) equals the whole of b (len bytes long), compared in
 * chunks, so a 100 MB file never sits in memory whole. */
static bool files_equal_at(const char *a, uint64_t a_off, const char *b, uint64_t len)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	bool eq = fa >= 0 && fb >= 0 && fstat(fb, &sb) == 0 && (uint64_t)sb.st_size == len;
	size_t cap = 1u << 20;
	unsigned char *pa = malloc(cap), *pb = malloc(cap);
	assert_true(pa && pb);
	for (uint64_t off = 0; eq && off < len;) {
		size_t want = len - off < cap ? (size_t)(len - off) : cap;
		ssize_t ra = pread(fa, pa, want, (off_t)(a_off + off)), rb = pread(fb, pb, want, (off_t)off);
		eq = ra == (ssize_t)want && rb == (ssize_t)want && memcmp(pa, pb, want) == 0;
		off += want;
	}
	free(pa);
	free(pb);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return eq;
}

/* Runs a curl command line that prints the status code (-w); returns it. */
static int curl_code(const char *cmd)
{
	FILE *pf = popen(cmd, "r");
	assert_non_null(pf);
	int code = 0;
	if (fscanf(pf, "%d", &code) != 1)
		code = -1;
	pclose(pf);
	return code;
}

static void test_curl(void **state)
{
	struct fixture *f = *state;
	if (system("command -v curl >/dev/null 2>&1") != 0) {
		fprintf(stderr, "curl is not installed: test_curl skipped\n");
		skip();
	}
	/* 100 MB (and an odd tail), as the issue asks, in every build: the bytes move between
	 * the server and curl (not sanitized), so the sanitizers cost little here */
	uint64_t n = (uint64_t)CURL_MB * 1000000u + 5;
	char src[128], out[128], part[128], cmd[1024];
	snprintf(src, sizeof src, "%s/curl.bin", f->root);
	{
		int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		size_t cap = 1u << 20;
		unsigned char *chunk = malloc(cap);
		assert_non_null(chunk);
		for (uint64_t off = 0; off < n; off += cap) {
			size_t k = n - off < cap ? (size_t)(n - off) : cap;
			fill(chunk, k, (uint32_t)(off >> 20) * 2654435761u + 11);
			assert_int_equal(write(fd, chunk, k), (ssize_t)k);
		}
		free(chunk);
		close(fd);
	}
	snprintf(out, sizeof out, "%s.out", f->root);
	snprintf(part, sizeof part, "%s.part", f->root);
	/* GET */
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 60 -o '%s' http://127.0.0.1:%d/curl.bin", out, f->port);
	assert_int_equal(system(cmd), 0);
	assert_true(files_equal_at(src, 0, out, n));
	/* a range, as a resumed download asks */
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 60 -r 1000- -o '%s' http://127.0.0.1:%d/curl.bin", part,
		 f->port);
	assert_int_equal(system(cmd), 0);
	assert_true(files_equal_at(src, 1000, part, n - 1000));
	/* PUT with -T, then the bytes on disk */
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 60 -T '%s' -o /dev/null http://127.0.0.1:%d/sub/c.bin",
		 src, f->port);
	assert_int_equal(system(cmd), 0);
	char up[128];
	snprintf(up, sizeof up, "%s/sub/c.bin", f->root);
	assert_true(files_equal_at(src, 0, up, n));
	/* SHA-256 both ways, as a user would check it */
	/* PUT from stdin: chunked (curl knows no length), the same bytes */
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 60 -T - -o /dev/null http://127.0.0.1:%d/sub/s.bin < '%s'",
		 f->port, src);
	assert_int_equal(system(cmd), 0);
	char up2[128];
	snprintf(up2, sizeof up2, "%s/sub/s.bin", f->root);
	assert_true(files_equal_at(src, 0, up2, n));
	/* SHA-256 every way, as a user would check it */
	snprintf(cmd, sizeof cmd,
		 "command -v sha256sum >/dev/null || exit 0; a=$(sha256sum < '%s'); b=$(sha256sum < '%s'); "
		 "c=$(sha256sum < '%s'); d=$(sha256sum < '%s'); [ \"$a\" = \"$b\" ] && [ \"$a\" = \"$c\" ] && "
		 "[ \"$a\" = \"$d\" ]",
		 src, out, up, up2);
	assert_int_equal(system(cmd), 0);

	/* HEAD, and keep-alive: two URLs in one curl run share one connection */
	weft_server_stats st0, st1;
	weft_server_get_stats(weft__http_server_net(f->h), &st0);
	snprintf(cmd, sizeof cmd, "curl -sS -f -I --max-time 30 -o '%s' http://127.0.0.1:%d/curl.bin -o /dev/null "
		 "http://127.0.0.1:%d/small.txt", part, f->port, f->port);
	assert_int_equal(system(cmd), 0);
	weft_server_get_stats(weft__http_server_net(f->h), &st1);
	assert_int_equal(st1.accepted - st0.accepted, 1);
	size_t hn = 0;
	char *heads = (char *)read_file(part, &hn);
	assert_non_null(heads);
	heads[hn] = '\0';
	char want[64];
	snprintf(want, sizeof want, "Content-Length: %llu\r\n", (unsigned long long)n);
	assert_non_null(strstr(heads, want));
	assert_non_null(strstr(heads, "HTTP/1.1 200 OK"));
	free(heads);

	/* refusals as curl sees them */
	const char *w = "curl -s --max-time 30 -o /dev/null -w '%{http_code}'";
	snprintf(cmd, sizeof cmd, "%s http://127.0.0.1:%d/nope", w, f->port);
	assert_int_equal(curl_code(cmd), 404);
	snprintf(cmd, sizeof cmd, "%s --path-as-is http://127.0.0.1:%d/../../etc/passwd", w, f->port);
	assert_int_equal(curl_code(cmd), 403);
	snprintf(cmd, sizeof cmd, "%s http://127.0.0.1:%d/%%2e%%2e/etc/passwd", w, f->port);
	assert_int_equal(curl_code(cmd), 403);
	snprintf(cmd, sizeof cmd, "%s -H 'Host:' http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 400);   /* HTTP/1.1 without Host */
	snprintf(cmd, sizeof cmd, "%s -X DELETE http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 405);
	char *big = malloc(30000);
	assert_non_null(big);
	int k = snprintf(big, 30000, "%s -H 'X-Big: ", w);
	memset(big + k, 'a', 20000);
	snprintf(big + k + 20000, 30000 - (size_t)k - 20000, "' http://127.0.0.1:%d/small.txt", f->port);
	assert_int_equal(curl_code(big), 431);
	free(big);
	unlink(out);
	unlink(part);
}

/* curl against the newer parts: several ranges (curl writes the multipart body as is),
 * PUT from stdin (chunked), and the preconditions as curl reports them. */
static void test_curl_ranges_chunked_preconditions(void **state)
{
	struct fixture *f = *state;
	if (system("command -v curl >/dev/null 2>&1") != 0) {
		fprintf(stderr, "curl is not installed: test skipped\n");
		skip();
	}
	char out[128], hdrs[128], cmd[1024];
	snprintf(out, sizeof out, "%s.mp", f->root);
	snprintf(hdrs, sizeof hdrs, "%s.hd", f->root);
	/* curl -r '0-9,20-29,100-': 206 multipart/byteranges, parsed and compared byte for byte */
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 30 -r '0-9,20-29,100-' -D '%s' -o '%s' "
		 "http://127.0.0.1:%d/data.bin", hdrs, out, f->port);
	assert_int_equal(system(cmd), 0);
	size_t hn = 0, bn = 0;
	char *head = (char *)read_file(hdrs, &hn);
	assert_non_null(head);
	head[hn] = '\0';
	assert_non_null(strstr(head, "HTTP/1.1 206 Partial Content\r\n"));
	const char *ct = strcasestr(head, "\r\nContent-Type: ");
	assert_non_null(ct);
	ct += 16;
	char b[96];
	assert_non_null(mp_boundary(ct, (size_t)(strstr(ct, "\r\n") - ct), b, sizeof b));
	unsigned char *body = read_file(out, &bn);
	assert_non_null(body);
	char want_cl[64];
	snprintf(want_cl, sizeof want_cl, "Content-Length: %zu\r\n", bn);
	assert_non_null(strstr(head, want_cl));   /* the length announced is the length sent */
	struct part p[WEFT_HTTP_MAX_RANGES];
	size_t np = mp_parse(body, bn, b, f->data, f->data_len, "application/octet-stream", p, 16);
	expect_parts(p, np, (const uint64_t[]){ 0, 9, 20, 29, 100, f->data_len - 1 }, 3);
	free(body);
	free(head);

	/* PUT from stdin: curl does not know the length and sends it chunked */
	char src[128], up[128];
	snprintf(src, sizeof src, "%s/data.bin", f->root);
	snprintf(up, sizeof up, "%s/sub/stdin.bin", f->root);
	snprintf(cmd, sizeof cmd, "curl -sS -f --max-time 60 -T - -o /dev/null -D '%s' -w '%%{http_code}' "
		 "-v http://127.0.0.1:%d/sub/stdin.bin < '%s' 2>'%s'", hdrs, f->port, src, out);
	assert_int_equal(curl_code(cmd), 201);
	head = (char *)read_file(out, &hn);   /* curl -v: what it sent */
	assert_non_null(head);
	head[hn] = '\0';
	assert_non_null(strcasestr(head, "> Transfer-Encoding: chunked"));
	free(head);
	assert_true(files_equal_at(src, 0, up, f->data_len));
	snprintf(cmd, sizeof cmd, "command -v sha256sum >/dev/null || exit 0; [ \"$(sha256sum < '%s')\" = "
		 "\"$(sha256sum < '%s')\" ]", src, up);
	assert_int_equal(system(cmd), 0);

	/* preconditions */
	const char *w = "curl -s --max-time 30 -o /dev/null -w '%{http_code}'";
	snprintf(cmd, sizeof cmd, "%s -H 'If-Match: \"nope\"' http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 412);
	snprintf(cmd, sizeof cmd, "%s -H 'If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT' "
		 "http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 412);
	snprintf(cmd, sizeof cmd, "%s -H 'If-Match: *' http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 200);
	/* create-only uploads, from a file and from stdin */
	snprintf(cmd, sizeof cmd, "%s -H 'If-None-Match: *' -T '%s/index.html' http://127.0.0.1:%d/small.txt", w,
		 f->root, f->port);
	assert_int_equal(curl_code(cmd), 412);
	assert_file(f, "small.txt", "hello, weft\n");
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "%s -H 'If-None-Match: *' -T - http://127.0.0.1:%d/sub/once.txt < '%s/index.html'",
			 w, f->port, f->root);
		assert_int_equal(curl_code(cmd), i ? 412 : 201);
	}
	assert_file(f, "sub/once.txt", "<p>hi</p>\n");
	/* the server still serves */
	snprintf(cmd, sizeof cmd, "%s http://127.0.0.1:%d/small.txt", w, f->port);
	assert_int_equal(curl_code(cmd), 200);
	unlink(out);
	unlink(hdrs);
}

/* A file body leaves corked with its head (TCP_CORK) and the cork is taken off when the
 * body is in the socket: a forgotten uncork would hold each response's last partial
 * segment for the kernel's 200 ms, so 30 keep-alive answers (whole file, one range, two
 * ranges) would take over 6 s; they must take under 3 s, every byte checked. */
static void test_cork_released(void **state)
{
	struct fixture *f = *state;
	size_t n = 100007;   /* above the file cache's limit, not a whole number of segments */
	unsigned char *d = malloc(n);
	assert_non_null(d);
	fill(d, n, 11);
	write_file(f->root, "mid.bin", d, n);
	struct client c;
	cl_open(&c, f->port);
	uint64_t t0 = weft_test_now_ns();
	for (int i = 0; i < 10; i++) {
		struct resp r;
		assert_int_equal(ask(&c, "GET /mid.bin HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
		assert_int_equal(r.body_len, n);
		assert_memory_equal(r.body, d, n);
		resp_free(&r);
		assert_int_equal(ask(&c, "GET /mid.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=10-109\r\n\r\n", &r), 206);
		assert_int_equal(r.body_len, 100);
		assert_memory_equal(r.body, d + 10, 100);
		resp_free(&r);
		struct part parts[4];
		assert_int_equal(ask_multi(&c, "/mid.bin", "bytes=0-9,5000-5099", d, n, "application/octet-stream",
					   parts, 4), 2);
	}
	uint64_t ms = (weft_test_now_ns() - t0) / 1000000u;
	cl_close(&c);
	free(d);
	if (ms >= 3000)
		fail_msg("30 answers took %llu ms: a cork was left on", (unsigned long long)ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_and_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_traversal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickling_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_curl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conditional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preconditions_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preconditions_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preconditions_repeated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multirange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_curl_ranges_chunked_preconditions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cork_released, setup, teardown),
		/* file bodies by pread + weft_conn_send instead of sendfile */
		cmocka_unit_test_setup_teardown(test_get, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_head_and_range, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_multirange, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_cork_released, setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_walk_fallback, setup_walk, teardown),
		/* one port thread: the server runs it on the port's reaper (solo mode) */
		cmocka_unit_test_setup_teardown(test_get, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_head_and_range, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_put_roundtrip, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_slow_client, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_stop, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_multirange, setup_solo, teardown),
		cmocka_unit_test_setup_teardown(test_cork_released, setup_solo, teardown),
	};
	/* sendfile(2) cannot say MSG_NOSIGNAL: a peer that resets mid-body raises SIGPIPE,
	 * which a process serving files ignores (weft-server does) */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
