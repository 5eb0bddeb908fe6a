/* apc.h - the APC queue of a thread and alertable-wait registration. */
#ifndef WEFT_APC_H
#define WEFT_APC_H

#include <stdbool.h>

#include "internal.h"

/* Runs every APC queued to the calling thread, FIFO, on this thread; returns how many ran. */
WEFT_INTERNAL int weft__apc_run(void);
/* Alertable-wait registration for waits implemented outside sync/ (the port). While armed,
 * queuing an APC to this thread calls wake(ctx) from the queuing thread (must not block).
 * Returns true if APCs are already pending, in which case the caller should not sleep
 * (it must still call weft__apc_disarm). */
WEFT_INTERNAL bool weft__apc_arm(void (*wake)(void *ctx), void *ctx);
WEFT_INTERNAL void weft__apc_disarm(void);

/* Queues fn(arg) to the thread object t (which the caller keeps alive). 0, -ESRCH when
 * the thread ended, -ENOMEM. */
struct weft_handle;
WEFT_INTERNAL int weft__apc_queue(struct weft_handle *t, void (*fn)(uintptr_t), uintptr_t arg);
/* Drops (frees without running) every APC still queued to the ending thread t and
 * refuses new ones. */
WEFT_INTERNAL void weft__apc_close(struct weft_handle *t);

#endif
