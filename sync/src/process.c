/* process.c - waitable handles on child processes, through pidfds (Linux >= 5.3 for
 * pidfd_open, 5.4 for waitid(P_PIDFD)).
 *
 * The service thread watches the pidfd; when the child exits it reaps it with
 * waitid(P_PIDFD), publishes the exit code and signals the handle. Closing the last
 * handle of a running child does not kill it: its pidfd is handed to a reap-only watch
 * so it never lingers as a zombie.
 */
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handle.h"

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Reaps the child behind pidfd; returns false while it still runs. */
static bool reap(int pidfd, unsigned *code)
{
	siginfo_t si;
	si.si_pid = 0;
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) != 0) {
		*code = 255; /* someone else reaped it (ECHILD): the exit status is lost */
		return true;
	}
	if (si.si_pid == 0)
		return false;
	*code = si.si_code == CLD_EXITED ? (unsigned)si.si_status : 128u + (unsigned)si.si_status;
	return true;
}

static bool process_exited(void *ctx)
{
	struct weft_handle *h = ctx;
	unsigned code;
	if (!reap(h->u.proc.pidfd, &code))
		return true;
	weft__obj_lock(h);
	weft__store_rlx(&h->u.proc.exit_code, code);
	/* release: pairs with the acquire in weft_process_exit_code. */
	weft__store_rel(&h->u.proc.done, 1);
	weft__obj_unlock_wake(h, weft__satisfy(h));
	return false;
}

static bool reap_only(void *ctx)
{
	int pidfd = (int)(intptr_t)ctx;
	unsigned code;
	if (!reap(pidfd, &code))
		return true;
	close(pidfd);
	return false;
}

weft_handle *weft_process_spawn(const char *file, char *const argv[], char *const envp[], uint32_t *pid_out)
{
	if (!file || !argv)
		return NULL;
	struct weft_handle *h = weft__handle_alloc(WEFT__K_PROCESS);
	if (!h)
		return NULL;
	pid_t pid;
	if (posix_spawnp(&pid, file, NULL, NULL, argv, envp ? envp : environ) != 0) {
		free(h);
		return NULL;
	}
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		/* Cannot watch it: do not leave an orphan we claim nothing about. */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		free(h);
		return NULL;
	}
	h->u.proc.pid = pid;
	h->u.proc.pidfd = pidfd;
	h->u.proc.exit_code = WEFT_STILL_ACTIVE;
	int64_t id = weft__service_watch(pidfd, process_exited, h);
	if (id < 0) {
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		waitpid(pid, NULL, 0);
		close(pidfd);
		free(h);
		return NULL;
	}
	h->u.proc.watch = (uint64_t)id;
	if (pid_out)
		*pid_out = (uint32_t)pid;
	return h;
}

void weft__process_destroy(struct weft_handle *h)
{
	/* After unwatch the service thread no longer touches h (a no-op if it already
	 * reaped the child and dropped the watch). */
	weft__service_unwatch(h->u.proc.watch, h->u.proc.pidfd);
	if (weft__load_acq(&h->u.proc.done) || weft__service_watch(h->u.proc.pidfd, reap_only,
								     (void *)(intptr_t)h->u.proc.pidfd) < 0)
		close(h->u.proc.pidfd);
}

int weft_process_exit_code(weft_handle *h, unsigned *code)
{
	if (!weft__handle_ok(h, WEFT__K_PROCESS) || !code)
		return -EINVAL;
	/* acquire: pairs with the release store of done in process_exited. */
	*code = weft__load_acq(&h->u.proc.done) ? weft__load_rlx(&h->u.proc.exit_code) : WEFT_STILL_ACTIVE;
	return 0;
}

int weft_process_kill(weft_handle *h, int sig)
{
	if (!weft__handle_ok(h, WEFT__K_PROCESS))
		return -EINVAL;
	if (syscall(SYS_pidfd_send_signal, h->u.proc.pidfd, sig, NULL, 0) != 0)
		return -errno;
	return 0;
}

uint32_t weft_process_id(weft_handle *h)
{
	return weft__handle_ok(h, WEFT__K_PROCESS) ? (uint32_t)h->u.proc.pid : 0;
}
