/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-writer.h"

#define SIZE_DEFAULT 256U

size_t utf8_sequence_len(const unsigned char *s, size_t n) {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (n == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;

        /* RFC 3629: the second byte's range rules out overlong forms, surrogates and > U+10FFFF. */
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                if (s[0] == 0xe0)
                        lo = 0xa0;
                else if (s[0] == 0xed)
                        hi = 0x9f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                if (s[0] == 0xf0)
                        lo = 0x90;
                else if (s[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;

        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return len;
}

void json_writer_init(JsonWriter *w, size_t size_hint) {
        *w = (JsonWriter) {
                .first[0] = true,
        };
        w->allocated = size_hint > 0 ? size_hint : SIZE_DEFAULT;
        w->data = malloc(w->allocated);
        if (!w->data) {
                w->allocated = 0;
                w->error = -ENOMEM;
        }
}

void json_writer_done(JsonWriter *w) {
        free(w->data);
        *w = (JsonWriter) {};
}

/* Room for @n more bytes: a pointer to write them at, or NULL after a failure. */
static char *reserve(JsonWriter *w, size_t n) {
        size_t need, a;
        char *p;

        if (w->error < 0)
                return NULL;
        if (__builtin_add_overflow(w->size, n, &need)) {
                w->error = -ENOMEM;
                return NULL;
        }
        if (need > w->allocated) {
                a = MAX(need, w->allocated * 2);
                p = realloc(w->data, a);
                if (!p) {
                        w->error = -ENOMEM;
                        return NULL;
                }
                w->data = p;
                w->allocated = a;
        }
        return w->data + w->size;
}

static void append(JsonWriter *w, const char *s, size_t n) {
        char *p = reserve(w, n);

        if (p) {
                memcpy(p, s, n);
                w->size += n;
        }
}

/* Before any value: the comma that separates it from the one before, unless a key's colon did. */
static void separate(JsonWriter *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (!w->first[w->depth])
                append(w, ",", 1);
        w->first[w->depth] = false;
}

static void open_container(JsonWriter *w, char c) {
        separate(w);
        if (w->depth >= JSON_WRITER_DEPTH_MAX) {
                w->error = w->error ?: -EINVAL;
                return;
        }
        append(w, &c, 1);
        w->first[++w->depth] = true;
}

static void close_container(JsonWriter *w, char c) {
        if (w->depth == 0 || w->after_key) {
                w->error = w->error ?: -EINVAL;
                return;
        }
        w->depth--;
        append(w, &c, 1);
}

void json_writer_object_open(JsonWriter *w) {
        open_container(w, '{');
}

void json_writer_object_close(JsonWriter *w) {
        close_container(w, '}');
}

void json_writer_array_open(JsonWriter *w) {
        open_container(w, '[');
}

void json_writer_array_close(JsonWriter *w) {
        close_container(w, ']');
}

void json_writer_key(JsonWriter *w, const char *key) {
        size_t n = strlen(key);
        char *p;

        separate(w);
        p = reserve(w, n + 3);
        if (!p)
                return;
        p[0] = '"';
        memcpy(p + 1, key, n);
        p[n + 1] = '"';
        p[n + 2] = ':';
        w->size += n + 3;
        w->after_key = true;
}

void json_writer_string(JsonWriter *w, const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(s);
        char *p, *q;

        separate(w);
        /* Each byte becomes at most six ("\u001f"), plus the quotes. */
        p = reserve(w, 6 * n + 2);
        if (!p)
                return;

        q = p;
        *q++ = '"';
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                size_t run = i, len;

                /* The common case: a run of bytes that go out as they are. */
                while (run < n && (unsigned char) s[run] >= 0x20 && (unsigned char) s[run] < 0x80 &&
                       s[run] != '"' && s[run] != '\\')
                        run++;
                if (run > i) {
                        memcpy(q, s + i, run - i);
                        q += run - i;
                        i = run;
                        continue;
                }

                if (c >= 0x80) {
                        len = utf8_sequence_len((const unsigned char *) s + i, n - i);
                        if (len == 0) {
                                memcpy(q, "\xef\xbf\xbd", 3);
                                q += 3;
                                i++;
                        } else {
                                memcpy(q, s + i, len);
                                q += len;
                                i += len;
                        }
                        continue;
                }

                *q++ = '\\';
                switch (c) {
                case '"':
                case '\\':
                        *q++ = (char) c;
                        break;
                case '\b':
                        *q++ = 'b';
                        break;
                case '\f':
                        *q++ = 'f';
                        break;
                case '\n':
                        *q++ = 'n';
                        break;
                case '\r':
                        *q++ = 'r';
                        break;
                case '\t':
                        *q++ = 't';
                        break;
                default:
                        memcpy(q, "u00", 3);
                        q[3] = hex[c >> 4];
                        q[4] = hex[c & 0xf];
                        q += 5;
                }
                i++;
        }
        *q++ = '"';
        w->size += (size_t) (q - p);
}

/* The decimal digits of @u, written backwards from @end, two at a time; returns where they begin. */
static char *format_u64(char *end, uint64_t u) {
        static const char pairs[] =
                "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                "8081828384858687888990919293949596979899";

        while (u >= 100) {
                unsigned k = (unsigned) (u % 100) * 2;

                u /= 100;
                end -= 2;
                end[0] = pairs[k];
                end[1] = pairs[k + 1];
        }
        if (u >= 10) {
                end -= 2;
                end[0] = pairs[u * 2];
                end[1] = pairs[u * 2 + 1];
        } else
                *--end = (char) ('0' + u);
        return end;
}

char *json_format_u64(char *p, uint64_t u) {
        char buf[20], *q = format_u64(buf + sizeof(buf), u);
        size_t n = (size_t) (buf + sizeof(buf) - q);

        memcpy(p, q, n);
        return p + n;
}

char *json_writer_value_begin(JsonWriter *w, size_t max) {
        separate(w);
        return reserve(w, max);
}

void json_writer_value_end(JsonWriter *w, char *end) {
        if (w->error >= 0)
                w->size = (size_t) (end - w->data);
}

void json_writer_u64(JsonWriter *w, uint64_t u) {
        char buf[20], *p;

        separate(w);
        p = format_u64(buf + sizeof(buf), u);
        append(w, p, (size_t) (buf + sizeof(buf) - p));
}

void json_writer_i64(JsonWriter *w, int64_t i) {
        char buf[21], *p;

        separate(w);
        /* The magnitude as unsigned: -INT64_MIN does not fit in int64_t. */
        p = format_u64(buf + sizeof(buf), i < 0 ? -(uint64_t) i : (uint64_t) i);
        if (i < 0)
                *--p = '-';
        append(w, p, (size_t) (buf + sizeof(buf) - p));
}

void json_writer_bool(JsonWriter *w, bool b) {
        separate(w);
        if (b)
                append(w, "true", 4);
        else
                append(w, "false", 5);
}

void json_writer_null(JsonWriter *w) {
        separate(w);
        append(w, "null", 4);
}

void json_writer_hex(JsonWriter *w, const uint8_t *bytes, size_t n) {
        static const char hex[] = "0123456789abcdef";
        char *p;

        separate(w);
        if (n > (SIZE_MAX - 2) / 2) {
                w->error = w->error ?: -ENOMEM;
                return;
        }
        p = reserve(w, 2 * n + 2);
        if (!p)
                return;
        *p++ = '"';
        for (size_t i = 0; i < n; i++) {
                *p++ = hex[bytes[i] >> 4];
                *p++ = hex[bytes[i] & 0xf];
        }
        *p = '"';
        w->size += 2 * n + 2;
}

int json_writer_finish(JsonWriter *w, char **ret, size_t *ret_size) {
        int r;

        if (w->error >= 0 && (w->depth != 0 || w->after_key))
                w->error = -EINVAL;
        append(w, "", 1);
        r = w->error;
        if (r < 0) {
                json_writer_done(w);
                return r;
        }

        *ret = TAKE_PTR(w->data);
        *ret_size = w->size;
        json_writer_done(w);
        return 0;
}
