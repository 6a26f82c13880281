/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

struct WorkerPool {
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* work queued, or stopping */
        pthread_cond_t exited;          /* a thread is about to exit */
        WorkItem *queue, **queue_tail;
        WorkItem *finished, **finished_tail;
        size_t max_threads;
        size_t n_threads;               /* started and not joined */
        size_t n_idle;
        size_t n_queued;
        size_t n_exited;                /* exited and not joined */
        size_t busy;                    /* submitted, not taken back */
        unsigned generation;            /* atomic: bumped by each submit, for the spinning thread */
        bool spinning;                  /* an idle thread spins before it sleeps */
        bool stopping;
        int event_fd;
        pthread_t *threads;
};

int worker_pool_new(WorkerPool **ret, size_t max_threads) {
        WorkerPool *p;

        if (max_threads == 0)
                return -EINVAL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->threads = calloc(max_threads, sizeof(pthread_t));
        p->event_fd = eventfd(0, EFD_CLOEXEC|EFD_NONBLOCK);
        if (!p->threads || p->event_fd < 0) {
                int r = p->threads ? -errno : -ENOMEM;

                safe_close(p->event_fd);
                free(p->threads);
                free(p);
                return r;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        pthread_cond_init(&p->exited, NULL);
        p->queue_tail = &p->queue;
        p->finished_tail = &p->finished;
        p->max_threads = max_threads;

        *ret = p;
        return 0;
}

/*
 * How long one idle thread polls for work before it sleeps. A client
 * that asks again as soon as it has its answer finds it awake: on a
 * virtual machine, waking a thread whose CPU went idle costs tens of
 * microseconds, more than a small request. One thread at most spins, only
 * right after an item that took less than this (a longer one would not
 * gain from it), and only while no other thread runs one (they need the
 * CPU more).
 */
#define SPIN_NSEC (200 * 1000)

static uint64_t now_nsec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000U + (uint64_t) ts.tv_nsec;
}

/* Without the lock: until an item may have been queued since @generation, or SPIN_NSEC passed. */
static void worker_spin(WorkerPool *p, unsigned generation) {
        uint64_t deadline = now_nsec() + SPIN_NSEC;

        /*
         * Yielding, not only pausing: on a machine with few CPUs the thread
         * that will queue the item may be waiting for this one's.
         */
        while (__atomic_load_n(&p->generation, __ATOMIC_ACQUIRE) == generation && now_nsec() < deadline)
                (void) sched_yield();
}

static void *worker_main(void *userdata) {
        WorkerPool *p = userdata;
        bool spin = false;              /* the last item was short: it may be followed by another soon */

        pthread_mutex_lock(&p->lock);
        for (;;) {
                WorkItem *item;
                uint64_t one = 1, start;

                while (!p->queue && !p->stopping) {
                        p->n_idle++;
                        if (!p->spinning && spin && p->n_idle == p->n_threads) {
                                unsigned generation = p->generation;

                                p->spinning = true;
                                pthread_mutex_unlock(&p->lock);
                                worker_spin(p, generation);
                                pthread_mutex_lock(&p->lock);
                                p->spinning = false;
                        }
                        spin = false;
                        if (!p->queue && !p->stopping)
                                pthread_cond_wait(&p->wake, &p->lock);
                        p->n_idle--;
                }
                if (p->stopping)
                        break;

                item = p->queue;
                p->n_queued--;
                p->queue = item->next;
                if (!p->queue)
                        p->queue_tail = &p->queue;
                pthread_mutex_unlock(&p->lock);

                item->next = NULL;
                start = now_nsec();
                item->run(item);
                spin = now_nsec() - start < SPIN_NSEC;

                pthread_mutex_lock(&p->lock);
                *p->finished_tail = item;
                p->finished_tail = &item->next;
                pthread_mutex_unlock(&p->lock);
                /* Outside the lock, which the loop takes when it wakes. Cannot fail short of a counter at 2^64 - 1. */
                (void) write(p->event_fd, &one, sizeof(one));
                pthread_mutex_lock(&p->lock);
        }
        p->n_exited++;
        pthread_cond_broadcast(&p->exited);
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* With the lock held: one more thread. */
static int worker_pool_spawn(WorkerPool *p) {
        sigset_t all, saved;
        int r;

        /* Signals belong to the event loop: the thread starts with all of them blocked. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;
        p->n_threads++;
        return 0;
}

int worker_pool_submit(WorkerPool *p, WorkItem *item) {
        int r = 0;

        assert(item && item->run);

        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        /* Every idle thread already has a queued item coming: start another one if we may. */
        if (p->n_idle <= p->n_queued && p->n_threads < p->max_threads) {
                r = worker_pool_spawn(p);
                if (r < 0 && p->n_threads > 0)
                        r = 0;          /* the running threads will get to it */
        }
        if (r >= 0) {
                item->next = NULL;
                *p->queue_tail = item;
                p->queue_tail = &item->next;
                p->n_queued++;
                __atomic_add_fetch(&p->busy, 1, __ATOMIC_RELAXED);
                __atomic_add_fetch(&p->generation, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&p->lock);
        /* After the unlock: a thread woken with the lock held would only wait for it. */
        if (r >= 0)
                pthread_cond_signal(&p->wake);
        return r;
}

WorkItem *worker_pool_take_finished(WorkerPool *p) {
        WorkItem *list;
        uint64_t n;

        (void) read(p->event_fd, &n, sizeof(n));

        pthread_mutex_lock(&p->lock);
        list = p->finished;
        p->finished = NULL;
        p->finished_tail = &p->finished;
        for (WorkItem *i = list; i; i = i->next)
                __atomic_sub_fetch(&p->busy, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&p->lock);
        return list;
}

int worker_pool_fd(const WorkerPool *p) {
        return p->event_fd;
}

size_t worker_pool_busy(const WorkerPool *p) {
        return __atomic_load_n(&p->busy, __ATOMIC_RELAXED);
}

int worker_pool_stop(WorkerPool *p, uint64_t timeout_usec) {
        struct timespec deadline;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t) (timeout_usec / 1000000U);
        deadline.tv_nsec += (long) (timeout_usec % 1000000U) * 1000L;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }

        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->wake);
        /* What no thread started is handed back unrun, with the finished items. */
        if (p->queue) {
                *p->finished_tail = p->queue;
                p->finished_tail = p->queue_tail;
                p->queue = NULL;
                p->queue_tail = &p->queue;
                p->n_queued = 0;
        }
        while (p->n_exited < p->n_threads && r == 0) {
                r = -pthread_cond_clockwait(&p->exited, &p->lock, CLOCK_MONOTONIC, &deadline);
        }
        if (p->n_exited < p->n_threads) {
                pthread_mutex_unlock(&p->lock);
                return -ETIMEDOUT;
        }
        pthread_mutex_unlock(&p->lock);

        for (size_t i = 0; i < p->n_threads; i++)
                (void) pthread_join(p->threads[i], NULL);
        p->n_threads = p->n_exited = 0;
        return 0;
}

WorkerPool *worker_pool_free(WorkerPool *p) {
        if (!p)
                return NULL;
        assert(p->n_threads == 0);
        pthread_cond_destroy(&p->exited);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        safe_close(p->event_fd);
        free(p->threads);
        free(p);
        return NULL;
}
