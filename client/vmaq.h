/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VMAQ_H
#define VMAQ_H

/* The version of libvmaq this header is of, for code that builds against several. */
#define VMAQ_VERSION_MAJOR 0
#define VMAQ_VERSION_MINOR 2
#define VMAQ_VERSION_AT_LEAST(major, minor) \
        (VMAQ_VERSION_MAJOR > (major) || (VMAQ_VERSION_MAJOR == (major) && VMAQ_VERSION_MINOR >= (minor)))

/*
 * libvmaq: ask vmaqd to normalize addresses of a process to (file, file
 * offset, build ID). See libvmaq(3).
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; vmaq_errmsg() then describes the failure. The library never
 * prints, never exits and never raises signals (writes use MSG_NOSIGNAL).
 *
 * Errors from the daemon:
 *   -ESRCH       no such process                 (io.vmaq.NoSuchProcess)
 *   -ENXIO       the process has no address space (io.vmaq.NoAddressSpace)
 *   -EACCES      not allowed to query the process (io.vmaq.PermissionDenied)
 *   -ESTALE      the pid names another process than the pinned start time
 *                                                 (io.vmaq.ProcessChanged)
 *   -E2BIG       request over the daemon's limits (io.vmaq.RequestTooLarge);
 *                never for the number of addresses: vmaq_normalize() asks in
 *                batches of the daemon's --max-addresses, learned from its
 *                first refusal, and answers as one call would
 *   -EINVAL      invalid parameter                (org.varlink.service.InvalidParameter):
 *                a pid below 1, no addresses; also from the library itself
 *                for a NULL argument or an unknown flag
 *   -EXDEV       the caller is in a pid namespace the daemon cannot tell
 *                (io.vmaq.ForeignPidNamespace)
 *   -EOPNOTSUPP, -EADDRNOTAVAIL  method or interface unknown to the daemon
 *   -EIO         the daemon failed internally     (io.vmaq.InternalError)
 *   -EUSERS      the daemon refused the connection: its user, or all
 *                users together, hold their share (io.vmaq.TooManyConnections);
 *                the daemon then closes it
 *   -EBUSY       the daemon's memory budget cannot hold the request now
 *                (io.vmaq.MemoryLimitReached); retry later
 *   -ETIME       the request ran past the daemon's request timeout
 *                (io.vmaq.TimedOut); the connection stays usable
 *   -EPROTO      an error the library does not know
 * Errors of the connection:
 *   -ENOENT, -ECONNREFUSED  from connecting: no daemon listens there
 *   -EPERM       from connecting: the caller may not open the socket (its
 *                mode, or a directory on its path); -EACCES only ever means
 *                the daemon's policy refused a process
 *   -ENAMETOOLONG  the socket path does not fit a sockaddr_un
 *   -ETIMEDOUT   from connecting: the daemon's listen backlog stayed full
 *                for the timeout (it is not accepting connections);
 *                from a call: no complete reply within the timeout, the
 *                connection is then unusable (close it)
 *   -ECONNRESET  the daemon closed the connection
 *   -EPROTO      the daemon sent something that is not a valid reply (or
 *                one over 256 MiB)
 *   -ENOTCONN    an earlier timeout or broken stream made the connection
 *                unusable; close it and connect again
 *   -ENOMEM
 */

/*
 * Memory: every result is one allocation holding all its strings and build
 * IDs, freed with its *_free() function (which accepts NULL). Nothing in it
 * points into the connection. *ret is written only on success (NULL on
 * failure for vmaq_connect()).
 *
 * ABI: the library allocates every struct it hands out, and a later
 * version may add fields at the end of any of them. So the elements of an
 * answer (results, modules, mappings) are reached one by one through
 * vmaq_result_get(), vmaq_module_get() and vmaq_mapping_get(), never as an
 * array indexed with the caller's idea of their size.
 *
 * Threads: a connection may be used by one thread at a time. Use one
 * connection per thread, or serialize calls with a lock. Results are plain
 * memory, independent of the connection, and may be read from any thread.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMAQ_DEFAULT_SOCKET "/run/vmaqd.sock"
#define VMAQ_DEFAULT_TIMEOUT_USEC UINT64_C(30000000)

struct vmaq_client;

/*
 * Connect to vmaqd at @path, or when @path is NULL at $VMAQ_SOCKET, else
 * VMAQ_DEFAULT_SOCKET. $VMAQ_SOCKET is ignored in setuid/setgid programs
 * (secure_getenv()). On failure *ret is NULL and the error is returned.
 *
 * A daemon that does not accept leaves connections in its listen backlog,
 * and once that is full a connect waits for room: at most
 * VMAQ_DEFAULT_TIMEOUT_USEC, then it fails with -ETIMEDOUT. A connection
 * that found room counts as made; the first call's timeout covers the
 * wait for the daemon to accept it.
 */
int vmaq_connect(struct vmaq_client **ret, const char *path);

/*
 * vmaq_connect() with a timeout of @usec microseconds (0: wait forever)
 * instead of VMAQ_DEFAULT_TIMEOUT_USEC: for the connect, and for each call
 * on the connection as if set with vmaq_set_timeout().
 */
int vmaq_connect_timeout(struct vmaq_client **ret, const char *path, uint64_t usec);

/* Close the connection and free @client. Accepts NULL. */
void vmaq_close(struct vmaq_client *client);

/*
 * The time a call may take, sending and receiving together, in
 * microseconds; 0 waits forever. Default VMAQ_DEFAULT_TIMEOUT_USEC, or
 * the timeout given to vmaq_connect_timeout(). Returns 0, or -EINVAL for
 * a NULL @client.
 */
int vmaq_set_timeout(struct vmaq_client *client, uint64_t usec);

/* A description of the last failure of a call on @client, or "" after a success. Valid until the next call. */
const char *vmaq_errmsg(const struct vmaq_client *client);

/* --- Normalize ------------------------------------------------------------ */

enum {
        VMAQ_NORMALIZE_NO_BUILD_IDS = 1 << 0,   /* do not look up build IDs */
        VMAQ_NORMALIZE_MAP_FILES    = 1 << 1,   /* fill vmaq_module.map_files */
        VMAQ_NORMALIZE_PIN          = 1 << 2,   /* fail with -ESTALE unless start_time matches */
        VMAQ_NORMALIZE_HTLHASH      = 1 << 3,   /* compute each file's htlhash: vmaq_module_htlhash() */
};

enum vmaq_unknown {
        VMAQ_NORMALIZED = 0,                    /* module and offset are valid */
        VMAQ_UNKNOWN_UNMAPPED,                  /* no mapping covers the address */
        VMAQ_UNKNOWN_ANONYMOUS,                 /* the mapping has no file */
        VMAQ_UNKNOWN_SPECIAL,                   /* a kernel mapping: [heap], [stack], [vvar], ... */
        VMAQ_UNKNOWN_EXITED,                    /* the process exited; no executable file mapping it had covers it */
};

struct vmaq_module {
        const char *path;                       /* as the process sees it; "[vdso]" for the vDSO */
        const char *map_files;                  /* "/proc/PID/map_files/START-END", or NULL */
        const uint8_t *build_id;                /* NULL when build_id_len is 0 */
        size_t build_id_len;
        int deleted;                            /* the file was deleted or replaced */
        int vdso;                               /* the offset is into the vDSO image */
        uint32_t dev_major;
        uint32_t dev_minor;
        uint64_t inode;
};

struct vmaq_result {
        uint64_t address;                       /* as asked */
        enum vmaq_unknown unknown;
        uint32_t module;                        /* index into modules, if VMAQ_NORMALIZED */
        uint64_t offset;                        /* file offset, if VMAQ_NORMALIZED */
};

struct vmaq_normalization {
        pid_t pid;
        uint64_t start_time;                    /* of the process answered about */
        size_t n_results;                       /* one per address, in input order */
        size_t n_modules;                       /* each file once */
        int exited;                             /* answered from the snapshot of the exited process */
};

/*
 * Result @result of @n (0 to n_results - 1) and module @module (0 to
 * n_modules - 1; a result's module field is such an index). NULL for an
 * index out of range or a NULL @n. Valid as long as @n.
 */
const struct vmaq_result *vmaq_result_get(const struct vmaq_normalization *n, size_t result);
const struct vmaq_module *vmaq_module_get(const struct vmaq_normalization *n, size_t module);

/*
 * Normalize @n_addresses addresses of process @pid. With VMAQ_NORMALIZE_PIN
 * the call fails with -ESTALE unless the process's start time is
 * @start_time (take it from an earlier answer). On success *ret holds the
 * answer, to be freed with vmaq_normalization_free().
 *
 * With VMAQ_NORMALIZE_PIN, a process that exited a short while ago (the
 * daemon's --exit-grace) is answered from the daemon's snapshot of its
 * executable file mappings, if it kept one (see vmaq_track()): then
 * exited is set, and an address outside them is VMAQ_UNKNOWN_EXITED.
 */
int vmaq_normalize(struct vmaq_client *client, pid_t pid, const uint64_t *addresses, size_t n_addresses,
                   unsigned flags, uint64_t start_time, struct vmaq_normalization **ret);
void vmaq_normalization_free(struct vmaq_normalization *n);

/*
 * What symbolizers need, for module @module or result @result of @n (the
 * indexes of vmaq_module_get() and vmaq_result_get()). The daemon gives
 * them with build IDs (not with VMAQ_NORMALIZE_NO_BUILD_IDS), for ELF
 * files it can read.
 */
enum vmaq_elf_type {
        VMAQ_ELF_UNKNOWN = 0,                   /* not ELF, not asked for, or the daemon could not tell */
        VMAQ_ELF_EXEC,                          /* ET_EXEC: a program linked to a fixed address */
        VMAQ_ELF_DYN,                           /* ET_DYN: a shared library or position-independent program */
        VMAQ_ELF_OTHER,
};
enum vmaq_elf_type vmaq_module_elf_type(const struct vmaq_normalization *n, size_t module);
/*
 * Where the daemon's side reaches the module's file, when the process is in
 * another mount namespace ("/proc/PID/root/..."), or NULL. Valid as long as @n.
 */
const char *vmaq_module_host_path(const struct vmaq_normalization *n, size_t module);
/* The Go build ID of the module's file, or NULL. Valid as long as @n. */
const char *vmaq_module_go_build_id(const struct vmaq_normalization *n, size_t module);
/*
 * The htlhash of the module's file (with VMAQ_NORMALIZE_HTLHASH): the first
 * 16 bytes of SHA-256 over its first and last 4 KiB and its length, into
 * @ret. 0; -ENODATA when there is none; -EINVAL for a bad index.
 */
#define VMAQ_HTLHASH_SIZE 16
int vmaq_module_htlhash(const struct vmaq_normalization *n, size_t module, uint8_t ret[VMAQ_HTLHASH_SIZE]);
/*
 * A field of the module's package note (systemd's .note.package): "type",
 * "name", "version", "architecture", "os", "osVersion" or "debugInfoUrl".
 * NULL when absent. Valid as long as @n.
 */
const char *vmaq_module_package(const struct vmaq_normalization *n, size_t module, const char *field);
/*
 * The ELF virtual address of a normalized result, the one addr2line and
 * llvm-symbolizer take: its offset, through the PT_LOAD segment whose file
 * bytes cover it. 0 with *ret set; -ENOEXEC the file is not ELF; -ERANGE no
 * PT_LOAD covers the offset; -EIO the daemon could not read the file's
 * headers; -ENODATA not known (not asked for, an older daemon, or an
 * unknown result); -EINVAL a bad index.
 */
int vmaq_result_elf_address(const struct vmaq_normalization *n, size_t result, uint64_t *ret);

/*
 * vmaq_normalize() for the process behind a file descriptor, sent to the
 * daemon with the call: a pidfd (pidfd_open(2)), which names the process
 * whatever pid namespace the caller is in and cannot be mistaken for a
 * later process with its pid (access is checked as for a pid); or an open
 * /proc/PID/maps, which the daemon reads as it is, without checking
 * access: whoever opened it was allowed to. The answer's pid is the
 * process's pid for a pidfd, if the caller is in the daemon's pid
 * namespace (else 0); for a maps fd, pid and start_time are 0, and build
 * IDs only those the kernel gives (Linux 6.11 and later, ioctl backend).
 * VMAQ_NORMALIZE_PIN is refused (-EINVAL). The fd stays the caller's.
 * -EBADF if the daemon finds it is not of that kind.
 */
int vmaq_normalize_pidfd(struct vmaq_client *client, int pidfd, const uint64_t *addresses, size_t n_addresses,
                         unsigned flags, struct vmaq_normalization **ret);
int vmaq_normalize_maps_fd(struct vmaq_client *client, int maps_fd, const uint64_t *addresses, size_t n_addresses,
                           unsigned flags, struct vmaq_normalization **ret);
/* Addresses of the calling process: vmaq_normalize_maps_fd() on /proc/self/maps, which needs no privilege. */
int vmaq_normalize_self(struct vmaq_client *client, const uint64_t *addresses, size_t n_addresses, unsigned flags,
                        struct vmaq_normalization **ret);

/*
 * Ask the daemon to take a snapshot of the executable file mappings of
 * process @pid now, so that vmaq_normalize() with VMAQ_NORMALIZE_PIN can
 * answer for them after the process exits. @start_time 0: whichever
 * process @pid is; else the call fails with -ESTALE unless it is the one
 * that started then. On success *ret_start_time (may be NULL) is the
 * process's start time, to pin later calls with. -EBUSY if the daemon's
 * snapshot memory cannot hold it.
 */
int vmaq_track(struct vmaq_client *client, pid_t pid, uint64_t start_time, uint64_t *ret_start_time);

/* --- ListMappings ---------------------------------------------------------- */

enum {
        VMAQ_LIST_EXEC_ONLY    = 1 << 0,        /* only executable mappings */
        VMAQ_LIST_NO_BUILD_IDS = 1 << 1,        /* do not look up build IDs */
};

struct vmaq_mapping {
        uint64_t start;                         /* inclusive */
        uint64_t end;                           /* exclusive */
        uint64_t offset;                        /* file offset of start */
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        char perms[5];                          /* "r-xp" */
        const char *path;                       /* NULL: no name */
        const char *kind;                       /* "file", "anonymous", "special", "vdso" */
        int deleted;
        const uint8_t *build_id;
        size_t build_id_len;
};

struct vmaq_mappings {
        pid_t pid;
        uint64_t start_time;
        size_t n_mappings;                      /* in address order */
};

/* Mapping @mapping of @m (0 to n_mappings - 1), or NULL when out of range. Valid as long as @m. */
const struct vmaq_mapping *vmaq_mapping_get(const struct vmaq_mappings *m, size_t mapping);

/*
 * List the mappings of process @pid in address order. On success *ret holds
 * the answer, to be freed with vmaq_mappings_free().
 */
int vmaq_list_mappings(struct vmaq_client *client, pid_t pid, unsigned flags, struct vmaq_mappings **ret);
/* The same, or -ESTALE unless the process's start time is @start_time (as VMAQ_NORMALIZE_PIN). */
int vmaq_list_mappings_pinned(struct vmaq_client *client, pid_t pid, unsigned flags, uint64_t start_time,
                              struct vmaq_mappings **ret);
void vmaq_mappings_free(struct vmaq_mappings *m);

/* --- GetStatus ------------------------------------------------------------- */

struct vmaq_status {
        const char *version;
        const char *backend;                    /* "ioctl" or "text" */
        uint64_t uptime_usec;
        uint64_t connections;
        uint64_t connections_max;
        uint64_t proc_cache_size;
        uint64_t proc_cache_max;
        uint64_t proc_cache_hits;
        uint64_t proc_cache_misses;
        uint64_t build_id_cache_size;
        uint64_t build_id_cache_max;
        uint64_t build_id_cache_hits;
        uint64_t build_id_cache_misses;
        uint64_t requests;
        uint64_t errors;
        uint64_t denied;
        /* The limits a shared daemon enforces; 0 from a daemon too old to tell. */
        uint64_t connections_per_user_max;
        uint64_t workers_used;                  /* threads running a request */
        uint64_t workers_max;
        uint64_t memory_used;                   /* bytes held for clients */
        uint64_t memory_max;                    /* the memory budget */
        uint64_t refused_connections;           /* over the total connection limit */
        uint64_t refused_user_connections;      /* over a user's share of connections */
        uint64_t refused_memory;                /* requests over the memory budget */
        uint64_t refused_timeouts;              /* requests past the request timeout */
        uint64_t refused_idle;                  /* connections closed for making no progress */
        /* Snapshots of executable mappings, for exited processes; 0 from a daemon too old to keep them. */
        uint64_t snapshots_held;                /* of cached and exited processes */
        uint64_t snapshots_exited;              /* of exited processes */
        uint64_t snapshot_memory_used;          /* bytes they hold */
        uint64_t snapshot_memory_max;
        /* What one call may hold; 0 from a daemon too old to tell. */
        uint64_t max_addresses;                 /* in one vmaq_normalize() call to the daemon */
        uint64_t max_message_size;              /* bytes of a request */
        uint64_t max_reply_size;                /* bytes of a reply */
};

/* The daemon's state and counters; free *ret with vmaq_status_free(). */
int vmaq_get_status(struct vmaq_client *client, struct vmaq_status **ret);
void vmaq_status_free(struct vmaq_status *s);

#ifdef __cplusplus
}
#endif

#endif
