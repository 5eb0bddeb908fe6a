/* echo_thread.c - the thread-per-connection model: a blocking accept loop and one
 * detached thread per client doing blocking recv/send. Benchmark subject only. */
#define _GNU_SOURCE
#include <pthread.h>

#include "echo_common.h"

static void *client_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct echo_opts o = echo_parse_args(argc, argv, "thread");
	int lfd = echo_listen(&o, false);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Small stacks: thousands of clients means thousands of threads. */
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
				continue;
			echo_die("accept");
		}
		echo_tune(fd);
		pthread_t t;
		if (pthread_create(&t, &attr, client_main, (void *)(intptr_t)fd) != 0) {
			fprintf(stderr, "echo_thread: pthread_create failed, dropping a client\n");
			close(fd);
		}
	}
}
