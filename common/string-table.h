/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <string.h>

/*
 * DEFINE_STRING_TABLE_LOOKUP(foo, Foo) defines foo_to_string() and
 * foo_from_string() over a table "foo_table" indexed by the enum Foo, whose
 * last values are _FOO_MAX and _FOO_INVALID (-EINVAL). from_string returns
 * -EINVAL for an unknown string, to_string NULL for an out-of-range value.
 */
#define DEFINE_STRING_TABLE_LOOKUP(name, type)                                  \
        const char *name##_to_string(type v) {                                  \
                if ((int) v < 0 || (size_t) v >= sizeof(name##_table) / sizeof(name##_table[0])) \
                        return NULL;                                            \
                return name##_table[v];                                         \
        }                                                                       \
        type name##_from_string(const char *s) {                                \
                for (size_t i = 0; i < sizeof(name##_table) / sizeof(name##_table[0]); i++) \
                        if (name##_table[i] && strcmp(s, name##_table[i]) == 0) \
                                return (type) i;                                \
                return (type) -EINVAL;                                          \
        }
