/* weft/threadpool.h - a Windows-style thread pool on the completion port.
 *
 * Workers are threads named "<name>-N" that loop on the pool's completion port
 * (weft_port_get). Callbacks (plain submits, work objects, timers, waits) wait in the
 * pool's own lock-free queue, which workers drain before they go back to the port; a
 * submit posts one wake-up packet to the port only when no worker is awake and looking
 * (as the Windows worker factory releases workers rather than queueing a packet per
 * item). I/O completions arrive as packets on the port. A worker running callbacks is a
 * released thread of the port, so the port's concurrency limit and its blocking hook
 * decide how many callbacks really run at once, as the kernel does for a Windows pool.
 *
 * No deadlock, no loss:
 *  - a worker that blocks inside a callback in any weft primitive is noticed (the blocking
 *    hook); when every worker is blocked, or fewer than `concurrency` can run, and work is
 *    queued, the pool injects a thread, up to max_threads. When it cannot, it counts a
 *    starvation episode (weft_pool_stats.starvations) and, if WEFT_POOL_LOG is set in the
 *    environment, writes one line to stderr, instead of hanging silently;
 *  - weft_work_wait (and the timer/wait variants) called from a pool thread runs the awaited
 *    callbacks that have not started yet inline (helps instead of blocking a worker);
 *  - idle threads above min_threads retire after an idle timeout (default 10 s);
 *  - weft_pool_destroy runs every submitted callback exactly once, then joins every thread;
 *    weft_pool_submit on a pool being destroyed returns -ESHUTDOWN.
 *
 * Include <weft/pool.h> (which includes this header) or this header directly.
 */
#ifndef WEFT_THREADPOOL_H
#define WEFT_THREADPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include <weft/pool.h>
#include <weft/sync.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pool weft_pool;
typedef struct weft_work weft_work;
typedef struct weft_pool_timer weft_pool_timer;
typedef struct weft_pool_waiter weft_pool_waiter;
typedef struct weft_pool_io weft_pool_io;
typedef struct weft_cleanup_group weft_cleanup_group;
typedef struct weft_handle weft_handle;

/* ---------------------------------------------------------------------------------------
 * The pool.
 * ------------------------------------------------------------------------------------- */

/* min_threads: threads kept alive even when idle (default 1; created at once).
 * max_threads: the most threads the pool ever runs, injected ones included
 *              (default max(64, 4 * concurrency)); raised to min_threads if below it.
 * concurrency: the port's limit on callbacks running (not blocked) at once
 *              (0 or default: the number of CPUs).
 * name:        thread name prefix, at most 10 bytes are used (default "weft-pool"),
 *              threads are named "<name>-N", N counting from 0 for the pool's life. */
typedef struct weft_pool_config {
	uint32_t min_threads, max_threads, concurrency;
	const char *name;
} weft_pool_config;

/* Creates a pool; cfg NULL gives the defaults above (fields left 0 too). Returns NULL on
 * failure (out of memory, no threads, no port). Never blocks for long. */
WEFT_API weft_pool *weft_pool_create(const weft_pool_config *cfg);

/* Queues fn(arg) to run once on a pool thread (TrySubmitThreadpoolCallback). Lock-free on
 * the pool's side and allocation-free once warm. Returns 0, -EINVAL (NULL pool or fn),
 * -ESHUTDOWN once weft_pool_destroy has begun, or -ENOMEM. Thread-safe, never blocks. */
WEFT_API int weft_pool_submit(weft_pool *p, void (*fn)(void *arg), void *arg);

/* Runs every callback submitted before (and by callbacks during) the call exactly once,
 * stops the pool's timers and waits, then joins every thread and frees the pool. Work,
 * timer, wait and I/O objects must be closed first (or by their cleanup group); I/O
 * objects also waited for, since completions still in flight are not waited for here.
 * Must not be called from a pool thread (that aborts with a message). Blocks until done. */
WEFT_API void weft_pool_destroy(weft_pool *p);

/* Change the limits at run time (SetThreadpoolThreadMinimum/Maximum). set_min creates
 * threads at once if needed and returns 0 or -ENOMEM/-EINVAL; set_max lowers min_threads
 * too when needed. The idle timeout (ms) is how long an idle thread above min_threads
 * waits for work before it retires (default 10000). */
WEFT_API int weft_pool_set_min_threads(weft_pool *p, uint32_t n);
WEFT_API void weft_pool_set_max_threads(weft_pool *p, uint32_t n);
WEFT_API void weft_pool_set_idle_timeout(weft_pool *p, uint32_t ms);

/* A snapshot of the pool (counters are read without a lock and may be a moment apart).
 * threads: live worker threads; idle: waiting on the port; blocked: inside a callback and
 * blocked in a weft primitive (or marked may-run-long); queued: packets posted and not yet
 * taken; starvations: episodes where work was queued and nothing could run - every worker
 * blocked at max_threads, or no callback finished for a second while no worker was idle
 * (callbacks blocked where weft cannot see); injected / retired: threads added past min_threads for blocked workers,
 * threads that retired idle; completed: callbacks that finished. */
typedef struct weft_pool_stats {
	uint32_t threads, idle, blocked, max_threads, min_threads, concurrency;
	uint64_t queued, starvations, injected, retired, completed;
} weft_pool_stats;
WEFT_API void weft_pool_get_stats(weft_pool *p, weft_pool_stats *out);

/* Called from inside a callback: tells the pool this callback will run for a long time or
 * block outside weft (CallbackMayRunLong). The pool stops counting it against the port's
 * concurrency and adds a thread if none is idle. Returns true if another thread is
 * available (idle or injected), false if the pool is at max_threads (the starvation
 * counter goes up) or the caller is not running a pool callback. */
WEFT_API bool weft_callback_may_run_long(void);

/* True on a pool worker thread; *pool (if non-NULL) receives its pool. */
WEFT_API bool weft_pool_is_worker(weft_pool **pool);

/* ---------------------------------------------------------------------------------------
 * Work objects (CreateThreadpoolWork).
 * ------------------------------------------------------------------------------------- */

/* Creates a work object; each weft_work_submit queues one more call of fn(arg). NULL on
 * -ENOMEM or bad arguments. */
WEFT_API weft_work *weft_work_create(weft_pool *p, void (*fn)(void *arg), void *arg);
/* Queues one call. Thread-safe, never blocks, allocation-free once warm. Submitting while
 * the pool is being destroyed is accepted until the last callback has run; after that it
 * is a bug and aborts with a message. */
WEFT_API void weft_work_submit(weft_work *w);
/* Waits until every call submitted before has finished. cancel_pending: calls not yet
 * started never run (each started one finishes). From a pool thread, calls not yet started
 * are run inline by the waiter instead (when not cancelled). Must not be called from the
 * work's own callback. */
WEFT_API void weft_work_wait(weft_work *w, bool cancel_pending);
/* Releases the object; calls already queued still run (wait first to be sure they are
 * done). The memory is freed when the last queued call has finished. */
WEFT_API void weft_work_close(weft_work *w);

/* ---------------------------------------------------------------------------------------
 * Timers on the pool (CreateThreadpoolTimer). One timer thread per pool and one heap
 * keyed by the latest allowed firing time serve every timer of the pool.
 * ------------------------------------------------------------------------------------- */
WEFT_API weft_pool_timer *weft_pool_timer_create(weft_pool *p, void (*fn)(void *arg), void *arg);
/* Arms the timer: first call after due_ms, then every period_ms (0: one-shot), at most
 * window_ms late so the pool can fire nearby timers together. Periodic timers are
 * scheduled from their previous due time (no drift); periods missed while the process was
 * stalled are skipped, not replayed. A call still queued from the previous arming is not
 * run twice: while one call is queued, further expirations merge into it.
 * due_ms == WEFT_INFINITE disarms (SetThreadpoolTimer(NULL)). Thread-safe. */
WEFT_API void weft_pool_timer_set(weft_pool_timer *t, uint32_t due_ms, uint32_t period_ms, uint32_t window_ms);
/* True if armed (IsThreadpoolTimerSet). */
WEFT_API bool weft_pool_timer_is_set(weft_pool_timer *t);
/* Waits for the timer's calls as weft_work_wait does; cancel_pending also disarms. */
WEFT_API void weft_pool_timer_wait(weft_pool_timer *t, bool cancel_pending);
/* Disarms and releases; a call already queued still runs. */
WEFT_API void weft_pool_timer_close(weft_pool_timer *t);
/* How many times the timer fired (callbacks queued); for tests and diagnostics. */
WEFT_API uint64_t weft_pool_timer_fired(weft_pool_timer *t);

/* ---------------------------------------------------------------------------------------
 * Wait objects (CreateThreadpoolWait): a callback when a weft_handle (event, semaphore,
 * mutex, waitable timer, thread, process) is signaled or a timeout passes. One wait
 * thread per pool waits on every armed handle at once (weft_wait_many, no 64 limit).
 * ------------------------------------------------------------------------------------- */
/* fn(arg, result): result is WEFT_WAIT_OBJECT_0 (the object was signaled and acquired, as
 * weft_wait would: an auto-reset event is reset, a semaphore count taken, a mutex owned
 * by the wait thread - avoid mutexes), WEFT_WAIT_ABANDONED_0 or WEFT_WAIT_TIMEOUT. */
WEFT_API weft_pool_waiter *weft_pool_waiter_create(weft_pool *p, void (*fn)(void *arg, int result), void *arg);
/* Arms the waiter once (SetThreadpoolWait): h is duplicated, so the caller may close its
 * handle; timeout_ms WEFT_INFINITE waits forever, 0 checks once. h NULL disarms. Re-arming
 * replaces the previous arming. After one call is queued the waiter is disarmed; re-arm
 * it (even from its callback) to wait again. Returns 0, -EINVAL, -ESHUTDOWN (pool being
 * destroyed) or -ENOMEM. */
WEFT_API int weft_pool_waiter_set(weft_pool_waiter *wt, weft_handle *h, uint32_t timeout_ms);
/* Waits for the waiter's calls as weft_work_wait does; cancel_pending also disarms. */
WEFT_API void weft_pool_waiter_wait(weft_pool_waiter *wt, bool cancel_pending);
/* Disarms and releases; a call already queued still runs. */
WEFT_API void weft_pool_waiter_close(weft_pool_waiter *wt);

/* ---------------------------------------------------------------------------------------
 * I/O objects (CreateThreadpoolIo): completions of asynchronous operations on one fd,
 * dispatched to a callback on a pool thread.
 * ------------------------------------------------------------------------------------- */
/* fn(arg, ov, status, bytes): status is ov->status (0 or a negative errno, -ECANCELED for
 * a cancelled operation), bytes the byte count; recover the per-I/O context with
 * weft_container_of(ov, ...). */
typedef void (*weft_pool_io_fn)(void *arg, weft_overlapped *ov, int32_t status, uint32_t bytes);
/* Associates fd with the pool's port (switching it to non-blocking mode). NULL on bad
 * arguments, an fd already associated, or out of memory. */
WEFT_API weft_pool_io *weft_pool_io_create(weft_pool *p, int fd, weft_pool_io_fn fn, void *arg);
/* The pool's port, for issuing operations directly with weft_port_* (each announced with
 * weft_pool_io_start first) on fds of I/O objects. Never post, get or associate on it:
 * every packet's key must be the pool's own. */
WEFT_API weft_port *weft_pool_port(weft_pool *p);
WEFT_API int weft_pool_io_fd(weft_pool_io *io);
/* StartThreadpoolIo / CancelThreadpoolIo: announce an operation before issuing it on the
 * port; withdraw the announcement if issuing failed (no completion will come). */
WEFT_API void weft_pool_io_start(weft_pool_io *io);
WEFT_API void weft_pool_io_abandon(weft_pool_io *io);
/* Start + weft_port_<op> on the object's fd + abandon on failure; return as weft_port_<op>. */
WEFT_API int weft_pool_io_read(weft_pool_io *io, void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_pool_io_write(weft_pool_io *io, const void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_pool_io_recv(weft_pool_io *io, void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_pool_io_send(weft_pool_io *io, const void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_pool_io_accept(weft_pool_io *io, int *accepted, void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_pool_io_connect(weft_pool_io *io, const struct sockaddr *addr, socklen_t addrlen,
				  weft_overlapped *ov);
/* Waits until every announced operation's callback returned (WaitForThreadpoolIoCallbacks);
 * cancel_pending first cancels the operations still pending on the fd (they complete with
 * -ECANCELED and their callbacks run). */
WEFT_API void weft_pool_io_wait(weft_pool_io *io, bool cancel_pending);
/* Disassociates the fd (operations still pending complete with -ECANCELED; their
 * callbacks still run, possibly after close returns) and releases the object. The fd stays
 * open: the caller closes it. */
WEFT_API void weft_pool_io_close(weft_pool_io *io);

/* ---------------------------------------------------------------------------------------
 * Cleanup groups (CreateThreadpoolCleanupGroup). An object added to a group is closed by
 * weft_cleanup_group_close together with the rest of the group.
 * ------------------------------------------------------------------------------------- */
WEFT_API weft_cleanup_group *weft_cleanup_group_create(weft_pool *p);
WEFT_API int weft_cleanup_group_add_work(weft_cleanup_group *g, weft_work *w);
WEFT_API int weft_cleanup_group_add_timer(weft_cleanup_group *g, weft_pool_timer *t);
WEFT_API int weft_cleanup_group_add_waiter(weft_cleanup_group *g, weft_pool_waiter *wt);
WEFT_API int weft_cleanup_group_add_io(weft_cleanup_group *g, weft_pool_io *io);
/* Waits for (or, with cancel_pending, cancels) every member's calls, then closes every
 * member (CloseThreadpoolCleanupGroupMembers). The group stays usable. */
WEFT_API void weft_cleanup_group_close_members(weft_cleanup_group *g, bool cancel_pending);
/* Closes the members as above, then frees the group. */
WEFT_API void weft_cleanup_group_close(weft_cleanup_group *g, bool cancel_pending);

#ifdef __cplusplus
}
#endif
#endif
