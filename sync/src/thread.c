/* thread.c - threads with the _beginthreadex lifecycle and their per-thread blocks.
 *
 * Lifetime of a weft thread: weft_thread_create allocates the thread object (refs 2: the
 * creator's handle and the thread's own) and the per-thread block, then starts a
 * detached pthread. The start routine installs the block (TLS pointer, a pthread key
 * whose destructor finishes the block on pthread_exit, and the registry), publishes its
 * tid, waits for its suspend count to reach 0 and only then calls the user function.
 * block_finish runs once per thread, on whichever path ends it: after the function
 * returns (start routine), from the key destructor (weft_thread_exit, pthread_exit, and
 * the end of a plain pthread that got a block lazily), or from the library destructor
 * for the thread that calls exit(). It runs TLS slot destructors, abandons owned
 * mutexes, drops queued APCs, publishes the exit code, signals the handle and frees the
 * block; the thread's object reference goes last.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apc.h"
#include "handle.h"

struct weft__tblock {
	struct weft_handle *self; /* the thread's own reference to its object */
	int last_error;
	unsigned exit_code;
	void *slots[WEFT_TLS_SLOTS]; /* atomic (relaxed): weft_tls_free clears other threads' */
	struct weft__tblock *next, *prev; /* registry, under reg_lock */
};

/* initial-exec, like weft__tls_tid: one %fs-relative load on every wait, also from
 * libweft.so. */
static __thread struct weft__tblock *tls_block __attribute__((tls_model("initial-exec")));
static pthread_key_t block_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The registry of live blocks: keeps blocks of threads still running at process exit
 * reachable (leak checkers), and lets weft_tls_free clear a slot everywhere. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__tblock *reg_head;
static uint32_t reg_count; /* under reg_lock; read atomically by tests */
static struct {
	bool used;
	void (*dtor)(void *);
} tls_slots[WEFT_TLS_SLOTS];

static void block_finish(struct weft__tblock *b);

static void key_dtor(void *p)
{
	block_finish(p);
}

static void key_init(void)
{
	if (pthread_key_create(&block_key, key_dtor) != 0)
		weft__die("pthread_key_create failed");
}

static void block_install(struct weft__tblock *b)
{
	pthread_once(&key_once, key_init);
	tls_block = b;
	pthread_setspecific(block_key, b);
	pthread_mutex_lock(&reg_lock);
	b->prev = NULL;
	b->next = reg_head;
	if (reg_head)
		reg_head->prev = b;
	reg_head = b;
	weft__store_rlx(&reg_count, reg_count + 1);
	pthread_mutex_unlock(&reg_lock);
}

uint32_t weft__thread_blocks_live(void)
{
	/* relaxed: a statistic for tests; writers hold reg_lock. */
	return weft__load_rlx(&reg_count);
}

static void run_slot_dtors(struct weft__tblock *b)
{
	/* Destructors may set slots again; bounded rounds, like PTHREAD_DESTRUCTOR_ITERATIONS. */
	for (int round = 0; round < 4; round++) {
		bool any = false;
		for (int i = 0; i < WEFT_TLS_SLOTS; i++) {
			void *v = weft__xchg_acq(&b->slots[i], NULL);
			if (!v)
				continue;
			pthread_mutex_lock(&reg_lock);
			void (*dtor)(void *) = tls_slots[i].used ? tls_slots[i].dtor : NULL;
			pthread_mutex_unlock(&reg_lock);
			if (dtor) {
				dtor(v);
				any = true;
			}
		}
		if (!any)
			break;
	}
}

static void block_finish(struct weft__tblock *b)
{
	struct weft_handle *t = b->self;
	run_slot_dtors(b);
	weft__mutex_abandon_all(t);
	weft__apc_close(t);

	weft__obj_lock(t);
	weft__store_rlx(&t->u.th.exit_code, b->exit_code);
	/* release: pairs with the acquire in weft_thread_exit_code; waiters see done under
	 * the lock. */
	weft__store_rel(&t->u.th.done, 1);
	weft__obj_unlock_wake(t, weft__satisfy(t));

	pthread_mutex_lock(&reg_lock);
	if (b->prev)
		b->prev->next = b->next;
	else
		reg_head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	if (tls_block == b)
		tls_block = NULL;
	pthread_setspecific(block_key, NULL);
	free(b);
	/* the count drops only once the block is freed, so a test that sees it drop knows */
	weft__store_rlx(&reg_count, reg_count - 1);
	pthread_mutex_unlock(&reg_lock);
	weft__unref(t);
}

/* The calling thread ends exit(): finish its block (the main thread's, usually). Other
 * threads still running keep theirs, reachable from the registry; the kernel reclaims
 * the memory with the process. */
__attribute__((destructor)) static void thread_lib_fini(void)
{
	if (tls_block)
		block_finish(tls_block);
}

static struct weft_handle *thread_obj_new(uint32_t refs)
{
	struct weft_handle *t = weft__handle_alloc(WEFT__K_THREAD);
	if (!t)
		return NULL;
	t->refs = refs;
	t->u.th.exit_code = WEFT_STILL_ACTIVE;
	return t;
}

struct weft_handle *weft__self(void)
{
	struct weft__tblock *b = tls_block;
	if (b)
		return b->self;
	/* A thread weft did not create: adopt it with a block of its own. */
	struct weft_handle *t = thread_obj_new(1);
	b = calloc(1, sizeof *b);
	if (!t || !b) {
		free(t);
		free(b);
		return NULL;
	}
	t->u.th.pt = pthread_self();
	t->u.th.tid = weft__tid();
	b->self = t;
	block_install(b);
	return t;
}

void weft__thread_destroy(struct weft_handle *h)
{
	(void)h; /* the APC queue was emptied when the thread ended */
}

static void *thread_start(void *p)
{
	struct weft__tblock *b = p;
	struct weft_handle *t = b->self;
	struct weft__thread_obj *th = &t->u.th;
	block_install(b);
	if (th->name[0])
		prctl(PR_SET_NAME, th->name, 0, 0, 0);
	/* release: pairs with the creator's acquire load of tid. */
	weft__store_rel(&th->tid, weft__tid());
	weft__futex_wake(&th->tid, INT_MAX);
	uint32_t s;
	/* acquire: pairs with the release decrement in weft_thread_resume. */
	while ((s = weft__load_acq(&th->suspend)) != 0)
		weft__futex_wait(&th->suspend, s, NULL);
	b->exit_code = th->fn(th->arg);
	block_finish(b);
	return NULL;
}

weft_handle *weft_thread_create(weft_thread_fn fn, void *arg, const weft_thread_attr *attr, uint32_t *thread_id)
{
	if (!fn)
		return NULL;
	struct weft_handle *t = thread_obj_new(2);
	struct weft__tblock *b = calloc(1, sizeof *b);
	if (!t || !b) {
		free(t);
		free(b);
		return NULL;
	}
	struct weft__thread_obj *th = &t->u.th;
	th->fn = fn;
	th->arg = arg;
	th->suspend = attr && (attr->flags & WEFT_THREAD_SUSPENDED) ? 1 : 0;
	if (attr && attr->name)
		snprintf(th->name, sizeof th->name, "%s", attr->name);
	b->self = t;

	size_t stack = attr && attr->stack_size ? attr->stack_size : WEFT_THREAD_DEFAULT_STACK;
	long page = sysconf(_SC_PAGESIZE);
	if (stack < (size_t)PTHREAD_STACK_MIN)
		stack = (size_t)PTHREAD_STACK_MIN;
	stack = (stack + (size_t)page - 1) & ~((size_t)page - 1);
	pthread_attr_t pa;
	pthread_attr_init(&pa);
	pthread_attr_setdetachstate(&pa, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&pa, stack);
	int r = pthread_create(&th->pt, &pa, thread_start, b);
	pthread_attr_destroy(&pa);
	if (r != 0) {
		free(t);
		free(b);
		return NULL;
	}
	uint32_t tid;
	/* acquire: pairs with the release store in thread_start. */
	while ((tid = weft__load_acq(&th->tid)) == 0) {
		weft__block_begin();
		weft__futex_wait(&th->tid, 0, NULL);
		weft__block_end();
	}
	if (thread_id)
		*thread_id = tid;
	return t;
}

int weft_thread_resume(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_THREAD))
		return -EINVAL;
	uint32_t s = weft__load_rlx(&h->u.th.suspend);
	do {
		if (s == 0)
			return 0;
		/* release: pairs with the acquire in thread_start; everything the resumer did
		 * before is visible to the thread's first instruction. */
	} while (!weft__cas_rel(&h->u.th.suspend, &s, s - 1));
	if (s == 1)
		weft__futex_wake(&h->u.th.suspend, INT_MAX);
	return (int)s;
}

void weft_thread_exit(unsigned code)
{
	if (weft__self())
		tls_block->exit_code = code;
	/* The key destructor finishes the block. */
	pthread_exit(NULL);
}

int weft_thread_exit_code(weft_handle *h, unsigned *code)
{
	if (!weft__handle_ok(h, WEFT__K_THREAD) || !code)
		return -EINVAL;
	/* acquire: pairs with the release store of done in block_finish. */
	*code = weft__load_acq(&h->u.th.done) ? weft__load_rlx(&h->u.th.exit_code) : WEFT_STILL_ACTIVE;
	return 0;
}

uint32_t weft_thread_id(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_THREAD))
		return 0;
	/* acquire: pairs with the release store in thread_start (already complete for any
	 * handle weft_thread_create returned). */
	return weft__load_acq(&h->u.th.tid);
}

weft_handle *weft_thread_current(void)
{
	struct weft_handle *t = weft__self();
	if (t)
		weft__ref(t);
	return t;
}

/* The tid of a live thread, or a negative errno. The thread may still end right after;
 * Linux recycles tids only after a thread is gone, so the window is the caller's. */
static int live_tid(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_THREAD))
		return -EINVAL;
	if (weft__load_acq(&h->u.th.done))
		return -ESRCH;
	return (int)weft__load_acq(&h->u.th.tid);
}

int weft_thread_set_affinity(weft_handle *h, uint64_t mask, uint64_t *previous)
{
	int tid = live_tid(h);
	if (tid < 0)
		return tid;
	if (mask == 0)
		return -EINVAL;
	cpu_set_t old, set;
	if (sched_getaffinity(tid, sizeof old, &old) != 0)
		return -errno;
	CPU_ZERO(&set);
	for (int i = 0; i < 64; i++)
		if (mask & (1ull << i))
			CPU_SET(i, &set);
	if (sched_setaffinity(tid, sizeof set, &set) != 0)
		return -errno;
	if (previous) {
		uint64_t m = 0;
		for (int i = 0; i < 64; i++)
			if (CPU_ISSET(i, &old))
				m |= 1ull << i;
		*previous = m;
	}
	return 0;
}

static const struct {
	int level, nice;
} prio_map[] = {
	{ WEFT_THREAD_PRIORITY_IDLE, 19 },	   { WEFT_THREAD_PRIORITY_LOWEST, 10 },
	{ WEFT_THREAD_PRIORITY_BELOW_NORMAL, 5 },  { WEFT_THREAD_PRIORITY_NORMAL, 0 },
	{ WEFT_THREAD_PRIORITY_ABOVE_NORMAL, -5 }, { WEFT_THREAD_PRIORITY_HIGHEST, -10 },
	{ WEFT_THREAD_PRIORITY_TIME_CRITICAL, -20 },
};

int weft_thread_set_priority(weft_handle *h, int priority)
{
	int tid = live_tid(h);
	if (tid < 0)
		return tid;
	for (size_t i = 0; i < sizeof prio_map / sizeof prio_map[0]; i++) {
		if (prio_map[i].level != priority)
			continue;
		/* Linux nice values are per thread (PRIO_PROCESS with a tid). */
		if (setpriority(PRIO_PROCESS, (id_t)tid, prio_map[i].nice) != 0)
			return -errno;
		return 0;
	}
	return -EINVAL;
}

int weft_thread_get_priority(weft_handle *h, int *priority)
{
	if (!priority)
		return -EINVAL;
	int tid = live_tid(h);
	if (tid < 0)
		return tid;
	/* The raw system call returns 20 - nice, so no errno dance around -1. */
	long r = syscall(SYS_getpriority, PRIO_PROCESS, tid);
	if (r < 0)
		return -errno;
	int nice = 20 - (int)r, best = 0, bestd = INT_MAX;
	for (size_t i = 0; i < sizeof prio_map / sizeof prio_map[0]; i++) {
		int d = abs(prio_map[i].nice - nice);
		if (d < bestd) {
			bestd = d;
			best = prio_map[i].level;
		}
	}
	*priority = best;
	return 0;
}

int weft_thread_set_name(weft_handle *h, const char *name)
{
	if (!name)
		return -EINVAL;
	int tid = live_tid(h);
	if (tid < 0)
		return tid;
	char buf[16];
	snprintf(buf, sizeof buf, "%s", name);
	if ((uint32_t)tid == weft__tid())
		return prctl(PR_SET_NAME, buf, 0, 0, 0) == 0 ? 0 : -errno;
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	ssize_t n = write(fd, buf, strlen(buf));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* ---- last error and TLS slots ---- */

int weft_get_last_error(void)
{
	struct weft__tblock *b = tls_block;
	return b ? b->last_error : 0;
}

void weft_set_last_error(int err)
{
	if (weft__self())
		tls_block->last_error = err;
}

int weft_tls_alloc(void (*dtor)(void *value))
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < WEFT_TLS_SLOTS; i++) {
		if (!tls_slots[i].used) {
			tls_slots[i].used = true;
			tls_slots[i].dtor = dtor;
			pthread_mutex_unlock(&reg_lock);
			return i;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return -EAGAIN;
}

int weft_tls_free(int slot)
{
	if (slot < 0 || slot >= WEFT_TLS_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	if (!tls_slots[slot].used) {
		pthread_mutex_unlock(&reg_lock);
		return -EINVAL;
	}
	tls_slots[slot].used = false;
	tls_slots[slot].dtor = NULL;
	/* Like TlsFree: the slot reads NULL in every thread afterwards. */
	for (struct weft__tblock *b = reg_head; b; b = b->next)
		weft__store_rlx(&b->slots[slot], NULL);
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

int weft_tls_set(int slot, void *value)
{
	if (slot < 0 || slot >= WEFT_TLS_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	bool used = tls_slots[slot].used;
	pthread_mutex_unlock(&reg_lock);
	if (!used)
		return -EINVAL;
	if (!weft__self())
		return -ENOMEM;
	/* relaxed: the slot is this thread's; other threads only ever clear it. */
	weft__store_rlx(&tls_block->slots[slot], value);
	return 0;
}

void *weft_tls_get(int slot)
{
	struct weft__tblock *b = tls_block;
	if (!b || slot < 0 || slot >= WEFT_TLS_SLOTS)
		return NULL;
	return weft__load_rlx(&b->slots[slot]);
}
