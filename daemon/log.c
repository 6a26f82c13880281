/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "parse-util.h"

static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool stderr_is_journal;

static void check_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int n = 0;

        /* systemd sets "DEV:INO" of the stream it connected to stderr; a child
         * that inherited the variable but not the stream must not use it. */
        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != '\0')
                return;
        if (fstat(STDERR_FILENO, &st) < 0)
                return;
        stderr_is_journal = (unsigned long long) st.st_dev == dev &&
                            (unsigned long long) st.st_ino == ino;
}

bool log_to_journal(void) {
        (void) pthread_once(&journal_once, check_journal);
        return stderr_is_journal;
}

int log_internal(int max_level, int level, int error, const char *format, ...) {
        char buf[2048];
        va_list ap;

        if (level > max_level)
                return error;

        /* One write per line, so that concurrent writers do not interleave. */
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        if (log_to_journal())
                fprintf(stderr, "<%d>%s\n", level, buf);
        else
                fprintf(stderr, "%s: %s\n", program_invocation_short_name, buf);

        return error;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };
        uint64_t v;

        for (int i = 0; i <= LOG_DEBUG; i++)
                if (strcmp(s, names[i]) == 0)
                        return i;
        if (parse_u64(s, 10, &v) >= 0 && v <= LOG_DEBUG)
                return (int) v;
        return -EINVAL;
}

bool ratelimit_below(RateLimit *rl, unsigned *ret_suppressed) {
        struct timespec ts;
        uint64_t now;
        bool ok;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;

        pthread_mutex_lock(&rl->lock);
        if (rl->begin == 0 || now - rl->begin >= rl->interval_usec) {
                rl->begin = now;
                rl->n = 0;
        }
        ok = rl->n < rl->burst;
        if (ok) {
                rl->n++;
                *ret_suppressed = rl->suppressed;
                rl->suppressed = 0;
        } else
                rl->suppressed++;
        pthread_mutex_unlock(&rl->lock);
        return ok;
}
