/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmaqd: normalizes process addresses to (file, file offset, build ID) for
 * clients on a Unix socket, speaking Varlink. See vmaqd --help and
 * docs/PROTOCOL.md.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "parse-util.h"

static const char *arg_socket = DEFAULT_SOCKET_PATH;
static VmaBackend arg_backend = VMA_BACKEND_AUTO;
static int arg_log_level = LOG_INFO;
static uint64_t arg_max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
static uint64_t arg_max_reply_size = DEFAULT_MAX_REPLY_SIZE;
static uint64_t arg_max_addresses = DEFAULT_MAX_ADDRESSES;
static uint64_t arg_max_connections = DEFAULT_MAX_CONNECTIONS;
static uint64_t arg_max_connections_per_user = DEFAULT_MAX_CONNECTIONS_PER_USER;
static uint64_t arg_max_memory = DEFAULT_MAX_MEMORY;
static uint64_t arg_request_timeout_usec = DEFAULT_REQUEST_TIMEOUT_USEC;
static uint64_t arg_cache_size = DEFAULT_PROC_CACHE_SIZE;
static uint64_t arg_build_id_cache_size = DEFAULT_BUILD_ID_CACHE_SIZE;
static uint64_t arg_max_build_id_reads = DEFAULT_MAX_BUILD_ID_READS;
static uint64_t arg_idle_timeout_usec = DEFAULT_IDLE_TIMEOUT_USEC;
static uint64_t arg_workers = DEFAULT_WORKERS;
static uint64_t arg_exit_grace_usec = DEFAULT_EXIT_GRACE_USEC;
static uint64_t arg_max_snapshot_memory = DEFAULT_MAX_SNAPSHOT_MEMORY;
static const char *arg_group = DEFAULT_GROUP;

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Serve the normalization of process addresses to file offsets and build IDs\n"
               "over Varlink on a Unix socket.\n\n"
               "  -h --help                  Show this help\n"
               "     --version               Show the version\n"
               "     --socket=PATH           Listen on PATH (default: %s), unless systemd\n"
               "                             passes a socket\n"
               "     --backend=BACKEND       auto, ioctl or text (default: auto)\n"
               "     --log-level=LEVEL       debug, info, notice, warning, err (default: info)\n"
               "     --group=NAME            Members may query any process (default: %s;\n"
               "                             \"\" for none)\n"
               "     --max-message-size=N    Largest request in bytes (default: %u)\n"
               "     --max-reply-size=N      Largest reply in bytes; ListMappings answers in\n"
               "                             parts of this size (default: %u)\n"
               "     --max-addresses=N       Most addresses in one Normalize call (default: %u)\n"
               "     --max-connections=N     Most clients at once (default: %u)\n"
               "     --max-connections-per-user=N\n"
               "                             Most of them from one unprivileged user\n"
               "                             (default: %u; privileged: half of all)\n"
               "     --max-memory=N          Bytes held for all clients' requests and\n"
               "                             replies; a user gets a quarter, root half\n"
               "                             (default: %u)\n"
               "     --cache-size=N          Most processes kept open (default: %u, bounded\n"
               "                             by RLIMIT_NOFILE)\n"
               "     --build-id-cache-size=N Most files whose build ID is kept (default: %u)\n"
               "     --max-build-id-reads=N  Most files one call reads for build IDs; the\n"
               "                             rest are marked skipped (default: %u)\n"
               "     --idle-timeout=SEC      Close connections idle this long, or this long\n"
               "                             inside one message or reading replies\n"
               "                             (default: %u)\n"
               "     --request-timeout=SEC   Answer TimedOut to a request still running\n"
               "                             after this long (default: %u)\n"
               "     --workers=N             Threads that serve requests; a user gets a\n"
               "                             quarter of them, root half (default: %u)\n"
               "     --exit-grace=SEC        Answer for an exited process from the snapshot\n"
               "                             of its executable mappings this long; 0: never\n"
               "                             (default: %u)\n"
               "     --max-snapshot-memory=N Bytes all snapshots may hold; the oldest\n"
               "                             exited ones go first (default: %u)\n",
               program_invocation_short_name, DEFAULT_SOCKET_PATH, DEFAULT_GROUP,
               DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_REPLY_SIZE, DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_CONNECTIONS,
               DEFAULT_MAX_CONNECTIONS_PER_USER, DEFAULT_MAX_MEMORY,
               DEFAULT_PROC_CACHE_SIZE, DEFAULT_BUILD_ID_CACHE_SIZE, DEFAULT_MAX_BUILD_ID_READS,
               DEFAULT_IDLE_TIMEOUT_USEC / 1000000U, DEFAULT_REQUEST_TIMEOUT_USEC / 1000000U,
               DEFAULT_WORKERS, DEFAULT_EXIT_GRACE_USEC / 1000000U, DEFAULT_MAX_SNAPSHOT_MEMORY);
}

/* A count option: 1 .. @max. */
static int parse_count(const char *name, const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v;
        int r;

        r = parse_u64(s, 10, &v);
        if (r < 0 || v == 0 || v > max) {
                log_error(LOG_DEBUG, "Invalid value for --%s: '%s' (1..%llu).", name, s, (unsigned long long) max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SOCKET,
                ARG_BACKEND,
                ARG_LOG_LEVEL,
                ARG_GROUP,
                ARG_MAX_MESSAGE_SIZE,
                ARG_MAX_REPLY_SIZE,
                ARG_MAX_ADDRESSES,
                ARG_MAX_CONNECTIONS,
                ARG_MAX_CONNECTIONS_PER_USER,
                ARG_MAX_MEMORY,
                ARG_REQUEST_TIMEOUT,
                ARG_CACHE_SIZE,
                ARG_BUILD_ID_CACHE_SIZE,
                ARG_MAX_BUILD_ID_READS,
                ARG_IDLE_TIMEOUT,
                ARG_WORKERS,
                ARG_EXIT_GRACE,
                ARG_MAX_SNAPSHOT_MEMORY,
        };
        static const struct option options[] = {
                { "help",                no_argument,       NULL, 'h' },
                { "version",             no_argument,       NULL, ARG_VERSION },
                { "socket",              required_argument, NULL, ARG_SOCKET },
                { "backend",             required_argument, NULL, ARG_BACKEND },
                { "log-level",           required_argument, NULL, ARG_LOG_LEVEL },
                { "group",               required_argument, NULL, ARG_GROUP },
                { "max-message-size",    required_argument, NULL, ARG_MAX_MESSAGE_SIZE },
                { "max-reply-size",      required_argument, NULL, ARG_MAX_REPLY_SIZE },
                { "max-addresses",       required_argument, NULL, ARG_MAX_ADDRESSES },
                { "max-connections",     required_argument, NULL, ARG_MAX_CONNECTIONS },
                { "max-connections-per-user", required_argument, NULL, ARG_MAX_CONNECTIONS_PER_USER },
                { "max-memory",          required_argument, NULL, ARG_MAX_MEMORY },
                { "request-timeout",     required_argument, NULL, ARG_REQUEST_TIMEOUT },
                { "cache-size",          required_argument, NULL, ARG_CACHE_SIZE },
                { "build-id-cache-size", required_argument, NULL, ARG_BUILD_ID_CACHE_SIZE },
                { "max-build-id-reads",  required_argument, NULL, ARG_MAX_BUILD_ID_READS },
                { "idle-timeout",        required_argument, NULL, ARG_IDLE_TIMEOUT },
                { "workers",             required_argument, NULL, ARG_WORKERS },
                { "exit-grace",          required_argument, NULL, ARG_EXIT_GRACE },
                { "max-snapshot-memory", required_argument, NULL, ARG_MAX_SNAPSHOT_MEMORY },
                {}
        };
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
                        return 0;
                case ARG_SOCKET:
                        if (optarg[0] != '/') {
                                log_error(LOG_DEBUG, "--socket needs an absolute path.");
                                return -EINVAL;
                        }
                        arg_socket = optarg;
                        break;
                case ARG_BACKEND:
                        arg_backend = vma_backend_from_string(optarg);
                        if (arg_backend < 0) {
                                log_error(LOG_DEBUG, "Unknown backend '%s'.", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_LOG_LEVEL:
                        arg_log_level = log_level_from_string(optarg);
                        if (arg_log_level < 0) {
                                log_error(LOG_DEBUG, "Unknown log level '%s'.", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_GROUP:
                        arg_group = optarg;
                        break;
                case ARG_MAX_MESSAGE_SIZE:
                        /* Leaves headroom below INT32_MAX for buffer arithmetic. */
                        r = parse_count("max-message-size", optarg, UINT64_C(1) << 30, &arg_max_message_size);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAX_REPLY_SIZE:
                        /* At least what the largest single mapping or error takes. */
                        r = parse_count("max-reply-size", optarg, UINT64_C(1) << 30, &arg_max_reply_size);
                        if (r < 0)
                                return r;
                        if (arg_max_reply_size < 65536) {
                                log_error(LOG_DEBUG, "--max-reply-size must be at least 65536.");
                                return -EINVAL;
                        }
                        break;
                case ARG_MAX_ADDRESSES:
                        r = parse_count("max-addresses", optarg, UINT32_MAX, &arg_max_addresses);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAX_CONNECTIONS:
                        r = parse_count("max-connections", optarg, 65536, &arg_max_connections);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAX_CONNECTIONS_PER_USER:
                        r = parse_count("max-connections-per-user", optarg, 65536, &arg_max_connections_per_user);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAX_MEMORY:
                        r = parse_count("max-memory", optarg, UINT64_C(1) << 40, &arg_max_memory);
                        if (r < 0)
                                return r;
                        break;
                case ARG_REQUEST_TIMEOUT:
                        r = parse_count("request-timeout", optarg, 7 * 24 * 3600, &v);
                        if (r < 0)
                                return r;
                        arg_request_timeout_usec = v * 1000000U;
                        break;
                case ARG_CACHE_SIZE:
                        r = parse_count("cache-size", optarg, 1U << 20, &arg_cache_size);
                        if (r < 0)
                                return r;
                        break;
                case ARG_BUILD_ID_CACHE_SIZE:
                        r = parse_count("build-id-cache-size", optarg, 1U << 24, &arg_build_id_cache_size);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAX_BUILD_ID_READS:
                        r = parse_count("max-build-id-reads", optarg, 1U << 20, &arg_max_build_id_reads);
                        if (r < 0)
                                return r;
                        break;
                case ARG_IDLE_TIMEOUT:
                        r = parse_count("idle-timeout", optarg, 7 * 24 * 3600, &v);
                        if (r < 0)
                                return r;
                        arg_idle_timeout_usec = v * 1000000U;
                        break;
                case ARG_WORKERS:
                        r = parse_count("workers", optarg, 1024, &arg_workers);
                        if (r < 0)
                                return r;
                        break;
                case ARG_EXIT_GRACE:
                        /* 0 turns it off: no count, but the same range and rules. */
                        if (strcmp(optarg, "0") == 0)
                                v = 0;
                        else {
                                r = parse_count("exit-grace", optarg, 7 * 24 * 3600, &v);
                                if (r < 0)
                                        return r;
                        }
                        arg_exit_grace_usec = v * 1000000U;
                        break;
                case ARG_MAX_SNAPSHOT_MEMORY:
                        r = parse_count("max-snapshot-memory", optarg, UINT64_C(1) << 40, &arg_max_snapshot_memory);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return -EINVAL;
                }

        if (optind < argc) {
                log_error(LOG_DEBUG, "Unexpected argument '%s', see --help.", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ManagerConfig config;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : EXIT_SUCCESS;

        /* Writes to clients that went away fail with EPIPE; nothing should kill us. */
        (void) signal(SIGPIPE, SIG_IGN);

        config = (ManagerConfig) {
                .socket_path = arg_socket,
                .backend = arg_backend,
                .log_level = arg_log_level,
                .max_message_size = arg_max_message_size,
                .max_reply_size = arg_max_reply_size,
                .max_addresses = arg_max_addresses,
                .max_connections = arg_max_connections,
                .max_connections_per_user = MIN(arg_max_connections_per_user, arg_max_connections),
                .max_memory = arg_max_memory,
                .request_timeout_usec = arg_request_timeout_usec,
                .proc_cache_size = arg_cache_size,
                .build_id_cache_size = arg_build_id_cache_size,
                .max_build_id_reads = arg_max_build_id_reads,
                .idle_timeout_usec = arg_idle_timeout_usec,
                .workers = arg_workers,
                .exit_grace_usec = arg_exit_grace_usec,
                .max_snapshot_memory = arg_max_snapshot_memory,
                .group = arg_group,
                .socket_mode = DEFAULT_SOCKET_MODE,
        };

        r = manager_new(&m, &config);
        if (r < 0)
                return EXIT_FAILURE;
        r = manager_listen(m);
        if (r < 0)
                return EXIT_FAILURE;
        r = manager_run(m);
        if (manager_stop_workers(m) < 0) {
                /* A request stuck in the kernel (a FUSE file that never answers) may not hold up the exit. */
                fflush(stderr);
                _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
