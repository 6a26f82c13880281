/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The service layer: one Manager owns the event loop, the listening socket,
 * the connections, the caches and the counters. All mutable state of the
 * daemon lives here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "buildid-cache.h"
#include "lru.h"
#include "macro.h"
#include "proc.h"
#include "vma.h"

#define DEFAULT_SOCKET_PATH "/run/vmaqd.sock"
#define DEFAULT_MAX_MESSAGE_SIZE (16U * 1024U * 1024U)
#define DEFAULT_MAX_ADDRESSES 100000U
#define DEFAULT_MAX_CONNECTIONS 256U
#define DEFAULT_PROC_CACHE_SIZE 1024U
#define DEFAULT_BUILD_ID_CACHE_SIZE 4096U
#define DEFAULT_IDLE_TIMEOUT_USEC (60U * 1000000U)
#define DEFAULT_GROUP "vmaq"
#define DEFAULT_SOCKET_MODE 0666

typedef struct ManagerConfig {
        const char *socket_path;
        VmaBackend backend;
        int log_level;
        size_t max_message_size;
        size_t max_addresses;
        size_t max_connections;
        size_t proc_cache_size;
        size_t build_id_cache_size;
        uint64_t idle_timeout_usec;
        const char *group;              /* NULL or "": none */
        mode_t socket_mode;
} ManagerConfig;

typedef struct Manager Manager;
typedef struct Connection Connection;

struct Connection {
        Manager *manager;
        Connection *prev, *next;
        int fd;
        sd_event_source *io_source;
        sd_event_source *timer_source;
        struct ucred cred;
        bool privileged;                /* may query any process */
        bool foreign_pidns;             /* pids it sends mean other processes */
        char *in;                       /* received, not yet processed bytes */
        size_t in_size, in_allocated;
        char *out;                      /* replies not yet written */
        size_t out_start, out_size, out_allocated;
        bool eof;                       /* the peer sent all it will send */
        bool draining;                  /* the daemon stops: answer what was received, read no more */
        bool closing;                   /* read no more; close once out is written */
};

struct Manager {
        ManagerConfig config;
        int log_level;
        VmaBackend backend;
        gid_t privileged_gid;           /* (gid_t) -1: no such group */
        ino_t pidns;
        sd_event *event;
        int listen_fd;
        bool socket_bound;              /* we bound it (not socket activation): unlink at exit */
        sd_event_source *listen_source;
        sd_event_source *sigterm_source, *sigint_source;
        sd_event_source *exit_timer_source;
        Connection *connections;
        size_t n_connections;
        Lru *procs;                     /* pid_t -> CachedProc */
        BuildIdCache *build_ids;
        uint64_t start_usec;
        uint64_t requests, errors, denied;
        uint64_t proc_cache_hits, proc_cache_misses;
        bool stopping;
};

int manager_new(Manager **ret, const ManagerConfig *config);
Manager *manager_free(Manager *m);
DEFINE_CLEANUP(Manager *, manager_free);

/* Take the socket from systemd, or bind it. Then serve until told to stop. Returns 0 on a clean stop. */
int manager_listen(Manager *m);
int manager_run(Manager *m);

/*
 * The Proc for @pid as client @c may see it: from the cache, or opened.
 * Errors: -EXDEV (client in another pid namespace), -EACCES, and those of
 * proc_open().
 */
int manager_acquire_proc(Manager *m, Connection *c, pid_t pid, Proc **ret);
/* Forget @pid: its process is gone or changed. */
void manager_forget_proc(Manager *m, pid_t pid);
/* Re-check access after the address space was replaced (exec). -EACCES if now refused. */
int manager_recheck_proc(Manager *m, Connection *c, Proc *p);

void manager_connection_closed(Manager *m, Connection *c);

/* connection.c */
int connection_new(Connection **ret, Manager *m, int fd);
Connection *connection_free(Connection *c);
/* Queue a reply message of @size bytes (its NUL included) and write what the socket takes. */
int connection_queue(Connection *c, const char *message, size_t size);
/* Read no more requests: close once the queued replies are written. */
void connection_shutdown(Connection *c);
/* Answer the requests already received, read no more. -ECONNRESET when nothing is left to do. */
int connection_drain(Connection *c);

/* methods.c: handle one message; appends the reply (if any) to the connection. */
int method_dispatch(Connection *c, const char *message, size_t size);
