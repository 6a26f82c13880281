/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small generic helpers: cleanup attributes, ownership transfer and a few
 * arithmetic macros. Nothing here knows about vmaqd.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((__cleanup__(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _unused_ __attribute__((__unused__))
#define _pure_ __attribute__((__pure__))
#define _public_ __attribute__((__visibility__("default")))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Whether @x equals one of the following values. */
#define IN_SET(x, ...) ({                                               \
        bool _found_ = false;                                           \
        const typeof(x) _values_[] = { __VA_ARGS__ };                   \
        for (size_t _i_ = 0; _i_ < ELEMENTSOF(_values_); _i_++)         \
                if ((x) == _values_[_i_]) {                             \
                        _found_ = true;                                 \
                        break;                                          \
                }                                                       \
        _found_;                                                        \
})

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Round @x up to a multiple of @a, a power of two. */
#define ALIGN_POW2(x, a) (((x) + ((a) - 1)) & ~((typeof(x))(a) - 1))

/* Hand over ownership: return the value and reset the variable to "none". */
#define TAKE_GENERIC(var, null) ({              \
        typeof(var) *_pvar_ = &(var);           \
        typeof(var) _val_ = *_pvar_;            \
        *_pvar_ = (null);                       \
        _val_;                                  \
})
#define TAKE_PTR(p) TAKE_GENERIC(p, NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, -EBADF)

/*
 * DEFINE_CLEANUP(Foo *, foo_free) defines foo_freep(), usable with
 * _cleanup_(foo_freep). The destructor must accept NULL.
 */
#define DEFINE_CLEANUP(type, func)                      \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        func(*p);                       \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}

/* Close @fd if it is valid, keeping errno intact; always returns -EBADF. */
/* free() @p and return NULL, for "p = mfree(p)". */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}

/* Turn a libc "-1 and errno" failure into a negative errno, never 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
