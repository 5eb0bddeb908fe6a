/* weft-server - servers on the weft completion port. See --help.
 *
 * The main thread only parses options, starts the server and waits for SIGINT/SIGTERM
 * (blocked in every thread, taken with sigwait); the port threads do all the work. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/net.h>

#include "http_server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-server --mode echo|udp-echo|http [options]\n"
		"\n"
		"Serves TCP on the weft completion port: a listener keeps --accepts accepts posted,\n"
		"--threads port threads run every completion, and each connection has one receive\n"
		"and a bounded send queue in flight.\n"
		"\n"
		"modes:\n"
		"  echo                 TCP echo: every byte received is sent back, in order.\n"
		"  udp-echo             UDP echo: every datagram is sent back to its sender\n"
		"                       (--accepts, --max-conns, --send-queue and --shutdown-ms\n"
		"                       do not apply; --buf-size is the largest datagram).\n"
		"  http                 HTTP/1.1 file server of --root DIR: GET and HEAD of regular\n"
		"                       files beneath it (Content-Length, Last-Modified, ETag,\n"
		"                       Content-Type, Range: one range or up to 16 as multipart/\n"
		"                       byteranges, If-Match, If-None-Match, If-Modified-Since,\n"
		"                       If-Unmodified-Since, If-Range, keep-alive, pipelining), PUT\n"
		"                       uploads with Content-Length or chunked bodies (written to a\n"
		"                       temporary file, renamed in only when complete: 201 new, 204\n"
		"                       replaced; 411 without a length, 413 over --max-upload, 412\n"
		"                       when a precondition fails, e.g. If-None-Match: * on an\n"
		"                       existing file), and GET /stats (JSON counters). Files are opened\n"
		"                       beneath the root (openat2 RESOLVE_BENEATH): '..', encoded dots\n"
		"                       and symlinks out of it give 403/404. Malformed requests get\n"
		"                       400 and are closed; heads over 8 KiB 431; other methods 405/501.\n"
		"\n"
		"options:\n"
		"  --mode MODE          what to serve (required): echo, udp-echo or http\n"
		"  --root DIR           http: the directory served (required for http)\n"
		"  --max-upload BYTES   http: largest PUT body (default 1073741824)\n"
		"  --header-timeout-ms MS  http: a connection idle this long is closed, and a request\n"
		"                       head still incomplete after MS gets 408 and is closed, so a\n"
		"                       slow client holds no thread and no slot for long (default 10000)\n"
		"  --access-log         http: one line per request on stderr\n"
		"  --no-sendfile        http: send file bodies by read + send instead of sendfile\n"
		"  --file-cache-ms MS   http: each port thread keeps small files (contents and response\n"
		"                       head) in memory and answers them with one send; an entry is\n"
		"                       checked against the file (inode, size, mtime, ctime) when MS\n"
		"                       have passed since its last check, so a file changed on disk is\n"
		"                       served at most MS late; PUT through the server is seen at once.\n"
		"                       0 turns the cache off (default 1000)\n"
		"  --file-cache-max BYTES  http: largest file cached (default 32768)\n"
		"  --listen ADDR:PORT   IPv4 address and port (default 127.0.0.1:8080; port 0: any)\n"
		"  --threads N          port threads (default: number of CPUs); with 1, the thread is\n"
		"                       the port's own reaper (solo mode: one busy thread, not two;\n"
		"                       WEFT_PORT_SOLO=0 in the environment turns it off)\n"
		"  --backend B          uring or epoll (default: uring where the kernel allows it)\n"
		"  --accepts N          accepts kept posted (default 16)\n"
		"  --max-conns N        connections at once; more are closed at accept (default 10000)\n"
		"  --buf-size BYTES     receive size and send chunk (default 16384)\n"
		"  --send-queue BYTES   bytes queued per connection before its reading pauses at half\n"
		"                       (default 262144)\n"
		"  --shutdown-ms MS     on SIGINT/SIGTERM: stop accepting, let connections finish for\n"
		"                       MS milliseconds, then close the rest (default 5000)\n"
		"  --help               this text\n"
		"\n"
		"Logs go to stderr: the address once listening, then one line per event of note;\n"
		"on shutdown a line of counters. Exit status 0 after a clean shutdown, 1 when the\n"
		"server cannot start, 2 on bad usage.\n");
}

static void echo_on_data(weft_conn *c, const void *data, size_t len)
{
	int rc = weft_conn_send(c, data, len);
	if (rc < 0 && rc != -ENOTCONN) {
		fprintf(stderr, "weft-server: echo send failed (%s), closing the connection\n", strerror(-rc));
		weft_conn_close(c);
	}
}

static const weft_server_callbacks echo_callbacks = { .on_data = echo_on_data };

static void udp_echo_on_datagram(weft_udp *u, const void *data, size_t len, const struct sockaddr *from,
				 socklen_t fromlen)
{
	/* -ENOBUFS (every send context busy) drops the datagram, as UDP may; it is counted */
	(void)weft_udp_sendto(u, data, len, from, fromlen);
}

/* Serves UDP echo until SIGINT/SIGTERM (already blocked); returns the exit status. */
static int run_udp_echo(const weft_server_config *cfg, const sigset_t *stop)
{
	weft_udp_config ucfg = { .bind = cfg->listen, .threads = cfg->threads, .max_datagram = cfg->buf_size,
		.on_datagram = udp_echo_on_datagram };
	int err = 0;
	weft_udp *u = weft_udp_create(&ucfg, &err);
	if (!u) {
		fprintf(stderr, "weft-server: cannot bind %s: %s\n", cfg->listen, strerror(-err));
		return 1;
	}
	fprintf(stderr, "weft-server: mode udp-echo bound to %.*s:%d, backend %s\n",
		(int)(strrchr(cfg->listen, ':') - cfg->listen), cfg->listen, weft_udp_port(u), weft_udp_backend(u));
	int sig = 0;
	sigwait(stop, &sig);
	weft_udp_stats st;
	weft_udp_get_stats(u, &st);
	weft_udp_destroy(u);
	fprintf(stderr,
		"weft-server: %s, stopped; datagrams %llu in, %llu out, %llu dropped; bytes %llu in, "
		"%llu out; errors %llu\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)st.datagrams_in,
		(unsigned long long)st.datagrams_out, (unsigned long long)st.dropped,
		(unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out, (unsigned long long)st.errors);
	return 0;
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

int main(int argc, char **argv)
{
	enum { O_MODE = 1, O_LISTEN, O_THREADS, O_BACKEND, O_ACCEPTS, O_MAXCONNS, O_BUF, O_SQ, O_SHUT, O_HELP,
	       O_ROOT, O_MAXUP, O_HTO, O_ALOG, O_NOSF, O_FCMS, O_FCMAX };
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, O_MODE },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "accepts", required_argument, NULL, O_ACCEPTS },
		{ "max-conns", required_argument, NULL, O_MAXCONNS },
		{ "buf-size", required_argument, NULL, O_BUF },
		{ "send-queue", required_argument, NULL, O_SQ },
		{ "shutdown-ms", required_argument, NULL, O_SHUT },
		{ "help", no_argument, NULL, O_HELP },
		{ "root", required_argument, NULL, O_ROOT },
		{ "max-upload", required_argument, NULL, O_MAXUP },
		{ "header-timeout-ms", required_argument, NULL, O_HTO },
		{ "access-log", no_argument, NULL, O_ALOG },
		{ "no-sendfile", no_argument, NULL, O_NOSF },
		{ "file-cache-ms", required_argument, NULL, O_FCMS },
		{ "file-cache-max", required_argument, NULL, O_FCMAX },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = NULL, *backend = NULL, *root = NULL;
	unsigned long long max_upload = 0;
	uint32_t header_timeout_ms = 0;
	bool access_log = false, no_sendfile = false;
	uint32_t fc_ms = WEFT_HTTP_FILE_CACHE_MS_DEFAULT, fc_max = 0;
	char *end = NULL;
	uint32_t shutdown_ms = 5000;
	weft_server_config cfg = { .listen = "127.0.0.1:8080" };
	int o;
	bool ok = true;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_MODE: mode = optarg; break;
		case O_LISTEN: cfg.listen = optarg; break;
		case O_BACKEND: backend = optarg; break;
		case O_THREADS: ok &= parse_u32(optarg, &cfg.threads); break;
		case O_ACCEPTS: ok &= parse_u32(optarg, &cfg.accepts); break;
		case O_MAXCONNS: ok &= parse_u32(optarg, &cfg.max_conns); break;
		case O_BUF: ok &= parse_u32(optarg, &cfg.buf_size); break;
		case O_SQ: ok &= parse_u32(optarg, &cfg.send_queue_max); break;
		case O_SHUT: ok &= parse_u32(optarg, &shutdown_ms); break;
		case O_HELP: usage(stdout); return 0;
		case O_ROOT: root = optarg; break;
		case O_MAXUP:
			errno = 0;
			max_upload = strtoull(optarg, &end, 10);
			ok &= *optarg != '\0' && *optarg != '-' && *end == '\0' && errno == 0 && max_upload > 0;
			break;
		case O_HTO: ok &= parse_u32(optarg, &header_timeout_ms); break;
		case O_ALOG: access_log = true; break;
		case O_NOSF: no_sendfile = true; break;
		case O_FCMS: ok &= parse_u32(optarg, &fc_ms); break;
		case O_FCMAX: ok &= parse_u32(optarg, &fc_max) && fc_max > 0; break;
		default: ok = false; break;
		}
	}
	if (!ok || optind != argc || !mode) {
		usage(stderr);
		return 2;
	}
	if (strcmp(mode, "echo") != 0 && strcmp(mode, "udp-echo") != 0 && strcmp(mode, "http") != 0) {
		fprintf(stderr, "weft-server: mode '%s' is not available in this build (echo, udp-echo, http)\n",
			mode);
		return 2;
	}
	bool http = strcmp(mode, "http") == 0;
	if (http != (root != NULL)) {
		fprintf(stderr, "weft-server: --root DIR is required with --mode http, and only there\n");
		return 2;
	}
	if (backend) {
		if (strcmp(backend, "uring") != 0 && strcmp(backend, "epoll") != 0) {
			fprintf(stderr, "weft-server: --backend must be uring or epoll\n");
			return 2;
		}
		/* The port reads WEFT_BACKEND when it is created. */
		setenv("WEFT_BACKEND", backend, 1);
	}
	cfg.cb = &echo_callbacks;

	/* Block the stop signals before any thread starts, so every port thread inherits
	 * the mask and only sigwait below takes them. A peer that resets must not kill us. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(mode, "udp-echo") == 0)
		return run_udp_echo(&cfg, &stop);

	int err = 0;
	weft__http_server *hs = NULL;
	weft_server *s;
	if (http) {
		struct weft__http_server_config hc = { .net = cfg, .root = root, .max_upload = max_upload,
			.header_timeout_ms = header_timeout_ms, .access_log = access_log,
			.no_sendfile = no_sendfile, .no_file_cache = fc_ms == 0, .file_cache_ms = fc_ms,
			.file_cache_max = fc_max };
		hs = weft__http_server_create(&hc, &err);
		s = hs ? weft__http_server_net(hs) : NULL;
	} else {
		s = weft_server_create(&cfg, &err);
	}
	if (!s) {
		fprintf(stderr, "weft-server: cannot serve %s on %s: %s\n", http ? root : mode, cfg.listen,
			strerror(-err));
		return 1;
	}
	fprintf(stderr, "weft-server: mode %s listening on %.*s:%d, backend %s\n", mode,
		(int)(strrchr(cfg.listen, ':') - cfg.listen), cfg.listen, weft_server_port(s),
		weft_server_backend(s));
	int sig = 0;
	sigwait(&stop, &sig);
	fprintf(stderr, "weft-server: %s, stopping (up to %u ms for open connections)\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_ms);
	int forced = hs ? weft__http_server_stop(hs, shutdown_ms) : weft_server_stop(s, shutdown_ms);
	weft_server_stats st;
	weft_server_get_stats(s, &st);
	fprintf(stderr,
		"weft-server: stopped; connections %llu accepted, %llu refused, %d closed at the "
		"deadline; bytes %llu in, %llu out; errors %llu\n",
		(unsigned long long)st.accepted, (unsigned long long)st.refused, forced,
		(unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
		(unsigned long long)st.errors);
	if (hs)
		weft__http_server_destroy(hs);
	else
		weft_server_destroy(s);
	return 0;
}
