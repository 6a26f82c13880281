/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A pool of worker threads for the service layer. The event loop hands
 * work to the pool and never waits for it: a worker may block for as long
 * as a target's files take to read (a FUSE file whose reads never return
 * holds its worker, not the loop). Finished items come back on a list,
 * and an eventfd the loop watches turns readable while that list is not
 * empty.
 *
 * Threads start when there is work and no idle thread, up to @max_threads,
 * and stay. The pool has no policy: the caller decides how many items it
 * submits and for whom.
 */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct WorkItem WorkItem;
typedef void (*WorkFn)(WorkItem *item);

/* Embedded in the caller's job; the pool only links it. */
struct WorkItem {
        WorkItem *next;
        WorkFn run;                     /* runs on a worker thread */
};

typedef struct WorkerPool WorkerPool;

int worker_pool_new(WorkerPool **ret, size_t max_threads);

/*
 * Stop the pool: no item is started any more (those queued are handed back
 * unrun by worker_pool_take_finished()), and the threads are joined once
 * their current item is done, waiting @timeout_usec at most. Returns
 * 0 when every thread is gone, -ETIMEDOUT when some still run an item:
 * then whatever their items use must stay allocated, and so must the pool.
 */
int worker_pool_stop(WorkerPool *p, uint64_t timeout_usec);
/* Free a pool that is stopped (or never ran an item). */
WorkerPool *worker_pool_free(WorkerPool *p);
DEFINE_CLEANUP(WorkerPool *, worker_pool_free);

/* The eventfd that is readable while finished items wait to be taken. */
int worker_pool_fd(const WorkerPool *p);

/*
 * Queue @item: a worker runs item->run(item), then puts it on the finished
 * list. Returns 0, or -errno when no thread could be started and none runs.
 */
int worker_pool_submit(WorkerPool *p, WorkItem *item);

/* Take the finished items, oldest first, linked through ->next; NULL if none. */
WorkItem *worker_pool_take_finished(WorkerPool *p);

/* Items submitted and not yet taken back. */
size_t worker_pool_busy(const WorkerPool *p);
