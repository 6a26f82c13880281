/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging of the service layer: one line per message on stderr. When stderr
 * is the journal ($JOURNAL_STREAM names its device and inode), each line is
 * prefixed with its syslog priority as "<N>" so that the journal keeps the
 * level; on a terminal or a file, with the program name ("vmaqd: ").
 * Messages above @max_level are dropped. The core never logs.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/*
 * Log at @level when it is at most @max_level. @error (a negative errno or
 * 0) is made errno for "%m". Returns @error, so that
 * "return log_error_errno(...)" propagates it.
 */
int log_internal(int max_level, int level, int error, const char *format, ...)
        __attribute__((__format__(printf, 4, 5)));

/* Whether stderr is the journal's stream, as checked once at the first call. */
bool log_to_journal(void);

/* "debug", "info", "notice", "warning", "err", "crit", "alert", "emerg" or a number 0-7. */
int log_level_from_string(const char *s);

#define log_full_errno(max, level, error, ...) log_internal((max), (level), (error), __VA_ARGS__)
#define log_debug(max, ...)     log_internal((max), LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(max, ...)      log_internal((max), LOG_INFO, 0, __VA_ARGS__)
#define log_notice(max, ...)    log_internal((max), LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(max, ...)   log_internal((max), LOG_WARNING, 0, __VA_ARGS__)
#define log_error(max, ...)     log_internal((max), LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(max, error, ...)   log_internal((max), LOG_DEBUG, (error), __VA_ARGS__)
#define log_warning_errno(max, error, ...) log_internal((max), LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(max, error, ...)   log_internal((max), LOG_ERR, (error), __VA_ARGS__)

/*
 * At most @burst messages per @interval_usec through one RateLimit, from
 * any thread: what a client can trigger at will (refusals, denials) must not
 * flood the journal.
 */
typedef struct RateLimit {
        pthread_mutex_t lock;
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin;
        unsigned n;
        unsigned suppressed;
} RateLimit;

#define RATELIMIT_INIT(interval, b) \
        ((RateLimit) { .lock = PTHREAD_MUTEX_INITIALIZER, .interval_usec = (interval), .burst = (b) })

/* Whether to log now. When so, *ret_suppressed is the number of messages dropped before this one. */
bool ratelimit_below(RateLimit *rl, unsigned *ret_suppressed);

/* Log through @rl, with the count of suppressed messages appended when there were any. */
#define log_ratelimit(rl, max, level, error, fmt, ...) ({                                       \
        unsigned _suppressed_;                                                                  \
        int _e_ = (error);                                                                      \
        if (((level) <= (max)) && ratelimit_below((rl), &_suppressed_))                         \
                log_internal((max), (level), _e_, fmt "%s%.0u%s", ##__VA_ARGS__,                 \
                             _suppressed_ ? " (" : "", _suppressed_,                            \
                             _suppressed_ ? " similar messages suppressed)" : "");              \
        _e_;                                                                                    \
})
