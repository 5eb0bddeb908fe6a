/* test_http_parse.c - the HTTP/1.1 request parser and response formatter of weft-server
 * (net/src/http_parse.c). Pure functions: no sockets, no port; the suite is registered
 * once per backend like every net test, and behaves the same on both.
 *
 * Every request is parsed three ways and must give the same answer: whole, split in two
 * at every byte boundary, and fed one byte at a time. Each partial buffer is a fresh
 * allocation of exactly the bytes received, so AddressSanitizer catches a read past what
 * has arrived, and a moved buffer proves the results are offsets, not pointers. */
#include "weft_test.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http_parse.h"

/* ---- helpers ---------------------------------------------------------------------- */

static int parse_all(struct weft__http_request *r, const char *s, size_t n,
                     const struct weft__http_limits *lim)
{
	weft__http_request_init(r, lim);
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, s, n);
	int res = weft__http_parse(r, copy, n);
	free(copy);
	return res;
}

/* The fields a client of the parser reads; two parses of the same bytes must agree. */
static void assert_same_request(const struct weft__http_request *a, const struct weft__http_request *b)
{
	assert_int_equal(a->head_len, b->head_len);
	assert_int_equal(a->method, b->method);
	assert_int_equal(a->version_minor, b->version_minor);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->expect_continue, b->expect_continue);
	assert_int_equal(a->conditional, b->conditional);
	assert_int_equal(a->content_length, b->content_length);
	assert_memory_equal(&a->method_s, &b->method_s, sizeof a->method_s);
	assert_memory_equal(&a->target, &b->target, sizeof a->target);
	assert_memory_equal(&a->path, &b->path, sizeof a->path);
	assert_memory_equal(&a->query, &b->query, sizeof a->query);
	assert_memory_equal(&a->host, &b->host, sizeof a->host);
	assert_int_equal(a->range.kind, b->range.kind);
	assert_int_equal(a->range.first, b->range.first);
	assert_int_equal(a->range.last, b->range.last);
	assert_int_equal(a->chunked, b->chunked);
	if (a->range.kind == WEFT_HTTP_RANGE_MULTI) {
		assert_int_equal(a->nranges, b->nranges);
		for (unsigned i = 0; i < a->nranges; i++) {   /* field by field: padding differs */
			assert_int_equal(a->ranges[i].kind, b->ranges[i].kind);
			assert_int_equal(a->ranges[i].first, b->ranges[i].first);
			assert_int_equal(a->ranges[i].last, b->ranges[i].last);
		}
	}
	assert_int_equal(a->nheaders, b->nheaders);
	assert_memory_equal(a->headers, b->headers, a->nheaders * sizeof a->headers[0]);
}

/* Feeds s[0, k) then s[0, n), each in a buffer of exactly that size. */
static int parse_split(struct weft__http_request *r, const char *s, size_t n, size_t k,
                       const struct weft__http_limits *lim, int final)
{
	weft__http_request_init(r, lim);
	char *a = malloc(k ? k : 1);
	assert_non_null(a);
	memcpy(a, s, k);
	int first = weft__http_parse(r, a, k);
	free(a);
	/* A piece can end the parse early only with the answer the whole gives. */
	if (first != WEFT_HTTP_INCOMPLETE)
		assert_int_equal(first, final);
	char *b = malloc(n ? n : 1);
	assert_non_null(b);
	memcpy(b, s, n);
	int res = weft__http_parse(r, b, n);
	/* sticky: asking again gives the same answer */
	assert_int_equal(weft__http_parse(r, b, n), res);
	free(b);
	return res;
}

static int parse_bytewise(struct weft__http_request *r, const char *s, size_t n,
                          const struct weft__http_limits *lim, int final)
{
	weft__http_request_init(r, lim);
	int res = WEFT_HTTP_INCOMPLETE;
	for (size_t i = 1; i <= n; i++) {
		char *b = malloc(i);
		assert_non_null(b);
		memcpy(b, s, i);
		int x = weft__http_parse(r, b, i);
		free(b);
		if (res != WEFT_HTTP_INCOMPLETE)
			assert_int_equal(x, res);   /* sticky after the end */
		res = x;
		if (res != WEFT_HTTP_INCOMPLETE)
			assert_int_equal(res, final);
	}
	return res;
}

/* Parses s whole, then at every split point, then bytewise; asserts all agree with
 * `expect` and returns the whole parse in *out. */
static void check_lim(const char *s, size_t n, int expect, struct weft__http_request *out,
                      const struct weft__http_limits *lim)
{
	int whole = parse_all(out, s, n, lim);
	if (whole != expect)
		fail_msg("whole parse of [%.*s]: got %d, want %d", (int)n, s, whole, expect);
	struct weft__http_request r;
	for (size_t k = 0; k <= n; k++) {
		assert_int_equal(parse_split(&r, s, n, k, lim, expect), expect);
		if (expect == WEFT_HTTP_OK || expect == WEFT_HTTP_METHOD_NOT_ALLOWED ||
		    expect == WEFT_HTTP_NOT_IMPLEMENTED)
			assert_same_request(out, &r);
	}
	assert_int_equal(parse_bytewise(&r, s, n, lim, expect), expect);
	if (expect == WEFT_HTTP_OK)
		assert_same_request(out, &r);
}

static void check(const char *s, int expect, struct weft__http_request *out)
{
	check_lim(s, strlen(s), expect, out, NULL);
}

static void expect_result(const char *s, int expect)
{
	struct weft__http_request r;
	check(s, expect, &r);
}

static void assert_slice(const char *buf, struct weft__http_slice sl, const char *want)
{
	if (sl.len != strlen(want) || memcmp(buf + sl.off, want, sl.len) != 0)
		fail_msg("slice [%.*s] != [%s]", (int)sl.len, buf + sl.off, want);
}

/* ---- requests that parse -------------------------------------------------------------- */

static void test_http_parse_simple_get(void **state)
{
	(void)state;
	const char *s = "GET /index.html?a=1&b=%20 HTTP/1.1\r\n"
	                "Host: example.com\r\n"
	                "User-Agent:  curl/8.0  \r\n"
	                "Accept: */*\r\n"
	                "\r\n";
	struct weft__http_request r;
	check(s, WEFT_HTTP_OK, &r);
	assert_int_equal(r.head_len, strlen(s));
	assert_int_equal(r.method, WEFT_HTTP_GET);
	assert_slice(s, r.method_s, "GET");
	assert_slice(s, r.target, "/index.html?a=1&b=%20");
	assert_slice(s, r.path, "/index.html");
	assert_slice(s, r.query, "a=1&b=%20");
	assert_slice(s, r.host, "example.com");
	assert_int_equal(r.version_minor, 1);
	assert_true(r.keep_alive);
	assert_false(r.expect_continue);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_NONE);
	assert_int_equal(r.nheaders, 3);
	assert_slice(s, r.headers[0].name, "Host");
	assert_slice(s, r.headers[1].name, "User-Agent");
	assert_slice(s, r.headers[1].value, "curl/8.0");   /* OWS trimmed both sides */
	assert_slice(s, r.headers[2].value, "*/*");

	size_t n = 0;
	const char *v = weft__http_header_get(&r, s, "user-agent", &n);
	assert_non_null(v);
	assert_int_equal(n, 8);
	assert_memory_equal(v, "curl/8.0", 8);
	v = weft__http_header_get(&r, s, "ACCEPT", &n);
	assert_non_null(v);
	assert_int_equal(n, 3);
	assert_null(weft__http_header_get(&r, s, "Accept-Encoding", &n));
	assert_null(weft__http_header_get(&r, s, "Acc", &n));
}

static void test_http_parse_methods(void **state)
{
	(void)state;
	struct weft__http_request r;
	check("GET / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.method, WEFT_HTTP_GET);
	check("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.method, WEFT_HTTP_HEAD);
	check("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.method, WEFT_HTTP_PUT);
	assert_int_equal(r.content_length, 5);

	/* Standard methods weft-server refuses: 405, reported with the head complete so the
	 * server may skip the body and keep the connection. */
	static const char *const refused[] = { "POST", "DELETE", "OPTIONS", "PATCH", "TRACE" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char buf[128];
		snprintf(buf, sizeof buf, "%s /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", refused[i]);
		check(buf, WEFT_HTTP_METHOD_NOT_ALLOWED, &r);
		assert_int_equal(r.method, WEFT_HTTP_METHOD_KNOWN_OTHER);
		assert_int_equal(r.head_len, strlen(buf));
		assert_int_equal(r.content_length, 3);
		assert_int_equal(weft__http_result_status(WEFT_HTTP_METHOD_NOT_ALLOWED), 405);
	}
	check("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_METHOD_NOT_ALLOWED, &r);
	check("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", WEFT_HTTP_METHOD_NOT_ALLOWED, &r);

	/* A valid token weft does not know: 501. Methods are case-sensitive. */
	check("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_NOT_IMPLEMENTED, &r);
	assert_int_equal(r.method, WEFT_HTTP_METHOD_UNKNOWN);
	assert_slice("BREW", r.method_s, "BREW");
	check("get / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_NOT_IMPLEMENTED, &r);
	check("GETS / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_NOT_IMPLEMENTED, &r);

	/* Not a token at all: 400, before the headers arrive. */
	expect_result("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result(" / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	weft__http_request_init(&r, NULL);
	assert_int_equal(weft__http_parse(&r, "G{T / HTTP/1.1\r\n", 16), WEFT_HTTP_BAD_REQUEST);
}

static void test_http_parse_versions(void **state)
{
	(void)state;
	struct weft__http_request r;
	check("GET / HTTP/1.0\r\n\r\n", WEFT_HTTP_OK, &r);   /* 1.0 needs no Host */
	assert_int_equal(r.version_minor, 0);
	assert_false(r.keep_alive);
	check("GET / HTTP/1.9\r\nHost: h\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.version_minor, 1);
	expect_result("GET / HTTP/2.0\r\nHost: h\r\n\r\n", WEFT_HTTP_VERSION_NOT_SUPPORTED);
	expect_result("GET / HTTP/3.0\r\n\r\n", WEFT_HTTP_VERSION_NOT_SUPPORTED);
	expect_result("GET / HTTP/0.9\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET / http/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET / HTTP/1.\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET / HTTP/11\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET / HTTP/1.x\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET /\r\n\r\n", WEFT_HTTP_BAD_REQUEST);        /* HTTP/0.9 form */
	expect_result("GET\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	assert_int_equal(weft__http_result_status(WEFT_HTTP_VERSION_NOT_SUPPORTED), 505);
}

static void test_http_parse_keep_alive(void **state)
{
	(void)state;
	static const struct {
		const char *req;
		bool keep;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection:\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: ,,te,  keep-alive ,\r\n\r\n", true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct weft__http_request r;
		check(cases[i].req, WEFT_HTTP_OK, &r);
		if (r.keep_alive != cases[i].keep)
			fail_msg("case %zu: keep_alive %d, want %d", i, r.keep_alive, cases[i].keep);
	}
}

static void test_http_parse_content_length(void **state)
{
	(void)state;
	struct weft__http_request r;
	check("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.content_length, 0);
	check("PUT /f HTTP/1.1\r\nHost: h\r\ncontent-length:104857600\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.content_length, 104857600);
	check("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.content_length, INT64_MAX);
	/* the same length twice is one length */
	check("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.content_length, 7);

	static const char *const bad[] = { "5, 6", "+5", "-1", "5a", "", " ", "0x10", "1 2",
		"9223372036854775808", "99999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char buf[160];
		snprintf(buf, sizeof buf, "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n", bad[i]);
		expect_result(buf, WEFT_HTTP_BAD_REQUEST);
	}
	/* two different lengths: ambiguous framing */
	expect_result("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
	              WEFT_HTTP_BAD_REQUEST);
	/* Transfer-Encoding: chunked is the framing (no length); other codings before it 501,
	 * chunked not final 400; with a Content-Length too, twice, or from HTTP/1.0:
	 * smuggling shapes (400) */
	check("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_true(r.chunked);
	assert_int_equal(r.content_length, -1);
	check("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n", WEFT_HTTP_OK, &r);
	assert_true(r.chunked);
	check("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_false(r.chunked);
	/* empty list elements are ignored (RFC 9110 5.6.1.2): chunked alone all the same */
	static const char *const alone[] = { "chunked", "CHUNKED", ", chunked", "chunked ,", " , chunked,\t," };
	for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++) {
		char buf[160];
		snprintf(buf, sizeof buf, "PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", alone[i]);
		check(buf, WEFT_HTTP_OK, &r);
		assert_true(r.chunked);
		assert_int_equal(r.content_length, -1);
	}
	/* chunked final after a coding weft does not apply, or with a parameter: 501 (RFC
	 * 9112 6.1) */
	static const char *const unknown[] = { "gzip, chunked", "gzip,chunked", "x-foo , chunked", "chunked, chunked",
		"chunked;x=1", "gzip, chunked;x=1", "gzip, , chunked" };
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		char buf[160];
		snprintf(buf, sizeof buf, "PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", unknown[i]);
		expect_result(buf, WEFT_HTTP_NOT_IMPLEMENTED);
	}
	/* chunked not the final coding (or none at all): the body length cannot be known,
	 * 400 and close (RFC 9112 6.3); identity is no registered coding any more, so it is
	 * one of those too */
	static const char *const unframed[] = { "gzip", "chunked, gzip", "chunked,gzip", "identity", "chunked, identity",
		"", ",", " , ", "chunkedx", "xchunked", "chunked gzip", "gzip;q=chunked" };
	for (size_t i = 0; i < sizeof unframed / sizeof unframed[0]; i++) {
		char buf[160];
		snprintf(buf, sizeof buf, "PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", unframed[i]);
		struct weft__http_request q;
		check(buf, WEFT_HTTP_BAD_REQUEST, &q);
	}
	expect_result("GET /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	              WEFT_HTTP_BAD_REQUEST);
	expect_result("PUT /f HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
	              WEFT_HTTP_BAD_REQUEST);
	expect_result("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	              WEFT_HTTP_BAD_REQUEST);
	expect_result("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	              WEFT_HTTP_BAD_REQUEST);
}

static void test_http_parse_expect(void **state)
{
	(void)state;
	struct weft__http_request r;
	check("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_true(r.expect_continue);
	check("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_true(r.expect_continue);
	check("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", WEFT_HTTP_EXPECTATION_FAILED, &r);
	assert_int_equal(weft__http_result_status(WEFT_HTTP_EXPECTATION_FAILED), 417);
}

static void test_http_parse_targets(void **state)
{
	(void)state;
	struct weft__http_request r;
	const char *s = "GET http://example.com/a/b?q HTTP/1.1\r\nHost: example.com\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_slice(s, r.path, "/a/b");
	assert_slice(s, r.query, "q");
	s = "GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_int_equal(r.path.len, 0);
	char out[16];
	assert_int_equal(weft__http_path_decode(s + r.path.off, r.path.len, out, sizeof out), 1);
	assert_string_equal(out, "/");
	s = "GET /dir/?=x? HTTP/1.1\r\nHost: h\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_slice(s, r.path, "/dir/");
	assert_slice(s, r.query, "=x?");
	s = "GET /q? HTTP/1.1\r\nHost: h\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_slice(s, r.path, "/q");
	assert_int_equal(r.query.len, 0);

	expect_result("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET * HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	expect_result("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", WEFT_HTTP_BAD_REQUEST);
	/* an embedded NUL in the request line */
	struct weft__http_request r2;
	static const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
	check_lim(nul_target, sizeof nul_target - 1, WEFT_HTTP_BAD_REQUEST, &r2, NULL);
}

static void test_http_parse_malformed_headers(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\n\r\n",                                   /* 1.1 without Host */
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",             /* two Hosts */
		"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : h\r\n\r\n",                      /* space before colon */
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n", /* obs-fold */
		"GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX(Y): 1\r\n\r\n",            /* name not a token */
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",          /* bare CR */
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n",        /* control byte */
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\r\n\r\n",
		"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_result(bad[i], WEFT_HTTP_BAD_REQUEST);
	struct weft__http_request r;
	static const char nul_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
	check_lim(nul_value, sizeof nul_value - 1, WEFT_HTTP_BAD_REQUEST, &r, NULL);
	/* obs-text and tabs in values are fine, and an empty value too */
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\tlatte\r\nX-B:\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_slice(s, r.headers[1].value, "caf\xc3\xa9\tlatte");
	assert_slice(s, r.headers[2].value, "");
	assert_int_equal(weft__http_result_status(WEFT_HTTP_BAD_REQUEST), 400);
}

static void test_http_parse_line_endings(void **state)
{
	(void)state;
	struct weft__http_request r;
	/* bare LF line ends (RFC 9112 2.2 lets a recipient accept them) */
	const char *s = "GET /lf HTTP/1.1\nHost: h\nX-A: 1\n\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_int_equal(r.head_len, strlen(s));
	assert_slice(s, r.headers[1].value, "1");
	/* empty lines before the request line are skipped */
	s = "\r\n\r\n\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
	check(s, WEFT_HTTP_OK, &r);
	assert_int_equal(r.head_len, strlen(s));
	assert_slice(s, r.path, "/x");
	/* the head ends at the first blank line; what follows is body */
	s = "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
	check(s, WEFT_HTTP_OK, &r);
	assert_int_equal(r.head_len, strlen(s) - 4);
}

static void test_http_parse_incomplete(void **state)
{
	(void)state;
	static const char *const parts[] = { "", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r",
		"GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: h", "GET / HTTP/1.1\r\nHost: h\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r", "\r\n" };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		struct weft__http_request r;
		assert_int_equal(parse_all(&r, parts[i], strlen(parts[i]), NULL), WEFT_HTTP_INCOMPLETE);
		assert_int_equal(weft__http_result_status(WEFT_HTTP_INCOMPLETE), 0);
	}
}

/* ---- limits --------------------------------------------------------------------------- */

/* A request whose head is exactly `size` bytes, padded in one X-Pad header. */
static char *head_of_size(size_t size)
{
	const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
	size_t fixed = strlen(pre) + 4;   /* "\r\n\r\n" */
	assert_true(size >= fixed);
	char *s = malloc(size + 1);
	assert_non_null(s);
	strcpy(s, pre);
	memset(s + strlen(pre), 'p', size - fixed);
	memcpy(s + size - 4, "\r\n\r\n", 5);
	return s;
}

static void test_http_parse_limits(void **state)
{
	(void)state;
	struct weft__http_request r;
	/* default: 8 KiB; exactly at the limit parses, one byte more is 431 */
	char *s = head_of_size(WEFT_HTTP_MAX_HEAD_DEFAULT);
	assert_int_equal(parse_all(&r, s, strlen(s), NULL), WEFT_HTTP_OK);
	assert_int_equal(r.head_len, WEFT_HTTP_MAX_HEAD_DEFAULT);
	free(s);
	s = head_of_size(WEFT_HTTP_MAX_HEAD_DEFAULT + 1);
	assert_int_equal(parse_all(&r, s, strlen(s), NULL), WEFT_HTTP_HEADERS_TOO_LARGE);
	assert_int_equal(weft__http_result_status(WEFT_HTTP_HEADERS_TOO_LARGE), 431);
	/* 431 comes as soon as the limit is reached, without waiting for the end */
	assert_int_equal(parse_all(&r, s, WEFT_HTTP_MAX_HEAD_DEFAULT - 1, NULL), WEFT_HTTP_INCOMPLETE);
	assert_int_equal(parse_all(&r, s, WEFT_HTTP_MAX_HEAD_DEFAULT, NULL), WEFT_HTTP_HEADERS_TOO_LARGE);
	free(s);

	/* small custom limit: every split and bytewise feeding agree */
	struct weft__http_limits lim = { .max_head = 64, .max_headers = 3 };
	s = head_of_size(64);
	check_lim(s, 64, WEFT_HTTP_OK, &r, &lim);
	free(s);
	s = head_of_size(65);
	check_lim(s, 65, WEFT_HTTP_HEADERS_TOO_LARGE, &r, &lim);
	free(s);

	/* a request line that does not end within the limit: 414 */
	char line[200];
	memset(line, 'a', sizeof line);
	memcpy(line, "GET /", 5);
	check_lim(line, sizeof line, WEFT_HTTP_URI_TOO_LONG, &r, &lim);
	assert_int_equal(weft__http_result_status(WEFT_HTTP_URI_TOO_LONG), 414);

	/* header count: max_headers is fine, one more is 431 */
	const char *three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
	check_lim(three, strlen(three), WEFT_HTTP_OK, &r, &lim);
	assert_int_equal(r.nheaders, 3);
	const char *four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	check_lim(four, strlen(four), WEFT_HTTP_HEADERS_TOO_LARGE, &r, &lim);
	/* the default count limit */
	char many[4096];
	size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
	for (unsigned i = 0; i < WEFT_HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "H%u: v\r\n", i);
	memcpy(many + n, "\r\n", 3);
	check_lim(many, n + 2, WEFT_HTTP_BAD_REQUEST, &r, NULL);   /* 64 headers, no Host */
	memcpy(many + n, "Host: h\r\n\r\n", 12);
	check_lim(many, n + 11, WEFT_HTTP_HEADERS_TOO_LARGE, &r, NULL);
	memcpy(many + 16, "Host:", 5);   /* "H0: v" becomes "Host:": 64 headers, one Host */
	memcpy(many + n, "\r\n", 3);
	check_lim(many, n + 2, WEFT_HTTP_OK, &r, NULL);
	assert_int_equal(r.nheaders, WEFT_HTTP_MAX_HEADERS);
	assert_int_equal(r.host.len, 0);
	/* limits are clamped, not trusted */
	struct weft__http_limits huge = { .max_head = UINT32_MAX, .max_headers = UINT32_MAX };
	assert_int_equal(parse_all(&r, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &huge), WEFT_HTTP_OK);
}

/* ---- pipelining ------------------------------------------------------------------------ */

static void test_http_parse_pipelined(void **state)
{
	(void)state;
	const char *buf = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
	                  "PUT /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	                  "HEAD /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	                  "GET /four HTTP/1.1\r\nHo";
	static const struct {
		int method;
		const char *path;
		int64_t cl;
		bool keep;
	} want[] = {
		{ WEFT_HTTP_GET, "/one", -1, true },
		{ WEFT_HTTP_PUT, "/two", 5, true },
		{ WEFT_HTTP_HEAD, "/three", -1, false },
	};
	size_t len = strlen(buf), at = 0;
	for (size_t i = 0; i < 3; i++) {
		struct weft__http_request r;
		weft__http_request_init(&r, NULL);
		const char *p = buf + at;
		assert_int_equal(weft__http_parse(&r, p, len - at), WEFT_HTTP_OK);
		assert_int_equal(r.method, want[i].method);
		assert_slice(p, r.path, want[i].path);
		assert_int_equal(r.content_length, want[i].cl);
		assert_int_equal(r.keep_alive, want[i].keep);
		if (r.content_length > 0)
			assert_memory_equal(p + r.head_len, "hello", 5);
		at += r.head_len + (size_t)(r.content_length > 0 ? r.content_length : 0);
	}
	/* the fourth has not fully arrived */
	struct weft__http_request r;
	weft__http_request_init(&r, NULL);
	assert_int_equal(weft__http_parse(&r, buf + at, len - at), WEFT_HTTP_INCOMPLETE);
	assert_memory_equal(buf + at, "GET /four", 9);

	/* A pipeline fed in pieces of every size from 1 to 40: each request found whole. */
	for (size_t piece = 1; piece <= 40; piece++) {
		size_t have = 0, start = 0, found = 0;
		weft__http_request_init(&r, NULL);
		while (have < len) {
			have = have + piece < len ? have + piece : len;
			int res;
			while ((res = weft__http_parse(&r, buf + start, have - start)) == WEFT_HTTP_OK) {
				size_t body = (size_t)(r.content_length > 0 ? r.content_length : 0);
				if (have - start < r.head_len + body)
					break;   /* wait for the body */
				assert_int_equal(r.method, want[found].method);
				assert_slice(buf + start, r.path, want[found].path);
				found++;
				start += r.head_len + body;
				weft__http_request_init(&r, NULL);
			}
			assert_true(res == WEFT_HTTP_OK || res == WEFT_HTTP_INCOMPLETE);
		}
		assert_int_equal(found, 3);
		assert_int_equal(start, at);
	}
}

/* ---- Range ---------------------------------------------------------------------------- */

static struct weft__http_range range_of(const char *value)
{
	char buf[256];
	snprintf(buf, sizeof buf, "GET /f HTTP/1.1\r\nHost: h\r\nRange: %s\r\n\r\n", value);
	struct weft__http_request r;
	check(buf, WEFT_HTTP_OK, &r);
	return r.range;
}

static void test_http_parse_range(void **state)
{
	(void)state;
	struct weft__http_range g = range_of("bytes=0-499");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_FROM_TO);
	assert_int_equal(g.first, 0);
	assert_int_equal(g.last, 499);
	g = range_of("bytes=500-");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_FROM);
	assert_int_equal(g.first, 500);
	g = range_of("bytes=-500");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_SUFFIX);
	assert_int_equal(g.last, 500);
	g = range_of("Bytes=7-7");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_FROM_TO);
	assert_int_equal(g.first, 7);
	assert_int_equal(g.last, 7);
	g = range_of("bytes=9223372036854775806-9223372036854775807");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_FROM_TO);

	static const char *const ignored[] = { "bytes=5-3", "bytes=0-1,3-2", "items=0-1", "bytes=",
		"bytes=-", "bytes=a-b", "bytes=1-b", "bytes= 1-2", "bytes=1--2", "bytes=--2", "bytes",
		"bytes=1-2-3", "bytes=9223372036854775808-", "bytes=-99999999999999999999", "0-1", "bytes=,",
		"bytes=0-1,x", "bytes=0-1,,-", "bytes=0-1 ;3-4", "bytes=0-1, 3-4 5-6",
		/* 17 specs: more than weft serves as parts */
		"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32" };
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
		g = range_of(ignored[i]);
		if (g.kind != WEFT_HTTP_RANGE_IGNORED)
			fail_msg("Range: %s parsed as kind %d", ignored[i], g.kind);
	}
	/* two Range headers: neither is served */
	struct weft__http_request r;
	check("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=0-1\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_IGNORED);
	check("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,4-5\r\nRange: bytes=0-1\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_IGNORED);

	/* lists: every spec kept, in the order sent; OWS around commas and empty elements
	 * are allowed (1#range-spec) */
	check("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9,20-29,100-\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_MULTI);
	assert_int_equal(r.nranges, 3);
	assert_int_equal(r.ranges[0].kind, WEFT_HTTP_RANGE_FROM_TO);
	assert_int_equal(r.ranges[0].first, 0);
	assert_int_equal(r.ranges[0].last, 9);
	assert_int_equal(r.ranges[1].first, 20);
	assert_int_equal(r.ranges[1].last, 29);
	assert_int_equal(r.ranges[2].kind, WEFT_HTTP_RANGE_FROM);
	assert_int_equal(r.ranges[2].first, 100);
	check("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=-5 ,\t,, 3-4,\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_MULTI);
	assert_int_equal(r.nranges, 2);
	assert_int_equal(r.ranges[0].kind, WEFT_HTTP_RANGE_SUFFIX);
	assert_int_equal(r.ranges[0].last, 5);
	assert_int_equal(r.ranges[1].first, 3);
	/* one spec and empty elements: a plain single range */
	g = range_of("bytes=7-8,");
	assert_int_equal(g.kind, WEFT_HTTP_RANGE_FROM_TO);
	assert_int_equal(g.first, 7);
	assert_int_equal(g.last, 8);
	/* 16 specs: the most served */
	check("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,"
	      "20-20,22-22,24-24,26-26,28-28,-1\r\n\r\n", WEFT_HTTP_OK, &r);
	assert_int_equal(r.range.kind, WEFT_HTTP_RANGE_MULTI);
	assert_int_equal(r.nranges, 16);
	assert_int_equal(r.ranges[15].kind, WEFT_HTTP_RANGE_SUFFIX);
}

static void resolve(const char *value, uint64_t size, int expect, uint64_t first, uint64_t last)
{
	struct weft__http_range g = range_of(value);
	uint64_t f = 77, l = 77;
	int rc = weft__http_range_resolve(&g, size, &f, &l);
	if (rc != expect)
		fail_msg("Range %s on %llu bytes: %d, want %d", value, (unsigned long long)size, rc, expect);
	if (rc >= 0) {
		assert_int_equal(f, first);
		assert_int_equal(l, last);
	}
}

static void test_http_parse_range_resolve(void **state)
{
	(void)state;
	resolve("bytes=0-499", 1000, 1, 0, 499);
	resolve("bytes=0-0", 1000, 1, 0, 0);
	resolve("bytes=500-", 1000, 1, 500, 999);
	resolve("bytes=999-", 1000, 1, 999, 999);
	resolve("bytes=990-2000", 1000, 1, 990, 999);
	resolve("bytes=0-999999", 1000, 1, 0, 999);
	resolve("bytes=-200", 1000, 1, 800, 999);
	resolve("bytes=-1000", 1000, 1, 0, 999);
	resolve("bytes=-2000", 1000, 1, 0, 999);
	resolve("bytes=1000-", 1000, -ERANGE, 0, 0);
	resolve("bytes=1000-1001", 1000, -ERANGE, 0, 0);
	resolve("bytes=-0", 1000, -ERANGE, 0, 0);
	resolve("bytes=0-", 0, -ERANGE, 0, 0);
	resolve("bytes=-5", 0, -ERANGE, 0, 0);
	resolve("bytes=5-3", 1000, 0, 0, 999);   /* ignored: the whole file */
	resolve("bytes=0-1,5-6", 1000, 0, 0, 999);   /* a list: only weft__http_ranges_resolve */

	struct weft__http_range none = { .kind = WEFT_HTTP_RANGE_NONE };
	uint64_t f, l;
	assert_int_equal(weft__http_range_resolve(&none, 1000, &f, &l), 0);
	assert_int_equal(f, 0);
	assert_int_equal(l, 999);
	assert_int_equal(weft__http_range_resolve(&none, 0, &f, &l), 0);
	assert_int_equal(f, 0);
	assert_int_equal(l, 0);
}

/* Resolves the Range value against size with weft__http_ranges_resolve; want holds
 * first,last pairs (n of them), or n is the expected 0 / -ERANGE. */
static void resolve_set(const char *value, uint64_t size, int n, const uint64_t *want)
{
	char buf[512];
	snprintf(buf, sizeof buf, "GET /f HTTP/1.1\r\nHost: h\r\nRange: %s\r\n\r\n", value);
	struct weft__http_request r;
	check(buf, WEFT_HTTP_OK, &r);
	struct weft__http_span sp[WEFT_HTTP_MAX_RANGES];
	int rc = weft__http_ranges_resolve(&r, size, sp);
	if (rc != n)
		fail_msg("Range %s on %llu bytes: %d spans, want %d", value, (unsigned long long)size, rc, n);
	for (int i = 0; i < rc; i++)
		if (sp[i].first != want[2 * i] || sp[i].last != want[2 * i + 1])
			fail_msg("Range %s: span %d is %llu-%llu, want %llu-%llu", value, i,
				 (unsigned long long)sp[i].first, (unsigned long long)sp[i].last,
				 (unsigned long long)want[2 * i], (unsigned long long)want[2 * i + 1]);
}

static void test_http_parse_ranges_resolve(void **state)
{
	(void)state;
	/* ascending and disjoint: kept as sent */
	resolve_set("bytes=0-9,20-29,100-", 1000, 3, (const uint64_t[]){ 0, 9, 20, 29, 100, 999 });
	/* a suffix and an open end clipped to the entity */
	resolve_set("bytes=0-0,-10", 1000, 2, (const uint64_t[]){ 0, 0, 990, 999 });
	resolve_set("bytes=0-0,500-5000", 1000, 2, (const uint64_t[]){ 0, 0, 500, 999 });
	/* out of order: kept in the order asked (RFC 9110 14.6) */
	resolve_set("bytes=500-599,0-9", 1000, 2, (const uint64_t[]){ 500, 599, 0, 9 });
	resolve_set("bytes=20-29,0-9", 1000, 2, (const uint64_t[]){ 20, 29, 0, 9 });
	resolve_set("bytes=-10,0-0,500-509", 1000, 3, (const uint64_t[]){ 990, 999, 0, 0, 500, 509 });
	/* overlapping and adjacent: merged, never a byte twice, in the place of the first */
	resolve_set("bytes=0-9,5-14,15-19,40-49", 1000, 2, (const uint64_t[]){ 0, 19, 40, 49 });
	resolve_set("bytes=50-59,0-9,55-70", 1000, 2, (const uint64_t[]){ 50, 70, 0, 9 });
	resolve_set("bytes=40-49,0-9,10-19", 1000, 2, (const uint64_t[]){ 40, 49, 0, 19 });
	resolve_set("bytes=30-39,0-9,60-69,10-19", 1000, 3, (const uint64_t[]){ 30, 39, 0, 19, 60, 69 });
	/* one spec bridging two earlier parts: one part where the earlier of them was */
	resolve_set("bytes=60-69,0-9,20-29,10-19", 1000, 2, (const uint64_t[]){ 60, 69, 0, 29 });
	resolve_set("bytes=100-109,60-69,0-9,5-65", 1000, 2, (const uint64_t[]){ 100, 109, 0, 69 });
	resolve_set("bytes=0-9,50-59,5-55", 1000, 1, (const uint64_t[]){ 0, 59 });
	resolve_set("bytes=30-39,0-9,20-29,10-19", 1000, 1, (const uint64_t[]){ 0, 39 });
	resolve_set("bytes=0-,0-,0-,0-", 1000, 1, (const uint64_t[]){ 0, 999 });
	resolve_set("bytes=10-20,12-13", 1000, 1, (const uint64_t[]){ 10, 20 });
	resolve_set("bytes=-1,999-", 1000, 1, (const uint64_t[]){ 999, 999 });
	/* unsatisfiable specs are dropped; none left: 416 */
	resolve_set("bytes=0-9,2000-3000", 1000, 1, (const uint64_t[]){ 0, 9 });
	resolve_set("bytes=0-9,2000-,20-29", 1000, 2, (const uint64_t[]){ 0, 9, 20, 29 });
	resolve_set("bytes=20-29,2000-,0-9", 1000, 2, (const uint64_t[]){ 20, 29, 0, 9 });
	resolve_set("bytes=1000-,2000-3000,-0", 1000, -ERANGE, NULL);
	resolve_set("bytes=0-1,3-4", 0, -ERANGE, NULL);
	/* single ranges and none go through it too */
	resolve_set("bytes=10-19", 1000, 1, (const uint64_t[]){ 10, 19 });
	resolve_set("bytes=1000-", 1000, -ERANGE, NULL);
	resolve_set("items=0-1", 1000, 0, NULL);
	/* 16 one-byte specs, descending: 16 spans, in the order asked */
	char v[256] = "bytes=";
	uint64_t want[32];
	for (int i = 15; i >= 0; i--) {
		char one[16];
		snprintf(one, sizeof one, "%d-%d%s", 3 * i, 3 * i, i ? "," : "");
		strcat(v, one);
		want[2 * (15 - i)] = want[2 * (15 - i) + 1] = (uint64_t)(3 * i);
	}
	resolve_set(v, 1000, 16, want);
}

/* ---- chunked bodies ------------------------------------------------------------------- */

/* Decodes s[0, n) fed in pieces of `step` bytes (0: whole), each in a buffer of exactly
 * that size; collects the body into out. Returns the final result and in *end the offset
 * at which the body ended (END). */
static int chunked_run(const char *s, size_t n, size_t step, uint64_t max, char *out, size_t *out_len, size_t *end)
{
	struct weft__http_chunked d;
	weft__http_chunked_init(&d, max);
	*out_len = 0;
	size_t pos = 0;
	int rc = WEFT_HTTP_CHUNK_NEED;
	while (pos < n || rc == WEFT_HTTP_CHUNK_DATA) {
		size_t k = step && n - pos > step ? step : n - pos;
		char *b = malloc(k ? k : 1);
		assert_non_null(b);
		memcpy(b, s + pos, k);
		size_t off = 0, used, data;
		while ((rc = weft__http_chunked_next(&d, b + off, k - off, &used, &data)) == WEFT_HTTP_CHUNK_DATA) {
			assert_true(data > 0 && off + used + data <= k);
			memcpy(out + *out_len, b + off + used, data);
			*out_len += data;
			off += used + data;
		}
		off += used;
		free(b);
		if (rc != WEFT_HTTP_CHUNK_NEED) {
			*end = pos + off;
			return rc;
		}
		assert_int_equal(off, k);
		pos += k;
	}
	*end = pos;
	return rc;
}

/* s must decode to body (and END just before the n - tail'th byte) however it is split. */
static void chunked_ok(const char *s, size_t n, const char *body, size_t body_len, size_t tail)
{
	char out[512];
	size_t ol, end;
	for (size_t step = 0; step <= 7; step++) {
		int rc = chunked_run(s, n, step, 0, out, &ol, &end);
		if (rc != WEFT_HTTP_CHUNK_END)
			fail_msg("[%.*s] step %zu: %d, want END", (int)n, s, step, rc);
		assert_int_equal(ol, body_len);
		assert_memory_equal(out, body, body_len);
		assert_int_equal(end, n - tail);
	}
}

static void chunked_bad(const char *s, int want)
{
	char out[512];
	size_t ol, end;
	for (size_t step = 0; step <= 3; step++) {
		int rc = chunked_run(s, strlen(s), step, 16, out, &ol, &end);
		if (rc != want)
			fail_msg("[%s] step %zu: %d, want %d", s, step, rc, want);
	}
}

static void test_http_parse_chunked(void **state)
{
	(void)state;
#define OK(s, body, tail) chunked_ok(s, sizeof(s) - 1, body, sizeof(body) - 1, tail)
	OK("5\r\nhello\r\n0\r\n\r\n", "hello", 0);
	OK("0\r\n\r\n", "", 0);
	/* several chunks, upper and lower hex, leading zeros */
	OK("3\r\nabc\r\nA\r\n0123456789\r\n00001\r\nz\r\n0\r\n\r\n", "abc0123456789z", 0);
	OK("a\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0);
	/* extensions (with BWS, values, quoted strings) and trailers are skipped */
	OK("2;name=value\r\nhi\r\n1 ; x ; y=\"a b;c\"\r\n!\r\n0;last\r\n\r\n", "hi!", 0);
	OK("2\r\nhi\r\n0\r\nDigest: sha-256=abc\r\nX-T:\r\n\r\n", "hi", 0);
	/* data holding CR LF and digits is data */
	OK("4\r\n\r\n0\r\r\n0\r\n\r\n", "\r\n0\r", 0);
	/* what follows the body is the next request's, untouched */
	OK("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hi", 16);
#undef OK
	static const char *const bad[] = {
		"\r\n", "x\r\n", "-1\r\n", " 5\r\nhello\r\n", "5\nhello\r\n0\r\n\r\n", "5\r\nhelloX\r\n",
		"5\r\nhello\n0\r\n\r\n", "5 x\r\n", "5;\x01\r\n", "0x5\r\nhello\r\n", "5\rx", "0\r\n:x\r\n\r\n",
		"0\r\nX Y: z\r\n\r\n", "0\r\nX: \x01\r\n\r\n", "0\r\n\r\r", "0\r\nX: y\n\r\n",
		/* a size past 2^63 */
		"80000000000000000\r\n", "fffffffffffffffffff\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		chunked_bad(bad[i], WEFT_HTTP_CHUNK_BAD);
	/* the bound counts announced sizes, before their bytes arrive: 16 is fine, 17 not */
	chunked_bad("10\r\n", WEFT_HTTP_CHUNK_NEED);
	chunked_bad("8\r\n12345678\r\n9\r\n", WEFT_HTTP_CHUNK_TOO_LARGE);
	chunked_bad("7fffffffffffffff\r\n", WEFT_HTTP_CHUNK_TOO_LARGE);
	/* endless extensions or trailers are refused */
	char *big = malloc(20000);
	assert_non_null(big);
	memcpy(big, "1;", 2);
	memset(big + 2, 'a', 19990);
	big[19992] = '\0';
	chunked_bad(big, WEFT_HTTP_CHUNK_BAD);
	memcpy(big, "0\r\n", 3);
	for (size_t i = 3; i + 6 < 19990; i += 6)
		memcpy(big + i, "X: y\r\n", 6);
	chunked_bad(big, WEFT_HTTP_CHUNK_BAD);
	free(big);
	/* sticky: after an error, more bytes change nothing */
	struct weft__http_chunked d;
	weft__http_chunked_init(&d, 0);
	size_t used, data;
	assert_int_equal(weft__http_chunked_next(&d, "z", 1, &used, &data), WEFT_HTTP_CHUNK_BAD);
	assert_int_equal(weft__http_chunked_next(&d, "0\r\n\r\n", 5, &used, &data), WEFT_HTTP_CHUNK_BAD);
	/* and after the end, END again with nothing consumed */
	weft__http_chunked_init(&d, 0);
	assert_int_equal(weft__http_chunked_next(&d, "0\r\n\r\nX", 6, &used, &data), WEFT_HTTP_CHUNK_END);
	assert_int_equal(used, 5);
	assert_int_equal(weft__http_chunked_next(&d, "X", 1, &used, &data), WEFT_HTTP_CHUNK_END);
	assert_int_equal(used, 0);
}

/* ---- path decoding and normalizing ------------------------------------------------------ */

static void path_ok(const char *in, const char *want)
{
	char out[256];
	int n = weft__http_path_decode(in, strlen(in), out, sizeof out);
	if (n < 0 || strcmp(out, want) != 0)
		fail_msg("path [%s]: %d [%s], want [%s]", in, n, n >= 0 ? out : "", want);
	assert_int_equal(n, (int)strlen(want));
}

static void path_err(const char *in, int err)
{
	char out[256];
	int n = weft__http_path_decode(in, strlen(in), out, sizeof out);
	if (n != err)
		fail_msg("path [%s]: %d, want %d", in, n, err);
}

static void test_http_parse_path_decode(void **state)
{
	(void)state;
	path_ok("/", "/");
	path_ok("", "/");
	path_ok("/index.html", "/index.html");
	path_ok("/a%20b", "/a b");
	path_ok("/%41%62%63", "/Abc");
	path_ok("/caf%C3%A9", "/caf\xc3\xa9");
	path_ok("/a+b", "/a+b");
	path_ok("//a///b", "/a/b");
	path_ok("/dir/", "/dir/");
	path_ok("/./a/./b/.", "/a/b/");
	path_ok("/%2e/a", "/a");
	path_ok("/...", "/...");
	path_ok("/a..b/..c/c..", "/a..b/..c/c..");
	path_ok("/.hidden", "/.hidden");

	/* escaping the root, however it is spelled: 403 */
	static const char *const escapes[] = { "/..", "/../", "/../etc/passwd", "/a/../b", "/a/..",
		"/%2e%2e/etc/passwd", "/%2E%2e/", "/.%2e/x", "/%2e./x", "/a/%2e%2e", "//..//x", "/./../x",
		"/a%2fb", "/a%2F..%2Fb", "/%2f", "/a%5cb", "/a%5C..%5Cb", "/a\\b", "/..\\x" };
	for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
		path_err(escapes[i], -EACCES);

	/* malformed: 400 */
	static const char *const bad[] = { "a", "index.html", "/%00", "/a%00.txt", "/%0", "/%",
		"/%zz", "/%g0", "/%0g", "/%0a", "/%0D%0A", "/a%7f", "/%1f" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		path_err(bad[i], -EINVAL);

	/* capacity: the result and its NUL must fit */
	char out[8];
	assert_int_equal(weft__http_path_decode("/abcdef", 7, out, sizeof out), 7);
	assert_string_equal(out, "/abcdef");
	assert_int_equal(weft__http_path_decode("/abcdefg", 8, out, sizeof out), -ENAMETOOLONG);
	assert_int_equal(weft__http_path_decode("/%61%62%63%64%65%66", 19, out, sizeof out), 7);
	assert_int_equal(weft__http_path_decode("/", 1, out, 1), -ENAMETOOLONG);
	/* only len bytes are read: a path slice out of a request line */
	assert_int_equal(weft__http_path_decode("/ab HTTP/1.1", 3, out, sizeof out), 3);
	assert_string_equal(out, "/ab");
	assert_int_equal(weft__http_path_decode("/a%4", 3, out, sizeof out), -EINVAL);
}

/* ---- response heads --------------------------------------------------------------------- */

static void test_http_parse_format_date(void **state)
{
	(void)state;
	char d[30];
	assert_int_equal(weft__http_format_date(d, sizeof d, 0), 29);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
	assert_int_equal(weft__http_format_date(d, sizeof d, 784111777), 29);
	assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
	weft__http_format_date(d, sizeof d, 951782400);
	assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");
	weft__http_format_date(d, sizeof d, -1);
	assert_string_equal(d, "Wed, 31 Dec 1969 23:59:59 GMT");
	weft__http_format_date(d, sizeof d, 253402300799ll);
	assert_string_equal(d, "Fri, 31 Dec 9999 23:59:59 GMT");
	assert_int_equal(weft__http_format_date(d, sizeof d, 253402300800ll), -EINVAL);
	assert_int_equal(weft__http_format_date(d, sizeof d, -62167219201ll), -EINVAL);
	assert_int_equal(weft__http_format_date(d, 29, 0), -ENOSPC);

	/* agrees with gmtime_r + strftime (C locale) across 1800..2400 */
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t t = (int64_t)(x % 18934560000ull) - 5364662400ll;
		time_t tt = (time_t)t;
		struct tm tm;
		assert_non_null(gmtime_r(&tt, &tm));
		char want[64];
		strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		assert_int_equal(weft__http_format_date(d, sizeof d, t), 29);
		if (strcmp(d, want) != 0)
			fail_msg("t=%lld: [%s] want [%s]", (long long)t, d, want);
	}
}

/* ---- validators: dates and entity tags ------------------------------------------------------- */

static void test_http_parse_dates_and_etags(void **state)
{
	(void)state;
	int64_t t = 0;
	const char *s = "Sun, 06 Nov 1994 08:49:37 GMT";
	assert_int_equal(weft__http_parse_date(s, strlen(s), &t), 0);
	assert_int_equal(t, 784111777);
	/* the inverse of the formatter across 1800..2400, leap days included */
	uint64_t x = 88172645463325252ull;
	char d[30];
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t want = (int64_t)(x % 18934560000ull) - 5364662400ll;
		assert_int_equal(weft__http_format_date(d, sizeof d, want), 29);
		assert_int_equal(weft__http_parse_date(d, 29, &t), 0);
		if (t != want)
			fail_msg("[%s]: %lld, want %lld", d, (long long)t, (long long)want);
	}
	/* what is refused: other forms, bad fields, wrong lengths */
	static const char *const bad[] = {
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
		"Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 0x Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GM",
		"", "Sun, 06 Nov 1994 08:49:37 GMT ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (weft__http_parse_date(bad[i], strlen(bad[i]), &t) != -EINVAL)
			fail_msg("accepted [%s]", bad[i]);

	const char *tag = "\"1a-2b-3c\"";
#define M(list, weak) weft__http_etag_match(list, strlen(list), tag, weak)
	assert_true(M("\"1a-2b-3c\"", true));
	assert_true(M("\"1a-2b-3c\"", false));
	assert_true(M("*", true));
	assert_true(M("\"x\", \"1a-2b-3c\"", true));
	assert_true(M("\"x\",\"1a-2b-3c\" , \"y\"", false));
	assert_true(M("W/\"1a-2b-3c\"", true));    /* weak comparison: W/ ignored */
	assert_false(M("W/\"1a-2b-3c\"", false));  /* strong: a weak tag never matches */
	assert_false(M("\"1a-2b-3d\"", true));
	assert_false(M("\"1a-2b-3c", true));        /* unterminated */
	assert_false(M("1a-2b-3c", true));           /* unquoted */
	assert_false(M("", true));
#undef M

	/* repeated If-Match / If-None-Match lines: one list; dates: only a single line */
	struct weft__http_request r;
	const char *rep = "GET / HTTP/1.1\r\nIf-None-Match: \"x\"\r\nHost: a\r\nif-none-match: \"y\", \"1a-2b-3c\"\r\n"
			  "If-Match: \"x\"\r\nIf-Match: W/\"1a-2b-3c\"\r\nIf-Match: \"z\"\r\n"
			  "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
			  "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
			  "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
	assert_int_equal(parse_all(&r, rep, strlen(rep), NULL), WEFT_HTTP_OK);
	assert_int_equal(weft__http_etag_match_lines(&r, rep, "If-None-Match", tag, true), 1);
	assert_int_equal(weft__http_etag_match_lines(&r, rep, "If-Match", tag, false), 0);   /* W/: strong */
	assert_int_equal(weft__http_etag_match_lines(&r, rep, "If-Match", tag, true), 1);
	assert_int_equal(weft__http_etag_match_lines(&r, rep, "If-Range", tag, true), -1);   /* absent */
	int64_t when = 0;
	assert_true(weft__http_date_header(&r, rep, "If-Modified-Since", &when));
	assert_int_equal(when, 784111777);
	assert_false(weft__http_date_header(&r, rep, "If-Unmodified-Since", &when));   /* twice: invalid */
	assert_false(weft__http_date_header(&r, rep, "Date", &when));
	uint32_t at = 0;
	size_t vl;
	unsigned lines = 0;
	while (weft__http_header_next(&r, rep, "IF-MATCH", &at, &vl))
		lines++;
	assert_int_equal(lines, 3);

	/* the parser flags conditional requests, and only those */
	const char *req = "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_true(r.conditional);
	req = "GET / HTTP/1.1\r\nHost: a\r\nif-modified-since: x\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_true(r.conditional);
	req = "GET / HTTP/1.1\r\nHost: a\r\nIf-Range: x\r\nRange: bytes=1-2\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_true(r.conditional);
	req = "GET / HTTP/1.1\r\nHost: a\r\nIf-Match: x\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_true(r.conditional);
	req = "PUT / HTTP/1.1\r\nHost: a\r\nIF-UNMODIFIED-SINCE: x\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_true(r.conditional);
	req = "GET / HTTP/1.1\r\nHost: a\r\nIf: y\r\nIf-Matches: z\r\n\r\n";
	assert_int_equal(parse_all(&r, req, strlen(req), NULL), WEFT_HTTP_OK);
	assert_false(r.conditional);
}

static struct weft__http_response base_response(int status)
{
	return (struct weft__http_response){ .status = status, .content_length = -1, .last_modified = -1,
		.date = -1, .keep_alive = true };
}

static void format_is(const struct weft__http_response *r, const char *want)
{
	char out[512];
	int n = weft__http_format_response(out, sizeof out, r);
	if (n != (int)strlen(want) || memcmp(out, want, (size_t)n) != 0)
		fail_msg("got %d [%.*s]\nwant [%s]", n, n > 0 ? n : 0, out, want);
	/* every smaller buffer is refused, and the exact size is enough */
	char *exact = malloc((size_t)n);
	assert_non_null(exact);
	for (int cap = 0; cap < n; cap++)
		assert_int_equal(weft__http_format_response(exact, (size_t)cap, r), -ENOSPC);
	assert_int_equal(weft__http_format_response(exact, (size_t)n, r), n);
	assert_memory_equal(exact, want, (size_t)n);
	free(exact);
}

static void test_http_parse_format_response(void **state)
{
	(void)state;
	struct weft__http_response r = base_response(200);
	r.content_length = 1234;
	r.last_modified = 784111777;
	r.date = 0;
	r.accept_ranges = true;
	r.content_type = "application/octet-stream";
	format_is(&r, "HTTP/1.1 200 OK\r\n"
	              "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
	              "Server: weft\r\n"
	              "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
	              "Content-Type: application/octet-stream\r\n"
	              "Content-Length: 1234\r\n"
	              "Accept-Ranges: bytes\r\n"
	              "\r\n");

	r = base_response(206);
	r.content_length = 500;
	r.content_range = true;
	r.range_first = 500;
	r.range_last = 999;
	r.range_total = 1000;
	format_is(&r, "HTTP/1.1 206 Partial Content\r\nServer: weft\r\nContent-Length: 500\r\n"
	              "Content-Range: bytes 500-999/1000\r\n\r\n");

	r = base_response(416);
	r.content_length = 0;
	r.range_unsatisfied = true;
	r.range_total = 18446744073709551615ull;
	format_is(&r, "HTTP/1.1 416 Range Not Satisfiable\r\nServer: weft\r\nContent-Length: 0\r\n"
	              "Content-Range: bytes */18446744073709551615\r\n\r\n");

	r = base_response(405);
	r.content_length = 0;
	r.allow = true;
	r.keep_alive = false;
	format_is(&r, "HTTP/1.1 405 Method Not Allowed\r\nServer: weft\r\nContent-Length: 0\r\n"
	              "Allow: GET, HEAD, PUT\r\nConnection: close\r\n\r\n");

	r = base_response(200);
	r.http10_client = true;
	r.content_length = 0;
	format_is(&r, "HTTP/1.1 200 OK\r\nServer: weft\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");

	r = base_response(431);
	r.keep_alive = false;
	r.http10_client = true;
	format_is(&r, "HTTP/1.1 431 Request Header Fields Too Large\r\nServer: weft\r\nConnection: close\r\n\r\n");

	r = base_response(599);
	format_is(&r, "HTTP/1.1 599 Unknown\r\nServer: weft\r\n\r\n");

	char out[64];
	r = base_response(99);
	assert_int_equal(weft__http_format_response(out, sizeof out, &r), -EINVAL);
	r = base_response(600);
	assert_int_equal(weft__http_format_response(out, sizeof out, &r), -EINVAL);

	static const int codes[] = { 100, 200, 201, 204, 206, 304, 400, 403, 404, 405, 408, 409, 411,
		412, 413, 414, 416, 417, 431, 500, 501, 503, 505 };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		assert_string_not_equal(weft__http_reason(codes[i]), "Unknown");
	assert_string_equal(weft__http_reason(404), "Not Found");
	assert_string_equal(weft__http_reason(412), "Precondition Failed");

	/* multipart/byteranges: the head's Content-Type and the part heads */
	r = base_response(206);
	r.content_length = 300;
	r.content_type = "text/plain";
	r.boundary = "weft-0123";
	format_is(&r, "HTTP/1.1 206 Partial Content\r\nServer: weft\r\n"
		      "Content-Type: multipart/byteranges; boundary=weft-0123\r\nContent-Length: 300\r\n\r\n");
	char part[128];
	struct weft__http_span sp = { 20, 29 };
	const char *want = "--weft-0123\r\nContent-Type: text/plain\r\nContent-Range: bytes 20-29/1000\r\n\r\n";
	assert_int_equal(weft__http_format_part(part, sizeof part, "weft-0123", "text/plain", &sp, 1000, true, false),
			 (int)strlen(want));
	assert_memory_equal(part, want, strlen(want));
	want = "\r\n--weft-0123\r\nContent-Range: bytes 20-29/1000\r\n\r\n";
	assert_int_equal(weft__http_format_part(part, sizeof part, "weft-0123", NULL, &sp, 1000, false, false),
			 (int)strlen(want));
	assert_memory_equal(part, want, strlen(want));
	want = "\r\n--weft-0123--\r\n";
	assert_int_equal(weft__http_format_part(part, sizeof part, "weft-0123", NULL, NULL, 1000, false, true),
			 (int)strlen(want));
	assert_memory_equal(part, want, strlen(want));
	assert_int_equal(weft__http_format_part(part, 10, "weft-0123", NULL, NULL, 1000, false, true), -ENOSPC);
}

/* ---- robustness ------------------------------------------------------------------------- */

/* Random mutations of valid requests: whatever the bytes, the parser answers, agrees with
 * itself across feeding patterns, and never reads outside what it was given (ASan). */
static void test_http_parse_mutations(void **state)
{
	(void)state;
	static const char *const seeds[] = {
		"GET /a/b?c=d HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\nConnection: close\r\n\r\n",
		"PUT /up HTTP/1.0\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n",
		"HEAD http://x/y HTTP/1.1\nHost: x\n\n",
	};
	static const char alphabet[] = "\r\n :/%.-\t\0aZ9,=?#\x80\x01";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned iters = (unsigned)weft_test_iters(3000);
	struct weft__http_limits lim = { .max_head = 96, .max_headers = 4 };
	for (unsigned it = 0; it < iters; it++) {
		char buf[160];
		const char *seed = seeds[it % 3];
		size_t n = strlen(seed);
		memcpy(buf, seed, n);
		for (int m = 0; m < 3; m++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t at = (size_t)(x % n);
			buf[at] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
		}
		const struct weft__http_limits *l = (it & 1) ? &lim : NULL;
		struct weft__http_request whole, piece;
		int expect = parse_all(&whole, buf, n, l);
		assert_true(expect >= WEFT_HTTP_OK && expect <= WEFT_HTTP_EXPECTATION_FAILED);
		if (expect == WEFT_HTTP_OK)
			assert_true(whole.head_len <= n);
		assert_int_equal(parse_bytewise(&piece, buf, n, l, expect), expect);
		size_t k = (size_t)((x >> 20) % (n + 1));
		assert_int_equal(parse_split(&piece, buf, n, k, l, expect), expect);
		if (expect == WEFT_HTTP_OK) {
			assert_same_request(&whole, &piece);
			char out[200];
			int rc = weft__http_path_decode(buf + whole.path.off, whole.path.len, out, sizeof out);
			assert_true(rc > 0 || rc == -EINVAL || rc == -EACCES);
			if (rc > 0) {
				assert_int_equal(strlen(out), (size_t)rc);
				assert_null(strstr(out, "/../"));
				assert_null(strstr(out, "//"));
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_parse_simple_get),
		cmocka_unit_test(test_http_parse_methods),
		cmocka_unit_test(test_http_parse_versions),
		cmocka_unit_test(test_http_parse_keep_alive),
		cmocka_unit_test(test_http_parse_content_length),
		cmocka_unit_test(test_http_parse_expect),
		cmocka_unit_test(test_http_parse_targets),
		cmocka_unit_test(test_http_parse_malformed_headers),
		cmocka_unit_test(test_http_parse_line_endings),
		cmocka_unit_test(test_http_parse_incomplete),
		cmocka_unit_test(test_http_parse_limits),
		cmocka_unit_test(test_http_parse_pipelined),
		cmocka_unit_test(test_http_parse_range),
		cmocka_unit_test(test_http_parse_range_resolve),
		cmocka_unit_test(test_http_parse_ranges_resolve),
		cmocka_unit_test(test_http_parse_chunked),
		cmocka_unit_test(test_http_parse_path_decode),
		cmocka_unit_test(test_http_parse_format_date),
		cmocka_unit_test(test_http_parse_dates_and_etags),
		cmocka_unit_test(test_http_parse_format_response),
		cmocka_unit_test(test_http_parse_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
