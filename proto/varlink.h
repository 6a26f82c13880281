/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Varlink messages: one JSON object per message, terminated by a NUL byte
 * on the wire. This module turns a received message (without its NUL) into
 * a call, and formats replies (with their NUL). It does no I/O.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Nesting deeper than this is refused: no vmaqd message needs more than a few levels. */
#define VARLINK_DEPTH_MAX 16

/*
 * The elements of one array of a call's parameters, taken out of the
 * message before json-c builds it: see varlink_call_parse_packed().
 */
typedef struct VarlinkPacked {
        uint64_t *values;                       /* owned by the call; whoever uses them may take them */
        size_t n;
        bool valid;                             /* they were taken out: json-c saw the array as [] */
} VarlinkPacked;

typedef struct VarlinkCall {
        struct json_object *object;             /* the whole message, owned */
        VarlinkPacked packed;
        const char *method;                     /* "interface.Method", points into object */
        struct json_object *parameters;         /* borrowed from object; an empty object if absent */
        bool oneway;
        bool more;
} VarlinkCall;

/*
 * Bounds on what one message may make json-c build, checked while the text
 * is scanned, before json-c allocates anything: its tree costs far more
 * than the text (an empty object, 3 bytes with its comma, costs about 790
 * bytes), so a limit on the size of the message alone does not bound the
 * memory it takes. A value is a string, a number, true, false, null, an
 * object or an array, wherever it is (the message itself is one); an
 * object's keys are not values. 0 means no limit.
 */
typedef struct VarlinkLimits {
        size_t max_values;                      /* scalars and containers in the message */
        size_t max_containers;                  /* objects and arrays, the message included */
        size_t max_array_elements;              /* values directly inside any one array */
        /*
         * Called once the text is scanned and within the limits, before
         * anything is built (NULL: not called): json-c will build
         * @n_values values, and @n_packed more were packed (see
         * varlink_call_parse_packed()). A negative errno refuses the
         * message: the parse fails with it, having built nothing.
         */
        int (*reserve)(void *userdata, size_t n_values, size_t n_packed);
        void *userdata;
} VarlinkLimits;

/*
 * Parse one JSON value of @size bytes at @data, stricter than json-c alone:
 * RFC 8259 grammar (no NaN/Infinity, no leading zeros, no "1."), valid
 * UTF-8 (no overlong forms, no surrogates), no raw control characters in
 * strings, no "\u0000" and no unpaired surrogate escapes, no NUL byte,
 * nesting of at most VARLINK_DEPTH_MAX levels (a scalar inside counts as
 * one), whitespace only around the value, and within @limits (NULL: no
 * limits, for a peer that is trusted, like the daemon to its client).
 *
 * json-c clamps integers silently (2^64 reads as 2^64-1, -2^63-1 as
 * -2^63), so an integer literal outside int64 and uint64 is parsed as a
 * double instead: whoever expects an integer then refuses it.
 *
 * The text is scanned once, in linear time and without allocating, before
 * json-c sees it; a refused message costs no memory. The scan stops at the
 * first value past a limit, so a message refused with -E2BIG may also be
 * malformed further on.
 *
 * Errors: -EBADMSG  not one valid JSON value as above (also @size > INT_MAX)
 *         -E2BIG    more values, containers or elements of one array than
 *                   @limits allows
 *         -ENOMEM
 * Returns the value, owned by the caller, in *ret: NULL for JSON's null.
 */
int varlink_json_parse(const char *data, size_t size, const VarlinkLimits *limits, struct json_object **ret);

/*
 * Read the array at @text, its '[' first, with @size bytes of the message
 * left from there: 0 with *ret_len its length, its ']' included; -EAGAIN
 * when it is not in the form the reader takes; or another negative errno.
 * The reader must take only valid JSON.
 */
typedef int (*VarlinkSpanReader)(void *userdata, const char *text, size_t size, size_t *ret_len);

/*
 * As varlink_json_parse(), for a message whose "parameters" hold an array
 * @key too large to build with json-c: @reader reads it as the scan comes
 * to it, and json-c sees it empty; then *ret_read is true. When the reader
 * does not take it (-EAGAIN), or anything could make json-c see the key
 * differently (as for varlink_call_parse_packed()), the array is scanned
 * and built as any other and *ret_read is false: what the reader read of
 * it is to be ignored. The reader's values are not counted against
 * @limits.
 */
int varlink_json_parse_span(const char *data, size_t size, const VarlinkLimits *limits, const char *key,
                            VarlinkSpanReader reader, void *userdata, struct json_object **ret, bool *ret_read);

/*
 * Parse the message of @size bytes at @data (the NUL not included) with
 * varlink_json_parse() and @limits, then check that it is a call: an
 * object with "method" (required), "parameters", "oneway" and "more", and
 * no other key.
 *
 * Errors: -EBADMSG  not valid JSON, not UTF-8, too deep, trailing bytes,
 *                   or an embedded NUL (see varlink_json_parse())
 *         -E2BIG    over @limits (see varlink_json_parse()): nothing was built
 *         -EPROTO   valid JSON but no valid call: not an object, "method"
 *                   missing or not a string of the form "interface.Method",
 *                   "parameters" neither an object nor null (null is as
 *                   absent), "oneway"/"more" not booleans,
 *                   or any other key (including "upgrade")
 *         -ENOMEM
 * On success call varlink_call_done() to release it. *ret is written only
 * on success.
 */
int varlink_call_parse(const char *data, size_t size, const VarlinkLimits *limits, VarlinkCall *ret);

/*
 * As varlink_call_parse(), and if the value of @packed_key in the call's
 * parameters is an array of integers in 0..UINT64_MAX, they come in
 * ->packed instead of the tree, where the array is empty: one pass over
 * the text, and no json-c object for each element. Whatever could make the
 * tree differ from the text in that key (another "parameters" or
 * @packed_key, a key written with an escape, an element of another kind,
 * an integer beyond 64 bits anywhere) leaves the array to json-c, and
 * ->packed.valid false. The strictness, the limits and the errors are
 * those of varlink_call_parse().
 */
int varlink_call_parse_packed(const char *data, size_t size, const VarlinkLimits *limits, const char *packed_key,
                              VarlinkCall *ret);
/* Release a parsed call and reset it; accepts a zeroed or already released call. */
void varlink_call_done(VarlinkCall *call);

/*
 * An interface name as Varlink defines it: dot-separated reverse-domain
 * labels of letters, digits and '-', at least two of them, each starting
 * and ending with a letter or digit, the first starting with a letter.
 */
bool varlink_interface_name_is_valid(const char *name);
/* A member name (method, error, type): an uppercase letter, then letters and digits. */
bool varlink_member_name_is_valid(const char *name);
/* "interface.Member" with both parts valid as above (methods and errors). */
bool varlink_qualified_name_is_valid(const char *name);

/*
 * Format a reply {"parameters": @parameters} (plus "continues": true when
 * @continues) into a newly allocated buffer, NUL-terminated as on the wire:
 * *ret_size counts the NUL. Takes ownership of @parameters (NULL means {}),
 * also on failure. The text is always valid UTF-8: a byte of a string that
 * is not part of a valid UTF-8 sequence (a path can be any bytes) is sent
 * as U+FFFD.
 *
 * Errors: -EINVAL  @parameters is not an object
 *         -ENOMEM
 */
int varlink_reply_format(struct json_object *parameters, bool continues, char **ret, size_t *ret_size);

/*
 * Format an error reply {"error": @error, "parameters": @parameters}, as
 * above. Takes ownership of @parameters (NULL means {}), also on failure.
 *
 * Errors: -EINVAL  @error is not "interface.Name", or @parameters is not an object
 *         -ENOMEM
 */
int varlink_error_format(const char *error, struct json_object *parameters, char **ret, size_t *ret_size);
