/* weft/waitable.h - kernel-style waitable objects, waits, threads and APCs.
 *
 * Included by <weft/sync.h>; include that instead.
 *
 * Every waitable object (event, semaphore, mutex, waitable timer, thread, process) is one
 * opaque, reference-counted weft_handle. A create/spawn function returns the first
 * reference; weft_handle_dup adds one and weft_handle_close drops one; the object dies
 * with its last reference. A wait holds its own reference to every object it waits on,
 * so another thread may close its handle meanwhile. A dead object's memory is kept,
 * tagged dead, until about a thousand more handles have died, and every call checks the
 * tag on entry: a wait on or a second close of a recently closed handle gets -EINVAL (or
 * is a no-op for void functions). After that the memory may hold a new handle, so, as
 * with a reused Windows handle value, use after close is a bug weft cannot always see.
 *
 * Timeouts are relative milliseconds on CLOCK_MONOTONIC; WEFT_INFINITE waits forever and
 * 0 polls. Every blocking path reports to the blocking hook (see <weft/sync.h>).
 */
#ifndef WEFT_WAITABLE_H
#define WEFT_WAITABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/interlocked.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_handle weft_handle;

#if defined(__cplusplus)
#define WEFT__NORETURN [[noreturn]]
#else
#define WEFT__NORETURN _Noreturn
#endif

/* ---------------------------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------------------------- */

/* Adds a reference to h and returns h (DuplicateHandle). Never blocks, thread-safe.
 * Errors: returns NULL when h is NULL or not a live handle. */
WEFT_API weft_handle *weft_handle_dup(weft_handle *h);
/* Drops one reference; the object is freed with its last one. Never blocks. Closing a
 * thread handle never affects the thread; closing a process handle never kills the
 * process. Errors: none reported; NULL or a detectably dead handle is ignored. */
WEFT_API void weft_handle_close(weft_handle *h);

/* ---------------------------------------------------------------------------------------
 * Events (CreateEvent / SetEvent / ResetEvent / PulseEvent)
 * ------------------------------------------------------------------------------------- */

/* Creates an event. A manual-reset event stays set until reset and releases every
 * waiter; an auto-reset event releases exactly one waiter and resets itself.
 * Errors: returns NULL when out of memory. */
WEFT_API weft_handle *weft_event_create(bool manual_reset, bool initially_set);
/* Sets the event, releasing waiters as above. Never blocks for long (object lock only).
 * Errors: none reported; a NULL or non-event handle is ignored (see weft_event_set2). */
WEFT_API void weft_event_set(weft_handle *h);
/* Resets the event to non-signaled. Errors: as weft_event_set. */
WEFT_API void weft_event_reset(weft_handle *h);
/* Sets the event, releases the waiters already waiting (manual: all wait-any waiters;
 * auto: at most one), then resets it - atomically, so unlike Windows' PulseEvent no
 * current waiter is missed. Wait-all waiters are not released by a pulse (the object is
 * reset before they can re-check). Errors: as weft_event_set. */
WEFT_API void weft_event_pulse(weft_handle *h);
/* The int-returning forms of set/reset: 0, or -EINVAL when h is NULL or not an event. */
WEFT_API int weft_event_set2(weft_handle *h);
WEFT_API int weft_event_reset2(weft_handle *h);

/* ---------------------------------------------------------------------------------------
 * Semaphores (CreateSemaphore / ReleaseSemaphore)
 * ------------------------------------------------------------------------------------- */

/* Creates a semaphore with count `initial` and limit `maximum`.
 * Errors: returns NULL when initial < 0, maximum <= 0, initial > maximum, or out of
 * memory. */
WEFT_API weft_handle *weft_semaphore_create(int32_t initial, int32_t maximum);
/* Adds count to the semaphore, releasing up to count waiters; stores the count before
 * the release into *previous (if non-NULL). Never blocks for long.
 * Errors: -EINVAL (h NULL or not a semaphore, count <= 0); -EOVERFLOW when the count
 * would exceed the maximum (nothing is added, like ERROR_TOO_MANY_POSTS). */
WEFT_API int weft_semaphore_release(weft_handle *h, int32_t count, int32_t *previous);

/* ---------------------------------------------------------------------------------------
 * Mutexes (CreateMutex / ReleaseMutex): recursive, owned by a thread.
 *
 * A wait acquires it (or re-acquires it, counting, when the caller already owns it).
 * If the owning thread ends while owning it, the mutex is abandoned: the next waiter gets
 * it together with WEFT_WAIT_ABANDONED_0 + i instead of WEFT_WAIT_OBJECT_0 + i, and must
 * assume the data it guards is inconsistent.
 * ------------------------------------------------------------------------------------- */

/* Creates a mutex, owned by the caller when initially_owned.
 * Errors: returns NULL when out of memory. */
WEFT_API weft_handle *weft_mutex_create(bool initially_owned);
/* Releases one level of ownership; the last one hands the mutex to the next waiter.
 * Errors: -EINVAL (h NULL or not a mutex); -EPERM when the caller does not own it. */
WEFT_API int weft_mutex_release(weft_handle *h);

/* ---------------------------------------------------------------------------------------
 * Waitable timers (CreateWaitableTimer / SetWaitableTimer / CancelWaitableTimer)
 * ------------------------------------------------------------------------------------- */

/* Creates an inactive, non-signaled timer. A manual-reset timer stays signaled until set
 * again; an auto-reset (synchronization) timer releases one waiter per expiry. Timers
 * and process handles are driven by one weft service thread, which a fork()ed child does
 * not have: there they never fire (exec, or create them in the parent).
 * Errors: returns NULL when out of memory or out of file descriptors (one timerfd each). */
WEFT_API weft_handle *weft_timer_create(bool manual_reset);
/* Arms the timer: it becomes non-signaled now, signaled after due_ms, then again every
 * period_ms (0: one-shot). If apc is non-NULL, each expiry also queues apc(apc_arg) to
 * the calling thread (the completion routine, run in its alertable waits).
 * Errors: -EINVAL (h NULL or not a timer); -ENOMEM; other negative errnos from
 * timerfd_settime. */
WEFT_API int weft_timer_set(weft_handle *h, uint64_t due_ms, uint32_t period_ms, void (*apc)(uintptr_t),
			    uintptr_t apc_arg);
/* Disarms the timer without changing its signal state.
 * Errors: -EINVAL (h NULL or not a timer). */
WEFT_API int weft_timer_cancel(weft_handle *h);

/* ---------------------------------------------------------------------------------------
 * Waits (WaitForSingleObject(Ex) / WaitForMultipleObjects(Ex))
 * ------------------------------------------------------------------------------------- */

/* Wait results. Windows caps a wait at 64 objects, so its codes (0x80, 0xC0, 0x102) can sit
 * just above the indexes; weft has no such cap, so its codes sit far above any index.
 * A failed wait returns a negative errno (-EINVAL for bad arguments); WEFT_WAIT_FAILED is -1. */
enum {
	WEFT_WAIT_OBJECT_0 = 0,
	WEFT_WAIT_ABANDONED_0 = 0x40000000,
	WEFT_WAIT_IO_COMPLETION = 0x7ffffffe,
	WEFT_WAIT_TIMEOUT = 0x7fffffff,
	WEFT_WAIT_FAILED = -1
};
#define WEFT_WAIT_MAX_OBJECTS 0x3fffffff /* n above this is -EINVAL */

/* Waits until h is signaled and acquires it (auto-reset, count, ownership), or the
 * timeout passes. Blocks. Returns WEFT_WAIT_OBJECT_0, WEFT_WAIT_ABANDONED_0 (abandoned
 * mutex, now owned by the caller) or WEFT_WAIT_TIMEOUT.
 * Errors: -EINVAL (h NULL or not a live handle); -ENOMEM (first weft call on a thread
 * weft did not create, when its per-thread block cannot be allocated). */
WEFT_API int weft_wait(weft_handle *h, uint32_t timeout_ms);
/* As weft_wait; when alertable, APCs queued to the caller run (FIFO, on this thread)
 * and the wait then returns WEFT_WAIT_IO_COMPLETION without acquiring h.
 * Errors: as weft_wait. */
WEFT_API int weft_wait_ex(weft_handle *h, uint32_t timeout_ms, bool alertable);
/* Waits on n objects. Wait-any returns WEFT_WAIT_OBJECT_0 + i (or ABANDONED_0 + i) for
 * the lowest index i that was signaled, acquiring only that object. Wait-all returns when
 * every object can be acquired at once and acquires all of them atomically: until then
 * none is touched (ABANDONED_0 + i names the lowest abandoned mutex). No 64-object limit.
 * Returns WEFT_WAIT_TIMEOUT on timeout. Errors: -EINVAL (hs NULL, n == 0, n >
 * WEFT_WAIT_MAX_OBJECTS, any handle NULL or dead, or the same object twice in a wait-all);
 * -ENOMEM (more than 64 objects need a heap wait-block array). */
WEFT_API int weft_wait_many(weft_handle *const *hs, size_t n, bool wait_all, uint32_t timeout_ms);
/* As weft_wait_many, alertable as weft_wait_ex (may return WEFT_WAIT_IO_COMPLETION).
 * Errors: as weft_wait_many. */
WEFT_API int weft_wait_many_ex(weft_handle *const *hs, size_t n, bool wait_all, uint32_t timeout_ms,
			       bool alertable);

/* ---------------------------------------------------------------------------------------
 * Threads: the _beginthreadex lifecycle.
 *
 * Every thread weft creates gets a per-thread block (last error, APC queue, exit code,
 * TLS slots with destructors) before its function runs; it is freed when the thread ends
 * by returning, by weft_thread_exit or by pthread_exit. A thread weft did not create
 * (main, a plain pthread) gets one lazily on its first use of a call that needs it and
 * frees it at its exit too (a pthread key destructor; for the thread calling exit(), a
 * library destructor). When the process ends, blocks of threads still running are left
 * to the kernel but stay reachable from a registry, so leak checkers stay quiet.
 *
 * The thread handle is waitable: it becomes signaled when the thread ends. Its creator
 * and the thread each hold a reference; the handle stays valid until both are gone.
 *
 * There is no weft_thread_terminate: killing a thread at an arbitrary instruction leaves
 * the locks it holds (including malloc's and stdio's) locked forever and its stack and
 * per-thread block unreclaimed; Linux offers no safe way (pthread_cancel runs only at
 * cancellation points and cannot stop a loop). End a thread by asking it: set an event
 * or queue an APC to its alertable wait. For the same reason there is no
 * weft_thread_suspend (SuspendThread can stop a thread inside malloc); only the creation
 * time suspension below, which is safe because the thread has not started yet.
 * ------------------------------------------------------------------------------------- */
typedef unsigned (*weft_thread_fn)(void *arg);
typedef struct weft_thread_attr {
	size_t stack_size; /* 0: 1 MiB, like Windows (catches unbounded recursion) */
	unsigned flags;    /* WEFT_THREAD_SUSPENDED */
	const char *name;  /* NULL: none; truncated to 15 bytes (the kernel's comm limit) */
} weft_thread_attr;
#define WEFT_THREAD_SUSPENDED 0x4u
#define WEFT_STILL_ACTIVE 259u
#define WEFT_THREAD_DEFAULT_STACK (1024u * 1024u)

/* Starts fn(arg) on a new thread and returns its handle; stores its id into *thread_id
 * if non-NULL. With WEFT_THREAD_SUSPENDED the thread exists but runs no instruction of
 * fn until weft_thread_resume brings its suspend count (1) to 0. Waits for the new
 * thread to publish its id. Errors: returns NULL when out of memory or threads
 * (pthread_create failed) or fn is NULL. */
WEFT_API weft_handle *weft_thread_create(weft_thread_fn fn, void *arg, const weft_thread_attr *attr,
					 uint32_t *thread_id);
/* Decrements the suspend count; at 0 the thread starts running fn. Returns the previous
 * count (0 when it was running already). Errors: -EINVAL (not a thread handle). */
WEFT_API int weft_thread_resume(weft_handle *thread);
/* Ends the calling thread with `code`, running TLS destructors and freeing its block,
 * abandoning its mutexes and signaling its handle. Never returns. */
WEFT_API WEFT__NORETURN void weft_thread_exit(unsigned code);
/* Stores the exit code into *code: WEFT_STILL_ACTIVE while the thread runs, afterwards
 * the value it returned or passed to weft_thread_exit (0 for a plain pthread).
 * Errors: -EINVAL (not a thread handle, or code NULL). */
WEFT_API int weft_thread_exit_code(weft_handle *thread, unsigned *code);
/* The kernel thread id (gettid) of the thread, as shown in /proc/self/task.
 * Errors: returns 0 for a NULL or non-thread handle. */
WEFT_API uint32_t weft_thread_id(weft_handle *thread);
/* A new reference to the calling thread's handle (not a pseudo-handle: it can be passed
 * to other threads; close it when done). Errors: returns NULL when out of memory. */
WEFT_API weft_handle *weft_thread_current(void);
/* Sets the CPU affinity of the thread to `mask` (bit i = CPU i, first 64 CPUs), storing
 * the previous mask into *previous if non-NULL (SetThreadAffinityMask).
 * Errors: -EINVAL (bad handle, mask 0 or no allowed CPU in mask); -ESRCH (the thread
 * ended); -EPERM (not permitted). */
WEFT_API int weft_thread_set_affinity(weft_handle *thread, uint64_t mask, uint64_t *previous);
/* Priority hints, mapped to the thread's nice value (Linux has per-thread nice values):
 * IDLE 19, LOWEST 10, BELOW_NORMAL 5, NORMAL 0, ABOVE_NORMAL -5, HIGHEST -10,
 * TIME_CRITICAL -20. Lowering is always allowed; raising above the current value needs
 * CAP_SYS_NICE or RLIMIT_NICE and otherwise fails with -EACCES or -EPERM.
 * Errors: -EINVAL (bad handle or level); -ESRCH (ended); -EACCES/-EPERM as above. */
enum {
	WEFT_THREAD_PRIORITY_IDLE = -15,
	WEFT_THREAD_PRIORITY_LOWEST = -2,
	WEFT_THREAD_PRIORITY_BELOW_NORMAL = -1,
	WEFT_THREAD_PRIORITY_NORMAL = 0,
	WEFT_THREAD_PRIORITY_ABOVE_NORMAL = 1,
	WEFT_THREAD_PRIORITY_HIGHEST = 2,
	WEFT_THREAD_PRIORITY_TIME_CRITICAL = 15
};
WEFT_API int weft_thread_set_priority(weft_handle *thread, int priority);
/* Stores the thread's priority level (the nearest level to its nice value) into *priority.
 * Errors: -EINVAL (bad handle or priority NULL); -ESRCH (the thread ended). */
WEFT_API int weft_thread_get_priority(weft_handle *thread, int *priority);
/* Names the thread (visible in /proc/self/task/<tid>/comm, ps and gdb); longer names are
 * truncated to 15 bytes. Errors: -EINVAL (bad handle or name NULL); -ESRCH (ended). */
WEFT_API int weft_thread_set_name(weft_handle *thread, const char *name);

/* Per-thread last error (GetLastError / SetLastError): a value of the caller's choosing;
 * weft itself never sets it. 0 on a new thread. Errors: none. */
WEFT_API int weft_get_last_error(void);
WEFT_API void weft_set_last_error(int err);

/* TLS slots (TlsAlloc / FlsAlloc with a destructor). weft_tls_alloc returns a slot index
 * >= 0, or -EAGAIN when all WEFT_TLS_SLOTS are in use. When a thread ends, dtor (if
 * non-NULL) runs for each non-NULL value it left in the slot. weft_tls_free releases the
 * slot without running destructors. weft_tls_set errors: -EINVAL (slot not allocated),
 * -ENOMEM (no per-thread block). weft_tls_get returns NULL for unset or bad slots. */
#define WEFT_TLS_SLOTS 64
WEFT_API int weft_tls_alloc(void (*dtor)(void *value));
WEFT_API int weft_tls_free(int slot);
WEFT_API int weft_tls_set(int slot, void *value);
WEFT_API void *weft_tls_get(int slot);

/* ---------------------------------------------------------------------------------------
 * APCs and alertable waits (QueueUserAPC / SleepEx)
 * ------------------------------------------------------------------------------------- */

/* Queues fn(arg) to the thread. It runs only when that thread enters an alertable wait
 * (weft_sleep_ex, weft_wait_ex, weft_wait_many_ex, weft_port_get_many), in FIFO order,
 * on that thread; the wait then returns WEFT_WAIT_IO_COMPLETION. APCs still queued when
 * the thread ends are dropped without running. Never blocks, thread-safe.
 * Errors: -EINVAL (not a thread handle, fn NULL); -ESRCH (the thread ended); -ENOMEM. */
WEFT_API int weft_thread_queue_apc(weft_handle *thread, void (*fn)(uintptr_t), uintptr_t arg);
/* Sleeps ms milliseconds (WEFT_INFINITE: forever). When alertable, queued APCs end the
 * sleep: they run and it returns WEFT_WAIT_IO_COMPLETION; otherwise returns 0.
 * Errors: -ENOMEM (alertable, no per-thread block could be allocated). */
WEFT_API int weft_sleep_ex(uint32_t ms, bool alertable);

/* ---------------------------------------------------------------------------------------
 * Processes: a waitable handle on a child process (pidfd).
 * ------------------------------------------------------------------------------------- */

/* Spawns `file` (searched in PATH when it has no '/') with argv and envp (NULL: the
 * caller's environment) and returns a handle that becomes signaled when the child exits;
 * stores its pid into *pid if non-NULL. weft reaps the child (do not waitpid it).
 * Errors: returns NULL when spawning fails, pidfd_open is unavailable (Linux < 5.3) or
 * out of memory. */
WEFT_API weft_handle *weft_process_spawn(const char *file, char *const argv[], char *const envp[], uint32_t *pid);
/* Stores the exit code into *code: WEFT_STILL_ACTIVE while the child runs, its exit
 * status after, or 128 + signal number if a signal killed it.
 * Errors: -EINVAL (not a process handle, code NULL). */
WEFT_API int weft_process_exit_code(weft_handle *process, unsigned *code);
/* Sends signal sig to the child (pidfd_send_signal: never hits a recycled pid).
 * Errors: -EINVAL (bad handle or signal); -ESRCH (already reaped); -EPERM. */
WEFT_API int weft_process_kill(weft_handle *process, int sig);
/* The child's pid. Errors: returns 0 for a bad handle. */
WEFT_API uint32_t weft_process_id(weft_handle *process);

#ifdef __cplusplus
}
#endif
#endif
