/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small JSON writer for the replies that carry thousands of entries:
 * it appends text straight to one growing buffer, without building a
 * tree. Commas are placed by the writer; keys are the caller's constants.
 * Strings are escaped as RFC 8259 requires, and a byte that is not part of
 * a valid UTF-8 sequence is written as U+FFFD, so the text is always valid
 * UTF-8 whatever bytes a path holds. Integers are exact over the whole
 * 64-bit range.
 *
 * Errors are sticky: after a failed allocation every call does nothing,
 * and json_writer_finish() reports it. The output is what json-c writes
 * with JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Objects and arrays nested deeper than this are a bug of the caller. */
#define JSON_WRITER_DEPTH_MAX 8

typedef struct JsonWriter {
        char *data;
        size_t size, allocated;
        int error;                              /* the first failure, sticky */
        unsigned depth;
        bool first[JSON_WRITER_DEPTH_MAX + 1];  /* nothing written yet in this container */
        bool after_key;                         /* the next value is a key's */
} JsonWriter;

/* Start with room for @size_hint bytes (0: a small default). */
void json_writer_init(JsonWriter *w, size_t size_hint);
void json_writer_done(JsonWriter *w);

void json_writer_object_open(JsonWriter *w);
void json_writer_object_close(JsonWriter *w);
void json_writer_array_open(JsonWriter *w);
void json_writer_array_close(JsonWriter *w);
/* A key of the innermost object: a constant of plain ASCII that needs no escape. */
void json_writer_key(JsonWriter *w, const char *key);

void json_writer_string(JsonWriter *w, const char *s);
void json_writer_u64(JsonWriter *w, uint64_t u);
void json_writer_i64(JsonWriter *w, int64_t i);
void json_writer_bool(JsonWriter *w, bool b);
void json_writer_null(JsonWriter *w);
/* @n bytes as a string of 2 * @n lowercase hex digits. */
void json_writer_hex(JsonWriter *w, const uint8_t *bytes, size_t n);

/*
 * A value the caller writes itself, of at most @max bytes of valid JSON:
 * json_writer_value_begin() places the comma and returns where to write
 * (NULL after a failure), json_writer_value_end() takes the end of what
 * was written. For values written millions of times, like a Normalize
 * result.
 */
char *json_writer_value_begin(JsonWriter *w, size_t max);
void json_writer_value_end(JsonWriter *w, char *end);
/* The decimal digits of @u at @p; returns their end. */
char *json_format_u64(char *p, uint64_t u);

/*
 * Terminate the text with a NUL, as on the wire, and hand it over:
 * *ret_size counts the NUL. Returns the sticky error, if any (-ENOMEM, or
 * -EINVAL for unbalanced containers), and then frees the text.
 */
int json_writer_finish(JsonWriter *w, char **ret, size_t *ret_size);

/* The length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 if there is none. */
size_t utf8_sequence_len(const unsigned char *s, size_t n);
