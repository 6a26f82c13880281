/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check-run.h"
#include "json-writer.h"
#include "macro.h"
#include "varlink.h"
#include "vmaq-proto.h"

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

/* Parse test input the way the daemon does; the input must be valid. */
static struct json_object *parse(const char *text) {
        struct json_object *o = NULL;
        int r;

        r = varlink_json_parse(text, strlen(text), NULL, &o);
        ck_assert_msg(r == 0, "'%s': %d", text, r);
        return o;
}

static const char *plain(struct json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* The reply message @msg (NUL included in @size) is {"parameters": @expected_parameters}. Frees @msg. */
static void assert_reply_message(char *msg_in, size_t size, const char *expected_parameters) {
        _cleanup_free_ char *msg = msg_in, *expected = NULL;

        ck_assert_ptr_nonnull(msg);
        ck_assert_int_ge(asprintf(&expected, "{\"parameters\":%s}", expected_parameters), 0);
        ck_assert_str_eq(msg, expected);
        ck_assert_uint_eq(size, strlen(expected) + 1);
        ck_assert_int_eq(msg[size - 1], '\0');
}

/* Format @parameters as a reply and compare the whole message, NUL included. */
static void assert_reply(struct json_object *parameters, const char *expected_parameters) {
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(varlink_reply_format(parameters, false, &msg, &size), 0);
        assert_reply_message(msg, size, expected_parameters);
}

/* --- varlink_call_parse: valid calls ------------------------------------- */

static const struct {
        const char *text;
        const char *method;
        const char *parameters;
        bool oneway, more;
} call_valid_vectors[] = {
        { "{\"method\":\"io.vmaq.GetStatus\"}", "io.vmaq.GetStatus", "{}", false, false },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[4096]}}",
          "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[4096]}", false, false },
        { "{\"method\":\"org.varlink.service.GetInfo\",\"oneway\":true}",
          "org.varlink.service.GetInfo", "{}", true, false },
        { "{\"method\":\"io.vmaq.GetStatus\",\"more\":true,\"parameters\":{}}", "io.vmaq.GetStatus", "{}", false, true },
        { "{\"method\":\"io.vmaq.GetStatus\",\"oneway\":false,\"more\":false}", "io.vmaq.GetStatus", "{}", false, false },
        { " \r\n\t{\"parameters\":{},\"method\":\"io.vmaq.GetStatus\"}\n ", "io.vmaq.GetStatus", "{}", false, false },
        { "{\"method\":\"a-b.c1.d--e.X9\"}", "a-b.c1.d--e.X9", "{}", false, false },
        /* null parameters are as none. */
        { "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":null}", "io.vmaq.GetStatus", "{}", false, false },
        /* A valid surrogate pair, UTF-8, escapes, and integers json-c would clamp. */
        { "{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\ud83d\\ude00 \xc3\xa9 \\\"\\/\\n\",\"a\":[-0,1.5e-3]}}",
          "io.vmaq.X", "{\"s\":\"\xf0\x9f\x98\x80 \xc3\xa9 \\\"/\\n\",\"a\":[0,1.5e-3]}", false, false },
        { "{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":18446744073709551616,\"b\":-9223372036854775809}}",
          "io.vmaq.X", "{\"a\":18446744073709551616.0,\"b\":-9223372036854775809.0}", false, false },
};

START_TEST(test_call_parse_valid) {
        VarlinkCall call = {};

        ck_assert_int_eq(varlink_call_parse(call_valid_vectors[_i].text, strlen(call_valid_vectors[_i].text), NULL,
                                            &call), 0);
        ck_assert_str_eq(call.method, call_valid_vectors[_i].method);
        ck_assert_str_eq(plain(call.parameters), call_valid_vectors[_i].parameters);
        ck_assert_int_eq(call.oneway, call_valid_vectors[_i].oneway);
        ck_assert_int_eq(call.more, call_valid_vectors[_i].more);
        ck_assert(json_object_is_type(call.object, json_type_object));

        varlink_call_done(&call);
        ck_assert_ptr_null(call.object);
        ck_assert_ptr_null(call.method);
        varlink_call_done(&call);       /* twice is fine */
}
END_TEST

/* --- varlink_call_parse: malformed messages ------------------------------ */

#define V(s) s, sizeof(s) - 1           /* a literal with its exact length, NULs included */

static const struct {
        const char *text;
        size_t size;
        int r;
} call_invalid_vectors[] = {
        /* Not JSON, or not all of it. */
        { V(""),                                                        -EBADMSG },
        { V("   "),                                                     -EBADMSG },
        { V("{"),                                                       -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\""),                       -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\"}x"),                     -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\"}{}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\"} 1"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\",}"),                     -EBADMSG },
        { V("{\"method\":\"io.vmaq.GetStatus\"}/**/"),                  -EBADMSG },
        { V("{'method':'io.vmaq.GetStatus'}"),                          -EBADMSG },
        { V("{method:\"io.vmaq.GetStatus\"}"),                          -EBADMSG },
        { V("\xef\xbb\xbf{\"method\":\"io.vmaq.GetStatus\"}"),          -EBADMSG },
        /* Embedded NUL: json-c would stop there. */
        { V("{\"method\":\"io.vmaq.GetStatus\"}\0"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.Get\0Status\"}"),                    -EBADMSG },
        { V("\0{\"method\":\"io.vmaq.GetStatus\"}"),                    -EBADMSG },
        /* Invalid UTF-8. */
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xff\"}}"),              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\x80\"}}"),              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xc0\x80\"}}"),          -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xe0\x80\xaf\"}}"),      -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xed\xa0\x80\"}}"),      -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xf4\x90\x80\x80\"}}"),  -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\xe2\x82\"}}"),          -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\xc3\":1}}"),                 -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":1}}\xc3\xa9"),             -EBADMSG },
        /* Strings: escapes and control characters. */
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\u0000\"}}"),           -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\ud800\"}}"),           -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\udc00\"}}"),           -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\ud800\\u0041\"}}"),    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\u12\"}}"),             -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\\x41\"}}"),             -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"\x01\"}}"),              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"a\tb\"}}"),              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"s\":\"abc}}"),                 -EBADMSG },
        /* Numbers outside RFC 8259, which json-c takes. */
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":NaN}}"),                   -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":Infinity}}"),              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":-Infinity}}"),             -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":00}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":01}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":-01}}"),                   -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":1.}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":1.e5}}"),                  -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":.5}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":1e}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":+1}}"),                    -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":-}}"),                     -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":0x10}}"),                  -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":1-2}}"),                   -EBADMSG },
        /* Literals. */
        { V("{\"method\":\"io.vmaq.X\",\"oneway\":TRUE}"),                              -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"oneway\":tru}"),                               -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"oneway\":truex}"),                             -EBADMSG },
        { V("{\"method\":\"io.vmaq.X\",\"parameters\":nul}"),                           -EBADMSG },
        /* Valid JSON, but not an object. */
        { V("[]"),                                                      -EPROTO },
        { V("1"),                                                       -EPROTO },
        { V("\"io.vmaq.GetStatus\""),                                   -EPROTO },
        { V("null"),                                                    -EPROTO },
        { V("true"),                                                    -EPROTO },
        { V("[{\"method\":\"io.vmaq.GetStatus\"}]"),                    -EPROTO },
        /* "method" missing, not a string, or malformed. */
        { V("{}"),                                                      -EPROTO },
        { V("{\"parameters\":{}}"),                                     -EPROTO },
        { V("{\"method\":1}"),                                          -EPROTO },
        { V("{\"method\":null}"),                                       -EPROTO },
        { V("{\"method\":[\"io.vmaq.GetStatus\"]}"),                    -EPROTO },
        { V("{\"method\":\"\"}"),                                       -EPROTO },
        { V("{\"method\":\"GetStatus\"}"),                              -EPROTO },
        { V("{\"method\":\"vmaq.\"}"),                                  -EPROTO },
        { V("{\"method\":\"io.vmaq.\"}"),                               -EPROTO },
        { V("{\"method\":\".io.vmaq.GetStatus\"}"),                     -EPROTO },
        { V("{\"method\":\"io..vmaq.GetStatus\"}"),                     -EPROTO },
        { V("{\"method\":\"io.vmaq.getStatus\"}"),                      -EPROTO },
        { V("{\"method\":\"io.vmaq.Get_Status\"}"),                     -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus \"}"),                     -EPROTO },
        { V("{\"method\":\"io.vmaq-.GetStatus\"}"),                     -EPROTO },
        { V("{\"method\":\"1io.vmaq.GetStatus\"}"),                     -EPROTO },
        { V("{\"method\":\"io.vm_aq.GetStatus\"}"),                     -EPROTO },
        /* "parameters" not an object. */
        { V("{\"method\":\"io.vmaq.GetStatus\",\"parameters\":[]}"),    -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"parameters\":1}"),     -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"parameters\":\"\"}"),  -EPROTO },
        /* "oneway" and "more" not booleans. */
        { V("{\"method\":\"io.vmaq.GetStatus\",\"oneway\":1}"),         -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"oneway\":\"true\"}"),  -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"oneway\":null}"),      -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"more\":0}"),           -EPROTO },
        /* Keys a call does not have. */
        { V("{\"method\":\"io.vmaq.GetStatus\",\"upgrade\":true}"),     -EPROTO },
        { V("{\"method\":\"io.vmaq.GetStatus\",\"id\":1}"),             -EPROTO },
};

START_TEST(test_call_parse_invalid) {
        VarlinkCall call = { .method = "untouched" };

        ck_assert_msg(varlink_call_parse(call_invalid_vectors[_i].text, call_invalid_vectors[_i].size, NULL, &call) ==
                      call_invalid_vectors[_i].r, "vector %d", _i);
        ck_assert_str_eq(call.method, "untouched");
        ck_assert_ptr_null(call.object);
}
END_TEST

/* Nesting: VARLINK_DEPTH_MAX levels, a scalar counting as one. */
static int parse_nested(size_t levels, const VarlinkLimits *limits) {
        _cleanup_free_ char *text = NULL;
        VarlinkCall call = {};
        size_t n = 0, arrays;
        int r;

        /* The call object and the parameters object are two levels, the innermost 1 one more. */
        ck_assert_uint_ge(levels, 3);
        arrays = levels - 3;
        text = malloc(64 + 2 * arrays);
        ck_assert_ptr_nonnull(text);
        n += sprintf(text, "{\"method\":\"io.vmaq.X\",\"parameters\":{\"a\":");
        for (size_t i = 0; i < arrays; i++)
                text[n++] = '[';
        text[n++] = '1';
        for (size_t i = 0; i < arrays; i++)
                text[n++] = ']';
        n += sprintf(text + n, "}}");

        r = varlink_call_parse(text, n, limits, &call);
        varlink_call_done(&call);
        return r;
}

/* @levels containers of @open/@close inside each other, the innermost empty. */
static int parse_nested_empty(size_t levels, char open, char close) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        size_t n = 0;

        text = malloc(levels * 6);
        ck_assert_ptr_nonnull(text);
        for (size_t i = 0; i < levels; i++) {
                if (open == '{' && i > 0)
                        n += sprintf(text + n, "\"a\":");
                text[n++] = open;
        }
        for (size_t i = 0; i < levels; i++)
                text[n++] = close;

        return varlink_json_parse(text, n, NULL, &o);
}

START_TEST(test_call_parse_depth) {
        const VarlinkLimits roomy = { .max_values = 1000, .max_containers = 1000, .max_array_elements = 1000 };

        ck_assert_int_eq(parse_nested(3, NULL), 0);
        ck_assert_int_eq(parse_nested(VARLINK_DEPTH_MAX, NULL), 0);
        ck_assert_int_eq(parse_nested(VARLINK_DEPTH_MAX + 1, NULL), -EBADMSG);
        ck_assert_int_eq(parse_nested(1000, NULL), -EBADMSG);

        /* Limits that are not reached change nothing. */
        ck_assert_int_eq(parse_nested(VARLINK_DEPTH_MAX, &roomy), 0);
        ck_assert_int_eq(parse_nested(VARLINK_DEPTH_MAX + 1, &roomy), -EBADMSG);
        ck_assert_int_eq(parse_nested(1000, &roomy), -EBADMSG);

        /* An empty container at the deepest level is fine: nothing is below it. */
        ck_assert_int_eq(parse_nested_empty(VARLINK_DEPTH_MAX, '[', ']'), 0);
        ck_assert_int_eq(parse_nested_empty(VARLINK_DEPTH_MAX + 1, '[', ']'), -EBADMSG);
        ck_assert_int_eq(parse_nested_empty(VARLINK_DEPTH_MAX, '{', '}'), 0);
        ck_assert_int_eq(parse_nested_empty(VARLINK_DEPTH_MAX + 1, '{', '}'), -EBADMSG);
        ck_assert_int_eq(parse_nested_empty(100000, '[', ']'), -EBADMSG);
}
END_TEST

/* --- varlink_json_parse: limits ------------------------------------------ */

#define LIMITS(v, c, e) { .max_values = (v), .max_containers = (c), .max_array_elements = (e) }

static const struct {
        const char *text;
        VarlinkLimits limits;
        int r;
} limit_vectors[] = {
        /* Values: scalars and containers, the top level included; keys are not values. */
        { "1",                                  LIMITS(1, 0, 0),        0 },
        { "\"a\"",                              LIMITS(1, 0, 0),        0 },
        { "[]",                                 LIMITS(1, 0, 0),        0 },
        { "[1,2,3]",                            LIMITS(4, 0, 0),        0 },
        { "[1,2,3]",                            LIMITS(3, 0, 0),        -E2BIG },
        { " [ 1 , \"2\" , true , false , null ] ", LIMITS(6, 0, 0),     0 },
        { " [ 1 , \"2\" , true , false , null ] ", LIMITS(5, 0, 0),     -E2BIG },
        { "{\"a\":1,\"b\":\"c\"}",                LIMITS(3, 0, 0),        0 },
        { "{\"a\":1,\"b\":\"c\"}",                LIMITS(2, 0, 0),        -E2BIG },
        { "{\"a\":{\"b\":[\"c\",{}]}}",           LIMITS(5, 0, 0),        0 },
        { "{\"a\":{\"b\":[\"c\",{}]}}",           LIMITS(4, 0, 0),        -E2BIG },
        { "{\"a\":1,\"a\":2}",                    LIMITS(3, 0, 0),        0 },
        { "{\"a\":1,\"a\":2}",                    LIMITS(2, 0, 0),        -E2BIG },
        /* Brackets, commas, colons and escaped quotes inside strings are text. */
        { "{\"a:[,\":\"{\\\"}],\"}",              LIMITS(2, 1, 0),        0 },
        { "{\"a:[,\":\"{\\\"}],\"}",              LIMITS(1, 1, 0),        -E2BIG },
        /* An integer beyond 64 bits is one value, read as a double. */
        { "[18446744073709551616,1]",           LIMITS(3, 0, 0),        0 },
        { "[18446744073709551616,1]",           LIMITS(2, 0, 0),        -E2BIG },
        /* Containers: objects and arrays, the top level included. */
        { "[{},[],{\"a\":[]}]",                 LIMITS(0, 5, 0),        0 },
        { "[{},[],{\"a\":[]}]",                 LIMITS(0, 4, 0),        -E2BIG },
        { "[1,\"[\",\"{\"]",                      LIMITS(0, 1, 0),        0 },
        { "1",                                  LIMITS(0, 1, 0),        0 },
        /* Elements: of each array on its own, not of objects. */
        { "[1,2,3]",                            LIMITS(0, 0, 3),        0 },
        { "[1,2,3]",                            LIMITS(0, 0, 2),        -E2BIG },
        { "[[1,2,3],[4]]",                      LIMITS(0, 0, 3),        0 },
        { "[[1,2,3],[4]]",                      LIMITS(0, 0, 2),        -E2BIG },
        { "[[1,2],[3,4]]",                      LIMITS(0, 0, 2),        0 },
        { "[1,[2],3]",                          LIMITS(0, 0, 2),        -E2BIG },
        { "[{\"a\":[1,2]},{\"b\":[3,4]}]",        LIMITS(0, 0, 2),        0 },
        { "[{\"a\":[1,2,3]}]",                    LIMITS(0, 0, 2),        -E2BIG },
        { "{\"a\":1,\"b\":2,\"c\":3}",              LIMITS(0, 0, 1),        0 },
        { "[]",                                 LIMITS(0, 0, 1),        0 },
        { "[[]]",                               LIMITS(0, 0, 1),        0 },
        /* Each limit on its own, and 0 for none. */
        { "[[1,2],{\"a\":3}]",                    LIMITS(6, 3, 2),        0 },
        { "[[1,2],{\"a\":3}]",                    LIMITS(5, 3, 2),        -E2BIG },
        { "[[1,2],{\"a\":3}]",                    LIMITS(6, 2, 2),        -E2BIG },
        { "[[1,2],{\"a\":3}]",                    LIMITS(6, 3, 1),        -E2BIG },
        { "[[1,2],{\"a\":3}]",                    LIMITS(0, 0, 0),        0 },
        /* The first value past a limit ends the scan, whatever follows... */
        { "[1,2,3,x]",                          LIMITS(3, 0, 0),        -E2BIG },
        { "[[1,2,3,4],x]",                      LIMITS(0, 0, 2),        -E2BIG },
        /* ...but a value counts only once it is valid, and bad JSON within the limits stays bad. */
        { "[1,x]",                              LIMITS(2, 0, 0),        -EBADMSG },
        { "[1,NaN]",                            LIMITS(2, 0, 0),        -EBADMSG },
        { "[1,2",                               LIMITS(3, 0, 0),        -EBADMSG },
        { "[1,]",                               LIMITS(3, 0, 0),        -EBADMSG },
        { "[1}",                                LIMITS(3, 0, 0),        -EBADMSG },
        { "{]",                                 LIMITS(3, 0, 0),        -EBADMSG },
        { "]",                                  LIMITS(3, 0, 0),        -EBADMSG },
        { "[1]]",                               LIMITS(3, 0, 0),        -EBADMSG },
        { "[1][2]",                             LIMITS(4, 0, 0),        -EBADMSG },
        { "{\"a\" \"b\"}",                        LIMITS(3, 0, 0),        -EBADMSG },
};

START_TEST(test_json_limits) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        const char *text = limit_vectors[_i].text;

        ck_assert_msg(varlink_json_parse(text, strlen(text), &limit_vectors[_i].limits, &o) == limit_vectors[_i].r,
                      "'%s'", text);
        if (limit_vectors[_i].r < 0)
                ck_assert_ptr_null(o);
        else
                ck_assert_ptr_nonnull(o);
}
END_TEST

/*
 * A Normalize call whose "addresses" has @n times @element: 5 values and 3
 * containers, plus what the elements hold.
 */
static char *normalize_call_new(const char *element, size_t n, size_t *ret_size) {
        static const char head[] = "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[";
        static const char tail[] = "]}}";
        size_t len = strlen(element), size = sizeof(head) - 1 + n * (len + 1) + sizeof(tail) - 1;
        char *text, *p;

        /* One allocation, not a growing buffer: the memory test wants no peak before the parse. */
        text = malloc(size + 1);
        ck_assert_ptr_nonnull(text);
        p = mempcpy(text, head, sizeof(head) - 1);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ',';
                p = mempcpy(p, element, len);
        }
        p = mempcpy(p, tail, sizeof(tail));
        *ret_size = (size_t) (p - text) - 1;
        ck_assert_uint_le(*ret_size, size);
        return text;
}

static const struct {
        const char *element;
        size_t n;
        VarlinkLimits limits;
        int r;
} call_limit_vectors[] = {
        { "1",                  100,    LIMITS(105, 0, 0),              0 },
        { "1",                  101,    LIMITS(105, 0, 0),              -E2BIG },
        { "\"0x1\"",            100,    LIMITS(105, 0, 0),              0 },
        { "\"0x1\"",            101,    LIMITS(105, 0, 0),              -E2BIG },
        { "1",                  100000, LIMITS(100005, 16, 100000),     0 },
        { "1",                  100001, LIMITS(100005, 16, 100000),     -E2BIG },
        { "1",                  100001, LIMITS(0, 0, 100000),           -E2BIG },
        { "1",                  100001, LIMITS(100006, 0, 0),           0 },
        { "{}",                 13,     LIMITS(0, 16, 0),               0 },
        { "{}",                 14,     LIMITS(0, 16, 0),               -E2BIG },
        { "[]",                 13,     LIMITS(0, 16, 0),               0 },
        { "[]",                 14,     LIMITS(0, 16, 0),               -E2BIG },
        { "{\"a\":1,\"b\":[2]}",  4,      LIMITS(5 + 4 * 4, 3 + 4 * 2, 4),  0 },
        { "{\"a\":1,\"b\":[2]}",  4,      LIMITS(5 + 4 * 4 - 1, 0, 0),    -E2BIG },
        { "{\"a\":1,\"b\":[2]}",  4,      LIMITS(0, 3 + 4 * 2 - 1, 0),    -E2BIG },
        { "{\"a\":1,\"b\":[2]}",  4,      LIMITS(0, 0, 3),                -E2BIG },
        { "{}",                 10000,  LIMITS(0, 0, 0),                0 },
};

START_TEST(test_call_limits) {
        _cleanup_free_ char *text = NULL;
        VarlinkCall call = { .method = "untouched" };
        struct json_object *a;
        size_t size;
        int r;

        text = normalize_call_new(call_limit_vectors[_i].element, call_limit_vectors[_i].n, &size);
        r = varlink_call_parse(text, size, &call_limit_vectors[_i].limits, &call);
        ck_assert_int_eq(r, call_limit_vectors[_i].r);
        if (r < 0) {
                ck_assert_str_eq(call.method, "untouched");
                ck_assert_ptr_null(call.object);
                return;
        }

        ck_assert_str_eq(call.method, "io.vmaq.Normalize");
        ck_assert(json_object_object_get_ex(call.parameters, "addresses", &a));
        ck_assert_uint_eq(json_object_array_length(a), call_limit_vectors[_i].n);
        varlink_call_done(&call);
}
END_TEST

START_TEST(test_call_limits_none) {
        _cleanup_free_ char *text = NULL;
        VarlinkCall call = {};
        struct json_object *a;
        size_t size;

        /* 20,000 empty objects: 20,003 containers, 20,005 values, 20,000 elements. */
        text = normalize_call_new("{}", 20000, &size);
        ck_assert_int_eq(varlink_call_parse(text, size, NULL, &call), 0);
        ck_assert(json_object_object_get_ex(call.parameters, "addresses", &a));
        ck_assert_uint_eq(json_object_array_length(a), 20000);
        varlink_call_done(&call);
}
END_TEST

/* The high-water mark of this process's resident memory, in KiB. */
static long peak_rss_kib(void) {
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        long kib = -1;
        FILE *f;

        f = fopen("/proc/self/status", "re");
        ck_assert_ptr_nonnull(f);
        while (getline(&line, &n, f) > 0)
                if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        ck_assert_int_ge(kib, 0);
        return kib;
}

/* Restart the high-water mark from the current resident memory; a fresh fork is as good. */
static void peak_rss_reset(void) {
        int fd;

        fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        (void) !write(fd, "5", 1);
        close(fd);
}

/* 16 MiB, the daemon's default message size limit, of elements that json-c makes costly. */
static const struct {
        const char *element;
        VarlinkLimits limits;
} huge_vectors[] = {
        { "{}",         LIMITS(100016, 16, 100000) },   /* 4.3 GB for json-c: the containers limit */
        { "[]",         LIMITS(100016, 16, 0) },
        { "0",          LIMITS(100016, 16, 100000) },   /* the elements limit */
        { "0",          LIMITS(100016, 0, 0) },         /* the values limit */
        { "\"\"",       LIMITS(100016, 16, 100000) },
};

START_TEST(test_call_limits_memory) {
        const size_t calibration_size = 8 << 20;
        _cleanup_free_ char *text = NULL;
        VarlinkCall call = {};
        size_t n, size;
        long before, after;
        void *calibration;

        n = (16 << 20) / (strlen(huge_vectors[_i].element) + 1);
        text = normalize_call_new(huge_vectors[_i].element, n, &size);
        ck_assert_uint_ge(size, 16 << 20);

        /* Free memory goes back first: whatever the parse allocates must show as new resident pages. */
        (void) malloc_trim(0);
        peak_rss_reset();
        before = peak_rss_kib();
        ck_assert_int_eq(varlink_call_parse(text, size, &huge_vectors[_i].limits, &call), -E2BIG);
        after = peak_rss_kib();
        ck_assert_ptr_null(call.object);
        ck_assert_int_lt(after - before, 1024);

        /* And the same measure does see 8 MiB of new pages. */
        peak_rss_reset();
        before = peak_rss_kib();
        calibration = mmap(NULL, calibration_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(calibration, MAP_FAILED);
        memset(calibration, 'x', calibration_size);
        after = peak_rss_kib();
        ck_assert_int_eq(munmap(calibration, calibration_size), 0);
        ck_assert_int_ge(after - before, (long) (calibration_size / 1024) - 1024);
}
END_TEST

/* --- varlink_json_parse: how integers come out of json-c ------------------ */

static const struct {
        const char *text;
        json_type type;
        int64_t i64;            /* json_object_get_int64() */
        uint64_t u64;           /* json_object_get_uint64() */
} number_vectors[] = {
        { "0",                      json_type_int,    0,         0 },
        { "-0",                     json_type_int,    0,         0 },
        { "1",                      json_type_int,    1,         1 },
        { "9223372036854775807",    json_type_int,    INT64_MAX, INT64_MAX },
        { "9223372036854775808",    json_type_int,    INT64_MAX, UINT64_C(9223372036854775808) },
        { "18446744073709551615",   json_type_int,    INT64_MAX, UINT64_MAX },
        { "-1",                     json_type_int,    -1,        0 },
        { "-9223372036854775808",   json_type_int,    INT64_MIN, 0 },
        /* json-c alone would clamp these to UINT64_MAX and INT64_MIN: they become doubles. */
        { "18446744073709551616",   json_type_double, INT64_MAX, UINT64_MAX },
        { "99999999999999999999999", json_type_double, INT64_MAX, UINT64_MAX },
        { "-9223372036854775809",   json_type_double, INT64_MIN, 0 },
        { "1e3",                    json_type_double, 1000,      1000 },
        { "1.0",                    json_type_double, 1,         1 },
        { "1.5",                    json_type_double, 1,         1 },
        { "-0.0",                   json_type_double, 0,         0 },
};

START_TEST(test_json_numbers) {
        _cleanup_(json_object_putp) struct json_object *a = NULL;
        _cleanup_free_ char *text = NULL;
        struct json_object *v;

        /* Inside an array, and alone at the top level. */
        ck_assert_int_ge(asprintf(&text, "[%s]", number_vectors[_i].text), 0);
        a = parse(text);
        v = json_object_array_get_idx(a, 0);
        ck_assert_msg(json_object_get_type(v) == number_vectors[_i].type, "%s", number_vectors[_i].text);
        ck_assert_int_eq(json_object_get_int64(v), number_vectors[_i].i64);
        ck_assert_uint_eq(json_object_get_uint64(v), number_vectors[_i].u64);

        json_object_put(a);
        a = parse(number_vectors[_i].text);
        ck_assert_int_eq(json_object_get_type(a), number_vectors[_i].type);
        ck_assert_uint_eq(json_object_get_uint64(a), number_vectors[_i].u64);
}
END_TEST

/* --- names --------------------------------------------------------------- */

static const struct {
        const char *name;
        bool valid;
} qualified_name_vectors[] = {
        { "io.vmaq.Normalize",                  true },
        { "org.varlink.service.GetInfo",        true },
        { "a.b.C",                              true },
        { "a1.2b.C3",                           true },
        { "x-y.z--w.Aa0",                       true },
        { "io.vmaq.N",                          true },
        { "",                                   false },
        { "Normalize",                          false },
        { "io.Normalize.",                      false },
        { "vmaq.Normalize",                     false },        /* one label is no interface */
        { ".io.vmaq.Normalize",                 false },
        { "io..vmaq.Normalize",                 false },
        { "io.vmaq..Normalize",                 false },
        { "1o.vmaq.Normalize",                  false },
        { "-io.vmaq.Normalize",                 false },
        { "io-.vmaq.Normalize",                 false },
        { "io.-vmaq.Normalize",                 false },
        { "io.vm aq.Normalize",                 false },
        { "io.vm_aq.Normalize",                 false },
        { "io.vmaq.normalize",                  false },
        { "io.vmaq.Normal-ize",                 false },
        { "io.vmaq.Normal_ize",                 false },
        { "io.vmaq.Normalize!",                 false },
        { "io.vmaq.1Normalize",                 false },
        { "io.vma\xc3\xa9.Normalize",           false },
};

START_TEST(test_names) {
        ck_assert_msg(varlink_qualified_name_is_valid(qualified_name_vectors[_i].name) == qualified_name_vectors[_i].valid,
                      "'%s'", qualified_name_vectors[_i].name);
}
END_TEST

START_TEST(test_names_parts) {
        ck_assert(varlink_interface_name_is_valid("io.vmaq"));
        ck_assert(varlink_interface_name_is_valid("org.varlink.service"));
        ck_assert(!varlink_interface_name_is_valid("io"));
        ck_assert(!varlink_interface_name_is_valid("io.vmaq."));
        ck_assert(varlink_interface_name_is_valid("io.vmaq.Normalize"));    /* as an interface, it is one */
        ck_assert(!varlink_interface_name_is_valid("io.vm_aq"));
        ck_assert(!varlink_interface_name_is_valid(""));
        ck_assert(!varlink_interface_name_is_valid(NULL));
        ck_assert(varlink_member_name_is_valid("Normalize"));
        ck_assert(varlink_member_name_is_valid("X"));
        ck_assert(!varlink_member_name_is_valid("normalize"));
        ck_assert(!varlink_member_name_is_valid(""));
        ck_assert(!varlink_member_name_is_valid(NULL));
        ck_assert(!varlink_qualified_name_is_valid(NULL));
}
END_TEST

/* --- proto_method_lookup ------------------------------------------------- */

static const struct {
        const char *name;
        int r;
        ProtoMethod method;
} method_vectors[] = {
        { "org.varlink.service.GetInfo",                 0, PROTO_METHOD_GET_INFO },
        { "org.varlink.service.GetInterfaceDescription", 0, PROTO_METHOD_GET_INTERFACE_DESCRIPTION },
        { "io.vmaq.Normalize",                           0, PROTO_METHOD_NORMALIZE },
        { "io.vmaq.ListMappings",                        0, PROTO_METHOD_LIST_MAPPINGS },
        { "io.vmaq.GetStatus",                           0, PROTO_METHOD_GET_STATUS },
        { "io.vmaq.Track",                               0, PROTO_METHOD_TRACK },
        { "io.vmaq.GetInfo",                             -EOPNOTSUPP, 0 },
        { "io.vmaq.Nope",                                -EOPNOTSUPP, 0 },
        { "org.varlink.service.Normalize",               -EOPNOTSUPP, 0 },
        { "org.example.Normalize",                       -EADDRNOTAVAIL, 0 },
        { "io.vmaqx.Normalize",                          -EADDRNOTAVAIL, 0 },
        { "io.vmaq.x.Normalize",                         -EADDRNOTAVAIL, 0 },
        { "x.io.vmaq.Normalize",                         -EADDRNOTAVAIL, 0 },
        { "org.varlink.Service.GetInfo",                 -EADDRNOTAVAIL, 0 },
        { "io.vmaq.normalize",                           -EINVAL, 0 },
        { "Normalize",                                   -EINVAL, 0 },
        { "io.vmaq.",                                    -EINVAL, 0 },
        { "",                                            -EINVAL, 0 },
};

START_TEST(test_method_lookup) {
        ProtoMethod m = _PROTO_METHOD_INVALID;

        ck_assert_msg(proto_method_lookup(method_vectors[_i].name, &m) == method_vectors[_i].r, "'%s'",
                      method_vectors[_i].name);
        if (method_vectors[_i].r == 0) {
                ck_assert_int_eq(m, method_vectors[_i].method);
                ck_assert_str_eq(proto_method_to_string(m), method_vectors[_i].name);
                ck_assert_int_eq(proto_method_from_string(method_vectors[_i].name), m);
        } else
                ck_assert_int_eq(m, _PROTO_METHOD_INVALID);
}
END_TEST

START_TEST(test_method_strings) {
        ck_assert_ptr_null(proto_method_to_string(_PROTO_METHOD_MAX));
        ck_assert_ptr_null(proto_method_to_string(_PROTO_METHOD_INVALID));
        ck_assert_int_eq(proto_method_from_string("io.vmaq.Nope"), -EINVAL);
        for (ProtoMethod m = 0; m < _PROTO_METHOD_MAX; m++)
                ck_assert_int_eq(proto_method_from_string(proto_method_to_string(m)), m);
}
END_TEST

/* --- the error table ----------------------------------------------------- */

static const struct {
        ProtoError e;
        const char *name;
        int error;
} error_name_vectors[] = {
        { PROTO_ERROR_INTERFACE_NOT_FOUND,    "org.varlink.service.InterfaceNotFound",    -EADDRNOTAVAIL },
        { PROTO_ERROR_METHOD_NOT_FOUND,       "org.varlink.service.MethodNotFound",       -EOPNOTSUPP },
        { PROTO_ERROR_METHOD_NOT_IMPLEMENTED, "org.varlink.service.MethodNotImplemented", -ENOSYS },
        { PROTO_ERROR_INVALID_PARAMETER,      "org.varlink.service.InvalidParameter",     -EINVAL },
        { PROTO_ERROR_INVALID_MESSAGE,        "io.vmaq.InvalidMessage",                   -EBADMSG },
        { PROTO_ERROR_REQUEST_TOO_LARGE,      "io.vmaq.RequestTooLarge",                  -E2BIG },
        { PROTO_ERROR_REPLY_TOO_LARGE,        "io.vmaq.ReplyTooLarge",                    -ENOBUFS },
        { PROTO_ERROR_NO_SUCH_PROCESS,        "io.vmaq.NoSuchProcess",                    -ESRCH },
        { PROTO_ERROR_NO_ADDRESS_SPACE,       "io.vmaq.NoAddressSpace",                   -ENXIO },
        { PROTO_ERROR_PERMISSION_DENIED,      "io.vmaq.PermissionDenied",                 -EACCES },
        { PROTO_ERROR_PROCESS_CHANGED,        "io.vmaq.ProcessChanged",                   -ESTALE },
        { PROTO_ERROR_FOREIGN_PID_NAMESPACE,  "io.vmaq.ForeignPidNamespace",              -EXDEV },
        { PROTO_ERROR_INTERNAL,               "io.vmaq.InternalError",                    -EIO },
        { PROTO_ERROR_TOO_MANY_CONNECTIONS,   "io.vmaq.TooManyConnections",               -EUSERS },
        { PROTO_ERROR_MEMORY_LIMIT,           "io.vmaq.MemoryLimitReached",               -EBUSY },
        { PROTO_ERROR_TIMED_OUT,              "io.vmaq.TimedOut",                         -ETIME },
        { PROTO_ERROR_BAD_FILE_DESCRIPTOR,    "io.vmaq.BadFileDescriptor",                -EBADF },
};

START_TEST(test_error_names) {
        ProtoError e = error_name_vectors[_i].e;

        ck_assert_str_eq(proto_error_to_string(e), error_name_vectors[_i].name);
        ck_assert_int_eq(proto_error_from_string(error_name_vectors[_i].name), e);
        ck_assert_int_eq(proto_error_to_errno(e), error_name_vectors[_i].error);
        ck_assert_int_eq(proto_error_from_errno(error_name_vectors[_i].error), e);
        ck_assert_int_eq(proto_error_from_errno(-error_name_vectors[_i].error), e);
}
END_TEST

static const struct {
        int error;
        ProtoError e;
} errno_vectors[] = {
        { EADDRNOTAVAIL, PROTO_ERROR_INTERFACE_NOT_FOUND },
        { EOPNOTSUPP,    PROTO_ERROR_METHOD_NOT_FOUND },
        { ENOSYS,        PROTO_ERROR_METHOD_NOT_IMPLEMENTED },
        { EINVAL,        PROTO_ERROR_INVALID_PARAMETER },
        { EBADMSG,       PROTO_ERROR_INVALID_MESSAGE },
        { E2BIG,         PROTO_ERROR_REQUEST_TOO_LARGE },
        { EMSGSIZE,      PROTO_ERROR_REQUEST_TOO_LARGE },
        { ESRCH,         PROTO_ERROR_NO_SUCH_PROCESS },
        { ENXIO,         PROTO_ERROR_NO_ADDRESS_SPACE },
        { EACCES,        PROTO_ERROR_PERMISSION_DENIED },
        { EPERM,         PROTO_ERROR_PERMISSION_DENIED },
        { ESTALE,        PROTO_ERROR_PROCESS_CHANGED },
        { EXDEV,         PROTO_ERROR_FOREIGN_PID_NAMESPACE },
        { EIO,           PROTO_ERROR_INTERNAL },
        { ENOMEM,        PROTO_ERROR_INTERNAL },
        { EBADF,         PROTO_ERROR_BAD_FILE_DESCRIPTOR },
        { ENOENT,        PROTO_ERROR_INTERNAL },
        { 0,             PROTO_ERROR_INTERNAL },
        { 100000,        PROTO_ERROR_INTERNAL },
};

START_TEST(test_error_from_errno) {
        ck_assert_int_eq(proto_error_from_errno(errno_vectors[_i].error), errno_vectors[_i].e);
        ck_assert_int_eq(proto_error_from_errno(-errno_vectors[_i].error), errno_vectors[_i].e);
}
END_TEST

START_TEST(test_error_out_of_range) {
        ck_assert_ptr_null(proto_error_to_string(_PROTO_ERROR_MAX));
        ck_assert_ptr_null(proto_error_to_string(_PROTO_ERROR_INVALID));
        ck_assert_int_eq(proto_error_from_string("io.vmaq.Nope"), _PROTO_ERROR_INVALID);
        ck_assert_int_eq(proto_error_from_string("InternalError"), _PROTO_ERROR_INVALID);
        ck_assert_int_eq(proto_error_from_string(""), _PROTO_ERROR_INVALID);
        ck_assert_int_eq(proto_error_from_string(NULL), _PROTO_ERROR_INVALID);
        ck_assert_int_eq(proto_error_to_errno(_PROTO_ERROR_MAX), -EIO);
        ck_assert_int_eq(proto_error_to_errno(_PROTO_ERROR_INVALID), -EIO);
        /* Every row round-trips both ways. */
        for (ProtoError e = 0; e < _PROTO_ERROR_MAX; e++) {
                ck_assert_int_eq(proto_error_from_string(proto_error_to_string(e)), e);
                ck_assert_int_eq(proto_error_from_errno(proto_error_to_errno(e)), e);
        }
}
END_TEST

/* --- proto_error_format -------------------------------------------------- */

static const struct {
        ProtoError e;
        ProtoErrorDetails details;
        const char *text;
} error_format_vectors[] = {
        { PROTO_ERROR_INTERFACE_NOT_FOUND, { .interface = "org.example", .method = "x", .pid = 3 },
          "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"org.example\"}}" },
        { PROTO_ERROR_METHOD_NOT_FOUND, { .method = "io.vmaq.Nope", .interface = "io.vmaq" },
          "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.vmaq.Nope\"}}" },
        { PROTO_ERROR_METHOD_NOT_IMPLEMENTED, { .method = "io.vmaq.Normalize" },
          "{\"error\":\"org.varlink.service.MethodNotImplemented\",\"parameters\":{\"method\":\"io.vmaq.Normalize\"}}" },
        { PROTO_ERROR_INVALID_PARAMETER, { .parameter = "addresses", .pid = 1, .limit = 3 },
          "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"addresses\"}}" },
        { PROTO_ERROR_INVALID_PARAMETER, {},
          "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"\"}}" },
        { PROTO_ERROR_INVALID_MESSAGE, { .reason = "not valid JSON" },
          "{\"error\":\"io.vmaq.InvalidMessage\",\"parameters\":{\"reason\":\"not valid JSON\"}}" },
        { PROTO_ERROR_REQUEST_TOO_LARGE, { .limit = 16777216 },
          "{\"error\":\"io.vmaq.RequestTooLarge\",\"parameters\":{\"limit\":16777216}}" },
        { PROTO_ERROR_REQUEST_TOO_LARGE, { .parameter = "addresses", .limit = 100000 },
          "{\"error\":\"io.vmaq.RequestTooLarge\",\"parameters\":{\"parameter\":\"addresses\",\"limit\":100000}}" },
        { PROTO_ERROR_NO_SUCH_PROCESS, { .pid = 42, .start_time = 7 },
          "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":42}}" },
        { PROTO_ERROR_NO_ADDRESS_SPACE, { .pid = 2 },
          "{\"error\":\"io.vmaq.NoAddressSpace\",\"parameters\":{\"pid\":2}}" },
        { PROTO_ERROR_PERMISSION_DENIED, { .pid = 1, .error = EACCES },
          "{\"error\":\"io.vmaq.PermissionDenied\",\"parameters\":{\"pid\":1}}" },
        { PROTO_ERROR_PROCESS_CHANGED, { .pid = 2147483647, .start_time = UINT64_MAX },
          "{\"error\":\"io.vmaq.ProcessChanged\",\"parameters\":{\"pid\":2147483647,\"start_time\":18446744073709551615}}" },
        { PROTO_ERROR_FOREIGN_PID_NAMESPACE, { .pid = 42, .reason = "x" },
          "{\"error\":\"io.vmaq.ForeignPidNamespace\",\"parameters\":{}}" },
        { PROTO_ERROR_INTERNAL, { .error = ENOMEM, .pid = 9 },
          "{\"error\":\"io.vmaq.InternalError\",\"parameters\":{\"errno\":12}}" },
        { PROTO_ERROR_TOO_MANY_CONNECTIONS, { .reason = "per user", .limit = 256 },
          "{\"error\":\"io.vmaq.TooManyConnections\",\"parameters\":{\"reason\":\"per user\",\"limit\":256}}" },
        { PROTO_ERROR_MEMORY_LIMIT, { .limit = 1024, .pid = 3 },
          "{\"error\":\"io.vmaq.MemoryLimitReached\",\"parameters\":{\"limit\":1024}}" },
        { PROTO_ERROR_TIMED_OUT, { .limit = 30000000 },
          "{\"error\":\"io.vmaq.TimedOut\",\"parameters\":{\"limit\":30000000}}" },
        { PROTO_ERROR_BAD_FILE_DESCRIPTOR, { .parameter = "maps_fd", .reason = "not a file of /proc", .pid = 1 },
          "{\"error\":\"io.vmaq.BadFileDescriptor\",\"parameters\":{\"parameter\":\"maps_fd\","
          "\"reason\":\"not a file of /proc\"}}" },
        { PROTO_ERROR_BAD_FILE_DESCRIPTOR, { .reason = "x" },
          "{\"error\":\"io.vmaq.BadFileDescriptor\",\"parameters\":{\"reason\":\"x\"}}" },
        /* Strings are JSON-escaped, "/" is not, and bytes that are not UTF-8 become U+FFFD. */
        { PROTO_ERROR_INTERFACE_NOT_FOUND, { .interface = "a/\"b\"\\\n\x01\xff\xc3\xa9" },
          "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":"
          "{\"interface\":\"a/\\\"b\\\"\\\\\\n\\u0001\xef\xbf\xbd\xc3\xa9\"}}" },
};

START_TEST(test_error_format) {
        _cleanup_free_ char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_error_format(error_format_vectors[_i].e, &error_format_vectors[_i].details, &msg, &size), 0);
        ck_assert_str_eq(msg, error_format_vectors[_i].text);
        ck_assert_uint_eq(size, strlen(error_format_vectors[_i].text) + 1);
}
END_TEST

START_TEST(test_error_format_edge) {
        _cleanup_free_ char *msg = NULL;
        char *untouched = (char *) "untouched";
        size_t size = 0;

        ck_assert_int_eq(proto_error_format(PROTO_ERROR_NO_SUCH_PROCESS, NULL, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":0}}");

        ck_assert_int_eq(proto_error_format(_PROTO_ERROR_MAX, NULL, &untouched, &size), -EINVAL);
        ck_assert_int_eq(proto_error_format(_PROTO_ERROR_INVALID, NULL, &untouched, &size), -EINVAL);
        ck_assert_str_eq(untouched, "untouched");
}
END_TEST

/* --- varlink_reply_format / varlink_error_format -------------------------- */

START_TEST(test_reply_format) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        struct json_object *p;
        size_t size = 0;

        ck_assert_int_eq(varlink_reply_format(NULL, false, &a, &size), 0);
        ck_assert_str_eq(a, "{\"parameters\":{}}");
        ck_assert_uint_eq(size, 18);

        ck_assert_int_eq(varlink_reply_format(NULL, true, &b, &size), 0);
        ck_assert_str_eq(b, "{\"parameters\":{},\"continues\":true}");
        ck_assert_uint_eq(size, strlen(b) + 1);

        p = json_object_new_object();
        json_object_object_add(p, "path", json_object_new_string("/usr/lib/x86_64-linux-gnu/\xff\xfe.so"));
        ck_assert_int_eq(varlink_reply_format(p, false, &c, &size), 0);
        ck_assert_str_eq(c, "{\"parameters\":{\"path\":\"/usr/lib/x86_64-linux-gnu/\xef\xbf\xbd\xef\xbf\xbd.so\"}}");
        ck_assert_uint_eq(size, strlen(c) + 1);

        ck_assert_int_eq(varlink_error_format("io.vmaq.NoSuchProcess", NULL, &d, &size), 0);
        ck_assert_str_eq(d, "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{}}");
}
END_TEST

START_TEST(test_reply_format_invalid) {
        char *untouched = (char *) "untouched";
        size_t size = 0;

        /* Ownership is taken also on failure: ASAN and valgrind see a leak otherwise. */
        ck_assert_int_eq(varlink_reply_format(json_object_new_array(), false, &untouched, &size), -EINVAL);
        ck_assert_int_eq(varlink_error_format("NoSuchProcess", json_object_new_object(), &untouched, &size), -EINVAL);
        ck_assert_int_eq(varlink_error_format("io.vmaq.noSuchProcess", NULL, &untouched, &size), -EINVAL);
        ck_assert_int_eq(varlink_error_format(NULL, NULL, &untouched, &size), -EINVAL);
        ck_assert_int_eq(varlink_error_format("io.vmaq.X", json_object_new_int(1), &untouched, &size), -EINVAL);
        ck_assert_str_eq(untouched, "untouched");
}
END_TEST

/* --- Normalize: decoding the addresses ----------------------------------- */

static const struct {
        const char *element;
        int r;
        uint64_t value;
} address_vectors[] = {
        { "0",                          0, 0 },
        { "1",                          0, 1 },
        { "-0",                         0, 0 },
        { "4096",                       0, 4096 },
        { "9223372036854775807",        0, INT64_MAX },
        { "9223372036854775808",        0, UINT64_C(9223372036854775808) },
        { "18446744073709551615",       0, UINT64_MAX },
        { "\"0xdeadbeef\"",             0, 0xdeadbeef },
        { "\"0XDEADBEEF\"",             0, 0xdeadbeef },
        { "\"123\"",                    0, 123 },
        { "\"0x0\"",                    0, 0 },
        { "\"0\"",                      0, 0 },
        { "\"0xffffffffffffffff\"",     0, UINT64_MAX },
        { "\"18446744073709551615\"",   0, UINT64_MAX },
        { "-1",                         -EINVAL, 0 },
        { "-9223372036854775808",       -EINVAL, 0 },
        { "-9223372036854775809",       -EINVAL, 0 },
        { "18446744073709551616",       -EINVAL, 0 },
        { "36893488147419103232",       -EINVAL, 0 },
        { "99999999999999999999999",    -EINVAL, 0 },
        { "1e3",                        -EINVAL, 0 },
        { "1E3",                        -EINVAL, 0 },
        { "1.0",                        -EINVAL, 0 },
        { "1.5",                        -EINVAL, 0 },
        { "-0.0",                       -EINVAL, 0 },
        { "true",                       -EINVAL, 0 },
        { "false",                      -EINVAL, 0 },
        { "null",                       -EINVAL, 0 },
        { "[]",                         -EINVAL, 0 },
        { "[1]",                        -EINVAL, 0 },
        { "{}",                         -EINVAL, 0 },
        { "\"\"",                       -EINVAL, 0 },
        { "\"0x\"",                     -EINVAL, 0 },
        { "\"zz\"",                     -EINVAL, 0 },
        { "\"-1\"",                     -EINVAL, 0 },
        { "\"+1\"",                     -EINVAL, 0 },
        { "\" 1\"",                     -EINVAL, 0 },
        { "\"1 \"",                     -EINVAL, 0 },
        { "\"0x10000000000000000\"",    -EINVAL, 0 },
        { "\"18446744073709551616\"",   -EINVAL, 0 },
        { "\"1e3\"",                    -EINVAL, 0 },
        { "\"0xg\"",                    -EINVAL, 0 },
};

START_TEST(test_normalize_addresses) {
        _cleanup_(json_object_putp) struct json_object *p = NULL;
        _cleanup_free_ char *text = NULL;
        ProtoNormalizeRequest req = { .pid = -42 };
        const char *parameter = NULL;
        int r;

        /* The bad element in the middle: the whole call is refused, naming "addresses". */
        ck_assert_int_ge(asprintf(&text, "{\"pid\":1,\"addresses\":[4096,%s,8192]}", address_vectors[_i].element), 0);
        p = parse(text);

        r = proto_normalize_request_decode(p, NULL, 100, &req, &parameter);
        ck_assert_msg(r == address_vectors[_i].r, "%s: %d", address_vectors[_i].element, r);
        if (r < 0) {
                ck_assert_str_eq(parameter, "addresses");
                ck_assert_int_eq(req.pid, -42);         /* untouched */
                ck_assert_ptr_null(req.addresses);
                return;
        }

        ck_assert_int_eq(req.pid, 1);
        ck_assert_uint_eq(req.n_addresses, 3);
        ck_assert_uint_eq(req.addresses[0], 4096);
        ck_assert_uint_eq(req.addresses[1], address_vectors[_i].value);
        ck_assert_uint_eq(req.addresses[2], 8192);
        proto_normalize_request_done(&req);
        ck_assert_ptr_null(req.addresses);
        ck_assert_uint_eq(req.n_addresses, 0);
}
END_TEST

/* --- Normalize: decoding the parameters ---------------------------------- */

static const struct {
        const char *parameters;
        int r;
        const char *parameter;          /* named on failure */
        pid_t pid;
        size_t n_addresses;
        bool build_ids, map_files, pin;
        uint64_t start_time;
        ProtoTarget target;
        unsigned fd_index;
} normalize_vectors[] = {
        { "{\"pid\":1,\"addresses\":[0]}", 0, NULL, 1, 1, true, false, false, 0 },
        { "{\"addresses\":[1,2,3],\"pid\":2147483647,\"build_ids\":false,\"map_files\":true}",
          0, NULL, 2147483647, 3, false, true, false, 0 },
        { "{\"pid\":5,\"addresses\":[1],\"start_time\":0}", 0, NULL, 5, 1, true, false, true, 0 },
        { "{\"pid\":5,\"addresses\":[1],\"start_time\":18446744073709551615,\"build_ids\":true,\"map_files\":false}",
          0, NULL, 5, 1, true, false, true, UINT64_MAX },
        /* pid */
        { "{\"pid\":0,\"addresses\":[1]}",                      -EINVAL, "pid" },
        { "{\"pid\":-1,\"addresses\":[1]}",                     -EINVAL, "pid" },
        { "{\"pid\":2147483648,\"addresses\":[1]}",             -EINVAL, "pid" },
        { "{\"pid\":4294967297,\"addresses\":[1]}",             -EINVAL, "pid" },
        { "{\"pid\":18446744073709551616,\"addresses\":[1]}",   -EINVAL, "pid" },
        { "{\"pid\":\"1\",\"addresses\":[1]}",                  -EINVAL, "pid" },
        { "{\"pid\":1.0,\"addresses\":[1]}",                    -EINVAL, "pid" },
        { "{\"pid\":1e0,\"addresses\":[1]}",                    -EINVAL, "pid" },
        { "{\"pid\":true,\"addresses\":[1]}",                   -EINVAL, "pid" },
        { "{\"pid\":null,\"addresses\":[1]}",                   -EINVAL, "pid" },
        { "{\"pid\":[1],\"addresses\":[1]}",                    -EINVAL, "pid" },
        { "{\"addresses\":[1]}",                                -EINVAL, "pid" },
        /* or a file descriptor sent along, by its index */
        { "{\"pidfd\":0,\"addresses\":[1]}", 0, NULL, 0, 1, true, false, false, 0, PROTO_TARGET_PIDFD, 0 },
        { "{\"addresses\":[1],\"maps_fd\":2147483647}",
          0, NULL, 0, 1, true, false, false, 0, PROTO_TARGET_MAPS_FD, 2147483647 },
        { "{\"pidfd\":3,\"addresses\":[1],\"start_time\":7}", 0, NULL, 0, 1, true, false, true, 7, PROTO_TARGET_PIDFD, 3 },
        { "{\"pid\":1,\"pidfd\":0,\"addresses\":[1]}",          -EINVAL, "pidfd" },
        { "{\"maps_fd\":0,\"pid\":1,\"addresses\":[1]}",        -EINVAL, "maps_fd" },
        { "{\"pidfd\":0,\"maps_fd\":0,\"addresses\":[1]}",      -EINVAL, "maps_fd" },
        { "{\"maps_fd\":0,\"addresses\":[1],\"start_time\":7}", -EINVAL, "start_time" },
        { "{\"pidfd\":-1,\"addresses\":[1]}",                   -EINVAL, "pidfd" },
        { "{\"pidfd\":2147483648,\"addresses\":[1]}",           -EINVAL, "pidfd" },
        { "{\"maps_fd\":\"0\",\"addresses\":[1]}",              -EINVAL, "maps_fd" },
        { "{\"maps_fd\":null,\"addresses\":[1]}",               -EINVAL, "maps_fd" },
        { "{\"pidfd\":0}",                                      -EINVAL, "addresses" },
        /* addresses */
        { "{\"pid\":1}",                                        -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":[]}",                       -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":1}",                        -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":\"0x10\"}",                 -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":{}}",                       -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":null}",                     -EINVAL, "addresses" },
        { "{\"pid\":1,\"addresses\":[[1]]}",                    -EINVAL, "addresses" },
        /* options */
        { "{\"pid\":1,\"addresses\":[1],\"build_ids\":1}",      -EINVAL, "build_ids" },
        { "{\"pid\":1,\"addresses\":[1],\"build_ids\":\"true\"}", -EINVAL, "build_ids" },
        { "{\"pid\":1,\"addresses\":[1],\"build_ids\":null}",   -EINVAL, "build_ids" },
        { "{\"pid\":1,\"addresses\":[1],\"map_files\":0}",      -EINVAL, "map_files" },
        { "{\"pid\":1,\"addresses\":[1],\"map_files\":\"false\"}", -EINVAL, "map_files" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":-1}",    -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":\"5\"}", -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":1.5}",   -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":18446744073709551616}", -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":null}",  -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1],\"start_time\":true}",  -EINVAL, "start_time" },
        /* unknown parameters, and which problem is named first */
        { "{\"pid\":1,\"addresses\":[1],\"verbose\":true}",     -EINVAL, "verbose" },
        { "{\"pid\":1,\"addresses\":[1],\"exec_only\":true}",   -EINVAL, "exec_only" },
        { "{\"PID\":1,\"addresses\":[1]}",                      -EINVAL, "PID" },
        { "{\"\":1}",                                           -EINVAL, "" },
        { "{\"foo\":1,\"pid\":0}",                              -EINVAL, "foo" },
        { "{\"pid\":0,\"addresses\":[]}",                       -EINVAL, "pid" },
        { "{\"addresses\":[],\"pid\":0}",                       -EINVAL, "addresses" },
        { "{}",                                                 -EINVAL, "pid" },
};

START_TEST(test_normalize_decode) {
        _cleanup_(json_object_putp) struct json_object *p = NULL;
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = { .pid = -42 };
        const char *parameter = NULL;
        int r;

        p = parse(normalize_vectors[_i].parameters);
        r = proto_normalize_request_decode(p, NULL, 100, &req, &parameter);
        ck_assert_msg(r == normalize_vectors[_i].r, "%s: %d", normalize_vectors[_i].parameters, r);
        if (r < 0) {
                ck_assert_str_eq(parameter, normalize_vectors[_i].parameter);
                ck_assert_int_eq(req.pid, -42);
                ck_assert_ptr_null(req.addresses);
                return;
        }

        ck_assert_int_eq(req.pid, normalize_vectors[_i].pid);
        ck_assert_int_eq(req.target, normalize_vectors[_i].target);
        ck_assert_uint_eq(req.fd_index, normalize_vectors[_i].fd_index);
        ck_assert_uint_eq(req.n_addresses, normalize_vectors[_i].n_addresses);
        ck_assert_ptr_nonnull(req.addresses);
        ck_assert_int_eq(req.build_ids, normalize_vectors[_i].build_ids);
        ck_assert_int_eq(req.map_files, normalize_vectors[_i].map_files);
        ck_assert_int_eq(req.pin, normalize_vectors[_i].pin);
        ck_assert_uint_eq(req.start_time, normalize_vectors[_i].start_time);
}
END_TEST

START_TEST(test_normalize_decode_limit) {
        _cleanup_(json_object_putp) struct json_object *three = NULL, *four = NULL, *bad = NULL;
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {};
        const char *parameter = NULL;

        three = parse("{\"pid\":1,\"addresses\":[1,2,3]}");
        four = parse("{\"pid\":1,\"addresses\":[1,2,3,4]}");
        bad = parse("{\"pid\":1,\"addresses\":[1,2,3,\"zz\"]}");

        ck_assert_int_eq(proto_normalize_request_decode(four, NULL, 3, &req, &parameter), -E2BIG);
        ck_assert_str_eq(parameter, "addresses");
        ck_assert_ptr_null(req.addresses);

        parameter = NULL;
        ck_assert_int_eq(proto_normalize_request_decode(three, NULL, 0, &req, &parameter), -E2BIG);
        ck_assert_str_eq(parameter, "addresses");

        /* Too many is told before a bad element. */
        parameter = NULL;
        ck_assert_int_eq(proto_normalize_request_decode(bad, NULL, 3, &req, &parameter), -E2BIG);
        ck_assert_str_eq(parameter, "addresses");
        ck_assert_int_eq(proto_normalize_request_decode(bad, NULL, 4, &req, &parameter), -EINVAL);

        ck_assert_int_eq(proto_normalize_request_decode(three, NULL, 3, &req, &parameter), 0);
        ck_assert_uint_eq(req.n_addresses, 3);
        ck_assert_uint_eq(req.addresses[2], 3);
}
END_TEST

START_TEST(test_request_limits) {
        VarlinkLimits l;

        proto_request_limits(1, &l);
        ck_assert_uint_eq(l.max_values, 17);
        ck_assert_uint_eq(l.max_containers, 16);
        ck_assert_uint_eq(l.max_array_elements, 1);

        proto_request_limits(100000, &l);
        ck_assert_uint_eq(l.max_values, 100016);
        ck_assert_uint_eq(l.max_containers, 16);
        ck_assert_uint_eq(l.max_array_elements, 100000);

        proto_request_limits(UINT32_MAX, &l);
        ck_assert_uint_eq(l.max_values, (size_t) UINT32_MAX + 16);
        ck_assert_uint_eq(l.max_array_elements, UINT32_MAX);

        /* Saturated, never wrapped around to a small limit. */
        proto_request_limits(SIZE_MAX - 15, &l);
        ck_assert_uint_eq(l.max_values, SIZE_MAX);
        proto_request_limits(SIZE_MAX, &l);
        ck_assert_uint_eq(l.max_values, SIZE_MAX);
        ck_assert_uint_eq(l.max_array_elements, SIZE_MAX);
}
END_TEST

/* The largest Normalize call: every key a call and Normalize have, and @n addresses. */
static char *normalize_call_largest_new(size_t n, size_t *ret_size) {
        static const char head[] = "{\"method\":\"io.vmaq.Normalize\",\"oneway\":false,\"more\":false,"
                                   "\"parameters\":{\"pid\":1,\"addresses\":[";
        static const char tail[] = "],\"build_ids\":true,\"map_files\":false,\"start_time\":1}}";
        char *text, *p;

        text = malloc(sizeof(head) + n * 6 + sizeof(tail));
        ck_assert_ptr_nonnull(text);
        p = stpcpy(text, head);
        for (size_t i = 0; i < n; i++)
                p = stpcpy(p, i == 0 ? "4096" : i % 2 ? ",\"0x1\"" : ",4096");
        p = stpcpy(p, tail);
        *ret_size = (size_t) (p - text);
        return text;
}

static const struct {
        size_t max_addresses;
        size_t n;
        int r;
} request_limit_vectors[] = {
        { 1,            1,              0 },
        { 1,            2,              -E2BIG },
        { 3,            3,              0 },
        { 3,            4,              -E2BIG },
        { 100000,       100000,         0 },
        { 100000,       100001,         -E2BIG },
};

START_TEST(test_request_limits_largest) {
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {};
        _cleanup_free_ char *text = NULL;
        const char *parameter = NULL;
        VarlinkCall call = {};
        VarlinkLimits l;
        size_t size;
        int r;

        proto_request_limits(request_limit_vectors[_i].max_addresses, &l);
        text = normalize_call_largest_new(request_limit_vectors[_i].n, &size);
        r = varlink_call_parse(text, size, &l, &call);
        ck_assert_int_eq(r, request_limit_vectors[_i].r);
        if (r < 0)
                return;

        ck_assert_int_eq(proto_normalize_request_decode(call.parameters, NULL, request_limit_vectors[_i].max_addresses,
                                                        &req, &parameter), 0);
        ck_assert_uint_eq(req.n_addresses, request_limit_vectors[_i].n);
        ck_assert_uint_eq(req.addresses[0], 4096);
        ck_assert(req.pin);
        varlink_call_done(&call);
}
END_TEST

/* The other methods' largest calls fit the limits of a daemon that takes a single address. */
static const char *const request_other_vectors[] = {
        "{\"method\":\"io.vmaq.ListMappings\",\"oneway\":false,\"more\":false,"
        "\"parameters\":{\"pid\":1,\"exec_only\":true,\"build_ids\":true,\"start_time\":1}}",
        "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"oneway\":false,\"more\":false,"
        "\"parameters\":{\"interface\":\"io.vmaq\"}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"oneway\":false,\"more\":false,\"parameters\":{}}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"oneway\":false,\"more\":false,\"parameters\":{}}",
};

START_TEST(test_request_limits_other) {
        const char *text = request_other_vectors[_i];
        VarlinkCall call = {};
        VarlinkLimits l;

        proto_request_limits(1, &l);
        ck_assert_int_eq(varlink_call_parse(text, strlen(text), &l, &call), 0);
        varlink_call_done(&call);
}
END_TEST

START_TEST(test_normalize_decode_no_parameters) {
        ProtoNormalizeRequest req = {};
        const char *parameter = NULL;

        ck_assert_int_eq(proto_normalize_request_decode(NULL, NULL, 100, &req, &parameter), -EINVAL);
        ck_assert_str_eq(parameter, "pid");
}
END_TEST

START_TEST(test_normalize_request_encode) {
        uint64_t addresses[] = { 0, 0xdeadbeef, UINT64_MAX };
        ProtoNormalizeRequest req = {
                .pid = 7,
                .addresses = addresses,
                .n_addresses = ELEMENTSOF(addresses),
                .build_ids = true,
                .pin = true,
                .start_time = UINT64_MAX,
        };
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest back = {};
        _cleanup_(varlink_call_done) VarlinkCall call = {};
        _cleanup_free_ char *text = NULL;
        const char *parameter = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_request_format(&req, false, &text, &size), 0);
        ck_assert_str_eq(text, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":7,"
                               "\"addresses\":[0,3735928559,18446744073709551615],"
                               "\"build_ids\":true,\"map_files\":false,\"start_time\":18446744073709551615}}");
        ck_assert_uint_eq(size, strlen(text) + 1);

        /* What the client sends, the daemon reads back exactly, its addresses packed. */
        ck_assert_int_eq(proto_call_parse(text, size - 1, NULL, &call), 0);
        ck_assert(call.packed.valid);
        ck_assert(!call.more);
        ck_assert_int_eq(proto_normalize_request_decode(call.parameters, &call.packed, 3, &back, &parameter), 0);
        ck_assert_int_eq(back.pid, 7);
        ck_assert_uint_eq(back.n_addresses, 3);
        ck_assert_uint_eq(back.addresses[1], 0xdeadbeef);
        ck_assert_uint_eq(back.addresses[2], UINT64_MAX);
        ck_assert(back.pin);
        ck_assert_uint_eq(back.start_time, UINT64_MAX);

        req.pin = false;
        req.map_files = true;
        req.build_ids = false;
        req.n_addresses = 1;
        free(TAKE_PTR(text));
        ck_assert_int_eq(proto_normalize_request_format(&req, true, &text, &size), 0);
        ck_assert_str_eq(text, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":7,\"addresses\":[0],"
                               "\"build_ids\":false,\"map_files\":true},\"more\":true}");

        /* A process named by a file descriptor: its index instead of the pid. */
        req.target = PROTO_TARGET_MAPS_FD;
        req.fd_index = 0;
        free(TAKE_PTR(text));
        ck_assert_int_eq(proto_normalize_request_format(&req, false, &text, &size), 0);
        ck_assert_str_eq(text, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"maps_fd\":0,\"addresses\":[0],"
                               "\"build_ids\":false,\"map_files\":true}}");
        varlink_call_done(&call);
        proto_normalize_request_done(&back);
        ck_assert_int_eq(proto_call_parse(text, size - 1, NULL, &call), 0);
        ck_assert_int_eq(proto_normalize_request_decode(call.parameters, &call.packed, 3, &back, &parameter), 0);
        ck_assert_int_eq(back.target, PROTO_TARGET_MAPS_FD);
        ck_assert_uint_eq(back.fd_index, 0);

        req.target = PROTO_TARGET_PIDFD;
        req.fd_index = 5;
        free(TAKE_PTR(text));
        ck_assert_int_eq(proto_normalize_request_format(&req, false, &text, &size), 0);
        ck_assert_ptr_nonnull(strstr(text, "{\"pidfd\":5,\"addresses\""));

        req.target = _PROTO_TARGET_MAX;
        free(TAKE_PTR(text));
        ck_assert_int_eq(proto_normalize_request_format(&req, false, &text, &size), -EINVAL);
        ck_assert_ptr_null(text);
}
END_TEST

/* --- Normalize: encoding the reply --------------------------------------- */

static const uint8_t test_build_id[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x0a, 0xff };

static const ProtoModule test_modules[] = {
        {
                .path = "/usr/bin/true",
                .map_files = "/proc/42/map_files/400000-401000",
                .build_id = test_build_id,
                .build_id_len = sizeof(test_build_id),
                .dev_major = 8,
                .dev_minor = 1,
                .inode = 1234,
        },
        {
                .path = "[vdso]",
                .vdso = true,
        },
        {
                .path = "/tmp/lib (deleted)",
                .build_id = test_build_id,
                .build_id_len = 0,              /* none */
                .deleted = true,
                .dev_major = 4095,
                .dev_minor = 1048575,
                .inode = UINT64_MAX,
        },
};

START_TEST(test_normalize_reply_encode) {
        static const ProtoResult results[] = {
                { .module = 0, .offset = 0x1234 },
                { .unknown = "unmapped" },
                { .module = 1, .offset = 0x10 },
                { .unknown = "anonymous", .module = 99 },
                { .unknown = "special" },
                { .module = 0, .offset = 0x1234 },
        };
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 42,
                        .start_time = 123456,
                        .n_modules = 2,
                        .modules = test_modules,
                        .n_results = ELEMENTSOF(results),
                        .results = results,
                }, 0, false, &msg, &size), 0);

        assert_reply_message(TAKE_PTR(msg), size,
                     "{\"pid\":42,\"start_time\":123456,\"modules\":["
                     "{\"path\":\"/usr/bin/true\",\"build_id\":\"deadbeef00010aff\",\"deleted\":false,\"vdso\":false,"
                     "\"map_files\":\"/proc/42/map_files/400000-401000\",\"dev_major\":8,\"dev_minor\":1,\"inode\":1234},"
                     "{\"path\":\"[vdso]\",\"build_id\":null,\"deleted\":false,\"vdso\":true,"
                     "\"dev_major\":0,\"dev_minor\":0,\"inode\":0}],"
                     "\"results\":[{\"module\":0,\"offset\":4660},{\"unknown\":\"unmapped\"},{\"module\":1,\"offset\":16},"
                     "{\"unknown\":\"anonymous\"},{\"unknown\":\"special\"},{\"module\":0,\"offset\":4660}]}");
}
END_TEST

/* "host_path" only where set, after "map_files"; read back; counted in the size bound. */
START_TEST(test_normalize_reply_host_path) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        const ProtoModule mod = {
                .path = "/usr/lib/libc.so.6",
                .map_files = "/proc/7/map_files/1000-2000",
                .host_path = "/proc/4242/root/usr/lib/libc.so.6",
                .dev_major = 8,
                .inode = 9,
        };
        const ProtoResult res = { .module = 0, .offset = 16 };
        ProtoNormalizeReply reply = {};
        struct json_object *p = NULL;
        const char *error = NULL, *field = NULL;
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 7, .n_modules = 1, .modules = &mod, .n_results = 1, .results = &res,
                }, 0, false, &msg, &size), 0);
        ck_assert_uint_le(size, proto_module_size_max(&mod) + proto_result_size_max() + 256);
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        assert_reply_message(TAKE_PTR(msg), size,
                     "{\"pid\":7,\"start_time\":0,\"modules\":["
                     "{\"path\":\"/usr/lib/libc.so.6\",\"build_id\":null,\"deleted\":false,\"vdso\":false,"
                     "\"map_files\":\"/proc/7/map_files/1000-2000\","
                     "\"host_path\":\"/proc/4242/root/usr/lib/libc.so.6\","
                     "\"dev_major\":8,\"dev_minor\":0,\"inode\":9}],"
                     "\"results\":[{\"module\":0,\"offset\":16}]}");

        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(proto_normalize_reply_decode(p, NULL, 0, &reply, &field), 0);
        ck_assert_uint_eq(reply.n_modules, 1);
        ck_assert_str_eq(reply.modules[0].host_path, "/proc/4242/root/usr/lib/libc.so.6");
        ck_assert_str_eq(reply.modules[0].map_files, "/proc/7/map_files/1000-2000");
        proto_normalize_reply_done(&reply);
}
END_TEST

/*
 * What symbolizers need: a module's ELF type, Go build ID, htlhash and
 * package note, a result's ELF address or why it has none. Read back the
 * same through the results reader and through json-c.
 */
START_TEST(test_normalize_reply_elf) {
        ProtoModule mods[2] = {
                {
                        .path = "/usr/bin/app",
                        .dev_major = 8,
                        .inode = 9,
                        .elf_type = "dyn",
                        .go_build_id = "abc/def",
                        .has_htlhash = true,
                        .htlhash = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                     0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff },
                        .has_package = true,
                        .package = { .type = "deb", .name = "app", .os_version = "12",
                                     .debug_info_url = "https://debuginfod.example" },
                },
                { .path = "/data", .dev_major = 8, .inode = 10 },
        };
        const ProtoResult results[] = {
                { .module = 0, .offset = 0x1010, .has_elf_address = true, .elf_address = 0x401010 },
                { .module = 0, .offset = 0x99000, .no_elf_address = "outside_load_segments" },
                { .module = 1, .offset = 4, .no_elf_address = "not_elf" },
                { .module = 0, .offset = 0, .has_elf_address = true, .elf_address = UINT64_MAX },
                { .unknown = "anonymous" },
        };
        static const char expected[] =
                "{\"pid\":7,\"start_time\":0,\"modules\":["
                "{\"path\":\"/usr/bin/app\",\"build_id\":null,\"deleted\":false,\"vdso\":false,"
                "\"dev_major\":8,\"dev_minor\":0,\"inode\":9,\"elf_type\":\"dyn\",\"go_build_id\":\"abc/def\","
                "\"htlhash\":\"00112233445566778899aabbccddeeff\","
                "\"package\":{\"type\":\"deb\",\"name\":\"app\",\"osVersion\":\"12\","
                "\"debugInfoUrl\":\"https://debuginfod.example\"}},"
                "{\"path\":\"/data\",\"build_id\":null,\"deleted\":false,\"vdso\":false,"
                "\"dev_major\":8,\"dev_minor\":0,\"inode\":10}],"
                "\"results\":[{\"module\":0,\"offset\":4112,\"elf_address\":4198416},"
                "{\"module\":0,\"offset\":626688,\"no_elf_address\":\"outside_load_segments\"},"
                "{\"module\":1,\"offset\":4,\"no_elf_address\":\"not_elf\"},"
                "{\"module\":0,\"offset\":0,\"elf_address\":18446744073709551615},"
                "{\"unknown\":\"anonymous\"}]}";
        ProtoNormalizeReply out = {
                .pid = 7, .n_modules = 2, .modules = mods, .n_results = ELEMENTSOF(results), .results = results,
        };
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&out, 0, false, &msg, &size), 0);
        ck_assert_uint_le(size, proto_normalize_reply_size_max(&out));
        {
                _cleanup_free_ char *copy = strdup(msg);

                ck_assert_ptr_nonnull(copy);
                /* Both readers: the results reader takes them as written, json-c the rest. */
                for (unsigned fast = 0; fast < 2; fast++) {
                        _cleanup_(json_object_putp) struct json_object *o = NULL;
                        _cleanup_(proto_results_done) ProtoResults read = {};
                        ProtoNormalizeReply back = {};
                        struct json_object *p = NULL;
                        const char *error = NULL, *field = NULL;

                        if (fast)
                                ck_assert_int_eq(proto_reply_parse(copy, size - 1, &o, &read), 0);
                        else
                                ck_assert_int_eq(varlink_json_parse(copy, size - 1, NULL, &o), 0);
                        ck_assert(read.valid == (bool) fast);
                        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
                        ck_assert_int_eq(proto_normalize_reply_decode(p, fast ? &read : NULL, 0, &back, &field), 0);
                        ck_assert_uint_eq(back.n_results, ELEMENTSOF(results));
                        for (size_t i = 0; i < ELEMENTSOF(results); i++) {
                                ck_assert_int_eq(back.results[i].has_elf_address, results[i].has_elf_address);
                                ck_assert_uint_eq(back.results[i].elf_address, results[i].elf_address);
                                ck_assert_pstr_eq(back.results[i].no_elf_address, results[i].no_elf_address);
                        }
                        ck_assert_str_eq(back.modules[0].elf_type, "dyn");
                        ck_assert_str_eq(back.modules[0].go_build_id, "abc/def");
                        ck_assert(back.modules[0].has_htlhash);
                        ck_assert_mem_eq(back.modules[0].htlhash, mods[0].htlhash, PROTO_HTLHASH_SIZE);
                        ck_assert(back.modules[0].has_package);
                        ck_assert_str_eq(back.modules[0].package.type, "deb");
                        ck_assert_str_eq(back.modules[0].package.debug_info_url, "https://debuginfod.example");
                        ck_assert_ptr_null(back.modules[0].package.version);
                        ck_assert_ptr_null(back.modules[1].elf_type);
                        ck_assert(!back.modules[1].has_htlhash && !back.modules[1].has_package);
                        proto_normalize_reply_done(&back);
                }
        }
        assert_reply_message(TAKE_PTR(msg), size, expected);

        /* What the encoder refuses: an unknown type, a reason with an address, a reason of ours not. */
        mods[0].elf_type = "core";
        ck_assert_int_eq(proto_normalize_reply_format(&out, 0, false, &msg, &size), -EINVAL);
        mods[0].elf_type = "exec";
        {
                ProtoResult bad[] = { { .module = 0, .has_elf_address = true, .no_elf_address = "not_elf" } };

                out.results = bad;
                out.n_results = 1;
                ck_assert_int_eq(proto_normalize_reply_format(&out, 0, false, &msg, &size), -EINVAL);
                bad[0] = (ProtoResult) { .module = 0, .no_elf_address = "nope" };
                ck_assert_int_eq(proto_normalize_reply_format(&out, 0, false, &msg, &size), -EINVAL);
                bad[0] = (ProtoResult) { .unknown = "unmapped", .no_elf_address = "not_elf" };
                ck_assert_int_eq(proto_normalize_reply_format(&out, 0, false, &msg, &size), -EINVAL);
        }
}
END_TEST

/* Results that say too much, or an unknown reason: refused by the decoder. */
static const char *const bad_elf_results[] = {
        "[{\"module\":0,\"offset\":1,\"elf_address\":2,\"no_elf_address\":\"not_elf\"}]",
        "[{\"module\":0,\"offset\":1,\"no_elf_address\":\"whatever\"}]",
        "[{\"unknown\":\"unmapped\",\"elf_address\":2}]",
        "[{\"unknown\":\"unmapped\",\"no_elf_address\":\"not_elf\"}]",
        "[{\"module\":0,\"offset\":1,\"elf_address\":-2}]",
};

START_TEST(test_normalize_reply_elf_bad) {
        _cleanup_free_ char *text = NULL;
        const char *field = NULL;
        int fast;

        ck_assert_int_ge(asprintf(&text, "{\"parameters\":{\"pid\":1,\"start_time\":2,\"modules\":[{\"path\":\"/a\","
                                         "\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":0,"
                                         "\"dev_minor\":0,\"inode\":1}],\"results\":%s}}", bad_elf_results[_i]), 0);
        for (fast = 0; fast < 2; fast++) {
                _cleanup_(json_object_putp) struct json_object *o = NULL;
                _cleanup_(proto_results_done) ProtoResults read = {};
                ProtoNormalizeReply back = {};
                struct json_object *p = NULL;
                const char *error = NULL;

                if (fast)
                        ck_assert_int_eq(proto_reply_parse(text, strlen(text), &o, &read), 0);
                else
                        ck_assert_int_eq(varlink_json_parse(text, strlen(text), NULL, &o), 0);
                ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
                ck_assert_int_eq(proto_normalize_reply_decode(p, fast ? &read : NULL, 0, &back, &field), -EBADMSG);
        }
}
END_TEST

/* An answer from an exited process's snapshot says so; every other answer is as before. */
START_TEST(test_normalize_reply_exited) {
        static const ProtoResult results[] = {
                { .module = 0, .offset = 0x10 },
                { .unknown = "exited" },
        };
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 7,
                        .start_time = 8,
                        .exited = true,
                        .n_modules = 1,
                        .modules = &test_modules[1],
                        .n_results = ELEMENTSOF(results),
                        .results = results,
                }, 0, false, &msg, &size), 0);
        assert_reply_message(TAKE_PTR(msg), size,
                     "{\"pid\":7,\"start_time\":8,\"exited\":true,\"modules\":["
                     "{\"path\":\"[vdso]\",\"build_id\":null,\"deleted\":false,\"vdso\":true,"
                     "\"dev_major\":0,\"dev_minor\":0,\"inode\":0}],"
                     "\"results\":[{\"module\":0,\"offset\":16},{\"unknown\":\"exited\"}]}");

        /* A later part of a stream says it too. */
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 7,
                        .start_time = 8,
                        .exited = true,
                        .n_results = 1,
                        .results = results,
                }, 1, true, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"parameters\":{\"pid\":7,\"start_time\":8,\"exited\":true,\"modules\":[],"
                         "\"results\":[{\"module\":0,\"offset\":16}]},\"continues\":true}");
        ck_assert_uint_eq(size, strlen(msg) + 1);
        free(msg);
}
END_TEST

START_TEST(test_normalize_reply_empty) {
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) { .pid = 1 }, 0, false, &msg, &size), 0);
        assert_reply_message(TAKE_PTR(msg), size, "{\"pid\":1,\"start_time\":0,\"modules\":[],\"results\":[]}");
}
END_TEST

/* The size bounds hold for the worst strings: every byte escaped, every number at its longest. */
START_TEST(test_reply_size_max) {
        static const uint8_t id[VMAQ_BUILD_ID_MAX] = { 0xff };
        char path[101];
        _cleanup_free_ char *msg = NULL;
        size_t size = 0;

        memset(path, '\x01', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';

        {
                const ProtoMapping m = {
                        .start = UINT64_MAX, .end = UINT64_MAX, .offset = UINT64_MAX, .inode = UINT64_MAX,
                        .dev_major = UINT32_MAX, .dev_minor = UINT32_MAX, .perms = "rwxs", .path = path,
                        .kind = "anonymous", .deleted = true, .build_id = id, .build_id_len = sizeof(id),
                        .build_id_skipped = true,
                };

                ck_assert_int_eq(proto_list_mappings_reply_format(INT32_MAX, UINT64_MAX, &m, 1, true, UINT64_MAX,
                                                                  &msg, &size), 0);
                ck_assert_uint_le(size, proto_list_mappings_reply_size_max() + proto_mapping_size_max(strlen(path), false));
        }
        free(msg);
        msg = NULL;
        {
                const ProtoModule mod = {
                        .path = path, .map_files = path, .build_id = id, .build_id_len = sizeof(id),
                        .build_id_skipped = true, .deleted = true, .vdso = true,
                        .dev_major = UINT32_MAX, .dev_minor = UINT32_MAX, .inode = UINT64_MAX,
                };
                const ProtoResult res[] = {
                        { .module = 0, .offset = UINT64_MAX },
                        { .unknown = "anonymous" },
                };
                const ProtoNormalizeReply reply = {
                        .pid = INT32_MAX, .start_time = UINT64_MAX,
                        .n_modules = 1, .modules = &mod, .n_results = 2, .results = res,
                };

                ck_assert_int_eq(proto_normalize_reply_format(&reply, 0, false, &msg, &size), 0);
                ck_assert_uint_le(size, proto_normalize_reply_size_max(&reply));
                /* Not a bound so loose that it says nothing. */
                ck_assert_uint_ge(proto_normalize_reply_size_max(&reply), 2 * 6 * strlen(path));
        }
}
END_TEST

/* A build ID skipped for the call's cap says so, and only then; it reads back. */
START_TEST(test_build_id_skipped) {
        static const ProtoModule modules[] = {
                { .path = "/a", .build_id_skipped = true },
                { .path = "/b" },
        };
        static const ProtoResult results[] = { { .module = 0 }, { .module = 1 } };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p = NULL;
        ProtoNormalizeReply reply = {};
        const char *error = NULL, *field = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 1, .n_modules = 2, .modules = modules, .n_results = 2, .results = results,
                }, 0, false, &msg, &size), 0);
        ck_assert_ptr_nonnull(strstr(msg, "{\"path\":\"/a\",\"build_id\":null,\"build_id_skipped\":true,"));
        ck_assert_ptr_nonnull(strstr(msg, "{\"path\":\"/b\",\"build_id\":null,\"deleted\""));
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
        ck_assert_int_eq(proto_normalize_reply_decode(p, NULL, 0, &reply, &field), 0);
        ck_assert(reply.modules[0].build_id_skipped);
        ck_assert(!reply.modules[1].build_id_skipped);
        proto_normalize_reply_done(&reply);
}
END_TEST

/* 2^64-1 travels as the integer 18446744073709551615 and reads back exactly. */
START_TEST(test_normalize_reply_u64) {
        static const ProtoResult results[] = {
                { .module = 0, .offset = UINT64_MAX },
                { .module = 0, .offset = UINT64_C(9223372036854775808) },
        };
        _cleanup_(json_object_putp) struct json_object *back = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p, *r, *m;
        size_t size;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 1,
                        .start_time = UINT64_MAX,
                        .n_modules = 1,
                        .modules = &test_modules[2],
                        .n_results = ELEMENTSOF(results),
                        .results = results,
                }, 0, false, &msg, &size), 0);

        ck_assert_ptr_nonnull(strstr(msg, "\"start_time\":18446744073709551615,"));
        ck_assert_ptr_nonnull(strstr(msg, "\"offset\":18446744073709551615}"));
        ck_assert_ptr_nonnull(strstr(msg, "\"offset\":9223372036854775808}"));
        ck_assert_ptr_nonnull(strstr(msg, "\"inode\":18446744073709551615}"));
        ck_assert_ptr_nonnull(strstr(msg, "\"path\":\"/tmp/lib (deleted)\",\"build_id\":null,\"deleted\":true,"));
        ck_assert_ptr_nonnull(strstr(msg, "\"dev_major\":4095,\"dev_minor\":1048575,"));

        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &back), 0);
        p = json_object_object_get(back, "parameters");
        ck_assert_uint_eq(json_object_get_uint64(json_object_object_get(p, "start_time")), UINT64_MAX);
        r = json_object_array_get_idx(json_object_object_get(p, "results"), 0);
        ck_assert_uint_eq(json_object_get_uint64(json_object_object_get(r, "offset")), UINT64_MAX);
        r = json_object_array_get_idx(json_object_object_get(p, "results"), 1);
        ck_assert_uint_eq(json_object_get_uint64(json_object_object_get(r, "offset")), UINT64_C(9223372036854775808));
        m = json_object_array_get_idx(json_object_object_get(p, "modules"), 0);
        ck_assert_uint_eq(json_object_get_uint64(json_object_object_get(m, "inode")), UINT64_MAX);
}
END_TEST

START_TEST(test_normalize_reply_invalid) {
        static const uint8_t long_id[VMAQ_BUILD_ID_MAX + 1] = {};
        ProtoModule bad_module = test_modules[0];
        char *msg = NULL;
        size_t size = 0;

        /* A module index out of range. */
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_modules = 1, .modules = test_modules,
                        .n_results = 1, .results = &(ProtoResult) { .module = 1 },
                }, 0, false, &msg, &size), -EINVAL);
        /* An unknown reason the interface does not list. */
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_results = 1, .results = &(ProtoResult) { .unknown = "module" },
                }, 0, false, &msg, &size), -EINVAL);
        /* A build ID too long, and no path. */
        bad_module.build_id = long_id;
        bad_module.build_id_len = sizeof(long_id);
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_modules = 1, .modules = &bad_module,
                }, 0, false, &msg, &size), -EINVAL);
        bad_module = test_modules[1];
        bad_module.path = NULL;
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_modules = 1, .modules = &bad_module,
                }, 0, false, &msg, &size), -EINVAL);
        ck_assert_ptr_null(msg);

        /* In a stream, an index may name the modules of the replies before: those, and no more. */
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_modules = 1, .modules = test_modules,
                        .n_results = 1, .results = &(ProtoResult) { .module = 2 },
                }, 1, true, &msg, &size), -EINVAL);
        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .n_modules = 1, .modules = test_modules,
                        .n_results = 1, .results = &(ProtoResult) { .module = 1 },
                }, 1, true, &msg, &size), 0);
        ck_assert_ptr_nonnull(strstr(msg, "\"results\":[{\"module\":1,\"offset\":0}]},\"continues\":true}"));
        ck_assert_int_eq(msg[size - 1], '\0');
        free(msg);
}
END_TEST

/* --- ListMappings -------------------------------------------------------- */

static const struct {
        const char *parameters;
        int r;
        const char *parameter;
        pid_t pid;
        bool exec_only, build_ids, pin;
        uint64_t start_time;
        uint64_t start;
        ProtoTarget target;
        unsigned fd_index;
} list_mappings_vectors[] = {
        { "{\"pid\":1}", 0, NULL, 1, false, true, false, 0 },
        { "{\"pid\":3,\"exec_only\":true,\"build_ids\":false,\"start_time\":5}", 0, NULL, 3, true, false, true, 5 },
        { "{\"start_time\":18446744073709551615,\"pid\":3}", 0, NULL, 3, false, true, true, UINT64_MAX },
        { "{}",                                         -EINVAL, "pid" },
        { "{\"pid\":0}",                                -EINVAL, "pid" },
        { "{\"pid\":\"1\"}",                            -EINVAL, "pid" },
        { "{\"pid\":2147483648}",                       -EINVAL, "pid" },
        { "{\"pid\":1,\"exec_only\":\"yes\"}",          -EINVAL, "exec_only" },
        { "{\"pid\":1,\"exec_only\":1}",                -EINVAL, "exec_only" },
        { "{\"pid\":1,\"build_ids\":null}",             -EINVAL, "build_ids" },
        { "{\"pid\":1,\"start_time\":-1}",              -EINVAL, "start_time" },
        { "{\"pid\":1,\"start_time\":18446744073709551616}", -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1]}",              -EINVAL, "addresses" },
        { "{\"pid\":1,\"map_files\":true}",             -EINVAL, "map_files" },
        { "{\"pid\":1,\"start\":4096}", 0, NULL, 1, false, true, false, 0, 4096 },
        { "{\"pid\":1,\"start\":\"0x7f0000001000\"}", 0, NULL, 1, false, true, false, 0, 0x7f0000001000 },
        { "{\"pid\":1,\"start\":18446744073709551615}", 0, NULL, 1, false, true, false, 0, UINT64_MAX },
        { "{\"pid\":1,\"start\":18446744073709551616}", -EINVAL, "start" },
        { "{\"pid\":1,\"start\":-1}",                  -EINVAL, "start" },
        { "{\"pid\":1,\"start\":\"0x\"}",              -EINVAL, "start" },
        { "{\"pid\":1,\"start\":null}",                -EINVAL, "start" },
        { "{\"pidfd\":1,\"exec_only\":true}", 0, NULL, 0, true, true, false, 0, 0, PROTO_TARGET_PIDFD, 1 },
        { "{\"maps_fd\":0}", 0, NULL, 0, false, true, false, 0, 0, PROTO_TARGET_MAPS_FD, 0 },
        { "{\"maps_fd\":0,\"start_time\":1}",          -EINVAL, "start_time" },
        { "{\"pid\":1,\"maps_fd\":0}",                 -EINVAL, "maps_fd" },
        { "{\"pidfd\":true}",                          -EINVAL, "pidfd" },
};

START_TEST(test_list_mappings_decode) {
        _cleanup_(json_object_putp) struct json_object *p = NULL;
        ProtoListMappingsRequest req = { .pid = -42 };
        const char *parameter = NULL;
        int r;

        p = parse(list_mappings_vectors[_i].parameters);
        r = proto_list_mappings_request_decode(p, &req, &parameter);
        ck_assert_msg(r == list_mappings_vectors[_i].r, "%s: %d", list_mappings_vectors[_i].parameters, r);
        if (r < 0) {
                ck_assert_str_eq(parameter, list_mappings_vectors[_i].parameter);
                ck_assert_int_eq(req.pid, -42);
                return;
        }

        ck_assert_int_eq(req.pid, list_mappings_vectors[_i].pid);
        ck_assert_int_eq(req.exec_only, list_mappings_vectors[_i].exec_only);
        ck_assert_int_eq(req.build_ids, list_mappings_vectors[_i].build_ids);
        ck_assert_int_eq(req.pin, list_mappings_vectors[_i].pin);
        ck_assert_uint_eq(req.start_time, list_mappings_vectors[_i].start_time);
        ck_assert_uint_eq(req.start, list_mappings_vectors[_i].start);
        ck_assert_int_eq(req.target, list_mappings_vectors[_i].target);
        ck_assert_uint_eq(req.fd_index, list_mappings_vectors[_i].fd_index);
}
END_TEST

START_TEST(test_list_mappings_encode) {
        static const uint8_t id[] = { 0x01, 0x23, 0xab };
        const ProtoMapping mappings[] = {
                {
                        .start = 0x400000, .end = 0x401000, .offset = 0x1000, .inode = 99,
                        .dev_major = 8, .dev_minor = 2, .perms = "r-xp", .path = "/bin/x", .kind = "file",
                        .build_id = id, .build_id_len = sizeof(id),
                },
                {
                        .start = 0x500000, .end = 0x521000, .perms = "rw-p", .kind = "anonymous",
                },
                {
                        .start = UINT64_C(0xffffffffff600000), .end = UINT64_C(0xffffffffff601000),
                        .perms = "--xp", .path = "[vsyscall]", .kind = "special",
                },
                {
                        .start = 0x7000, .end = 0x8000, .perms = "r-xp", .path = "/gone", .kind = "file",
                        .deleted = true,
                },
        };
        char *msg = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_list_mappings_reply_format(9, 77, mappings, ELEMENTSOF(mappings), false, 0, &msg,
                                                          &size), 0);
        assert_reply_message(TAKE_PTR(msg), size,
                     "{\"pid\":9,\"start_time\":77,\"mappings\":["
                     "{\"start\":4194304,\"end\":4198400,\"perms\":\"r-xp\",\"offset\":4096,\"dev_major\":8,\"dev_minor\":2,"
                     "\"inode\":99,\"path\":\"/bin/x\",\"kind\":\"file\",\"deleted\":false,\"build_id\":\"0123ab\"},"
                     "{\"start\":5242880,\"end\":5378048,\"perms\":\"rw-p\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,"
                     "\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null},"
                     "{\"start\":18446744073699065856,\"end\":18446744073699069952,\"perms\":\"--xp\",\"offset\":0,"
                     "\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"path\":\"[vsyscall]\",\"kind\":\"special\","
                     "\"deleted\":false,\"build_id\":null},"
                     "{\"start\":28672,\"end\":32768,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,"
                     "\"inode\":0,\"path\":\"/gone\",\"kind\":\"file\",\"deleted\":true,\"build_id\":null}]}");

        ck_assert_int_eq(proto_list_mappings_reply_format(9, 77, NULL, 0, false, 0, &msg, &size), 0);
        assert_reply_message(TAKE_PTR(msg), size, "{\"pid\":9,\"start_time\":77,\"mappings\":[]}");

        /* Cut short: where to go on. */
        ck_assert_int_eq(proto_list_mappings_reply_format(9, 77, mappings, 1, true, UINT64_MAX, &msg, &size), 0);
        assert_reply_message(TAKE_PTR(msg), size,
                     "{\"pid\":9,\"start_time\":77,\"mappings\":["
                     "{\"start\":4194304,\"end\":4198400,\"perms\":\"r-xp\",\"offset\":4096,\"dev_major\":8,\"dev_minor\":2,"
                     "\"inode\":99,\"path\":\"/bin/x\",\"kind\":\"file\",\"deleted\":false,\"build_id\":\"0123ab\"}],"
                     "\"next\":18446744073709551615}");

        ck_assert_int_eq(proto_list_mappings_reply_format(9, 77, &(ProtoMapping) { .perms = "r--p", .kind = "heap" }, 1,
                                                          false, 0, &msg, &size), -EINVAL);
        ck_assert_int_eq(proto_list_mappings_reply_format(9, 77, &(ProtoMapping) { .kind = "file" }, 1, false, 0, &msg,
                                                          &size), -EINVAL);
        ck_assert_ptr_null(msg);
}
END_TEST

/* --- GetStatus, GetInfo, empty requests ---------------------------------- */

START_TEST(test_status_encode) {
        ProtoStatus st = {
                .version = "0.1",
                .backend = "ioctl",
                .uptime_usec = 1000000,
                .connections = 2,
                .connections_max = 256,
                .proc_cache_size = 3,
                .proc_cache_max = 1024,
                .proc_cache_hits = 10,
                .proc_cache_misses = 4,
                .build_id_cache_size = 5,
                .build_id_cache_max = 4096,
                .build_id_cache_hits = 20,
                .build_id_cache_misses = UINT64_MAX,
                .connections_per_user_max = 64,
                .workers_used = 7,
                .workers_max = 16,
                .memory_used = 8,
                .memory_max = 9,
                .refused_connections = 11,
                .refused_user_connections = 12,
                .refused_memory = 13,
                .refused_timeouts = 14,
                .refused_idle = 15,
                .requests = 30,
                .errors = 6,
                .denied = 1,
                .snapshots_held = 22,
                .snapshots_exited = 23,
                .snapshot_memory_used = 24,
                .snapshot_memory_max = UINT64_MAX,
                .max_addresses = 100000,
                .max_message_size = 16777216,
                .max_reply_size = 65536,
        };
        struct json_object *o = NULL;

        ck_assert_int_eq(proto_status_encode(&st, &o), 0);
        assert_reply(o,
                     "{\"version\":\"0.1\",\"backend\":\"ioctl\",\"uptime_usec\":1000000,\"connections\":2,"
                     "\"connections_max\":256,\"connections_per_user_max\":64,"
                     "\"proc_cache\":{\"size\":3,\"max\":1024,\"hits\":10,\"misses\":4},"
                     "\"build_id_cache\":{\"size\":5,\"max\":4096,\"hits\":20,\"misses\":18446744073709551615},"
                     "\"workers\":{\"used\":7,\"max\":16},\"memory\":{\"used\":8,\"max\":9},"
                     "\"refused\":{\"connections\":11,\"user_connections\":12,\"memory\":13,\"timeouts\":14,"
                     "\"idle\":15},\"requests\":30,\"errors\":6,\"denied\":1,"
                     "\"snapshots\":{\"held\":22,\"exited\":23,\"memory_used\":24,"
                     "\"memory_max\":18446744073709551615},"
                     "\"limits\":{\"max_addresses\":100000,\"max_message_size\":16777216,\"max_reply_size\":65536}}");

        o = NULL;
        st.backend = "auto";
        ck_assert_int_eq(proto_status_encode(&st, &o), -EINVAL);
        st.backend = "text";
        st.version = NULL;
        ck_assert_int_eq(proto_status_encode(&st, &o), -EINVAL);
        ck_assert_ptr_null(o);
}
END_TEST

START_TEST(test_info_encode) {
        struct json_object *o = NULL;

        ck_assert_int_eq(proto_info_encode(&(ProtoInfo) {
                        .vendor = "vmaqd",
                        .product = "vmaqd",
                        .version = "0.1",
                        .url = "https://example.org/vmaqd",
                }, &o), 0);
        assert_reply(o,
                     "{\"vendor\":\"vmaqd\",\"product\":\"vmaqd\",\"version\":\"0.1\",\"url\":\"https://example.org/vmaqd\","
                     "\"interfaces\":[\"org.varlink.service\",\"io.vmaq\"]}");

        o = NULL;
        ck_assert_int_eq(proto_info_encode(&(ProtoInfo) { .vendor = "v", .product = "p", .version = "1" }, &o), -EINVAL);
        ck_assert_ptr_null(o);
}
END_TEST

START_TEST(test_empty_request_decode) {
        _cleanup_(json_object_putp) struct json_object *empty = NULL, *one = NULL;
        const char *parameter = NULL;

        empty = parse("{}");
        one = parse("{\"pid\":1}");
        ck_assert_int_eq(proto_empty_request_decode(NULL, &parameter), 0);
        ck_assert_int_eq(proto_empty_request_decode(empty, &parameter), 0);
        ck_assert_ptr_null(parameter);
        ck_assert_int_eq(proto_empty_request_decode(one, &parameter), -EINVAL);
        ck_assert_str_eq(parameter, "pid");
}
END_TEST

/* --- GetInterfaceDescription --------------------------------------------- */

static const struct {
        const char *parameters;
        int r;
        const char *parameter;
} description_vectors[] = {
        { "{\"interface\":\"io.vmaq\"}",                0,              NULL },
        { "{\"interface\":\"org.varlink.service\"}",    0,              NULL },
        { "{\"interface\":\"org.example\"}",            -EADDRNOTAVAIL, NULL },
        { "{\"interface\":\"io.vmaq.Normalize\"}",      -EADDRNOTAVAIL, NULL },
        { "{\"interface\":\"\"}",                       -EADDRNOTAVAIL, NULL },
        { "{\"interface\":\"IO.VMAQ\"}",                -EADDRNOTAVAIL, NULL },
        { "{}",                                         -EINVAL,        "interface" },
        { "{\"interface\":1}",                          -EINVAL,        "interface" },
        { "{\"interface\":null}",                       -EINVAL,        "interface" },
        { "{\"interface\":[\"io.vmaq\"]}",              -EINVAL,        "interface" },
        { "{\"interface\":\"io.vmaq\",\"x\":1}",        -EINVAL,        "x" },
};

START_TEST(test_interface_description) {
        _cleanup_(json_object_putp) struct json_object *p = NULL, *o = NULL;
        const char *parameter = NULL;
        int r;

        p = parse(description_vectors[_i].parameters);
        r = proto_interface_description_encode(p, &o, &parameter);
        ck_assert_msg(r == description_vectors[_i].r, "%s: %d", description_vectors[_i].parameters, r);
        if (description_vectors[_i].parameter)
                ck_assert_str_eq(parameter, description_vectors[_i].parameter);
        if (r < 0) {
                ck_assert_ptr_null(o);
                return;
        }

        ck_assert_int_eq(json_object_object_length(o), 1);
        if (_i == 0)
                ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "description")),
                                 proto_vmaq_interface_description);
        else {
                const char *d = json_object_get_string(json_object_object_get(o, "description"));

                ck_assert_ptr_nonnull(strstr(d, "\ninterface org.varlink.service\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nmethod GetInfo() -> (\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nmethod GetInterfaceDescription(interface: string) -> (description: string)\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nerror InterfaceNotFound (interface: string)\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nerror MethodNotFound (method: string)\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nerror MethodNotImplemented (method: string)\n"));
                ck_assert_ptr_nonnull(strstr(d, "\nerror InvalidParameter (parameter: string)\n"));
        }
}
END_TEST

/* The embedded proto/io.vmaq.varlink declares every method and error vmaqd uses. */
START_TEST(test_embedded_description) {
        const char *d = proto_vmaq_interface_description;

        ck_assert(d[0] == '#' || strncmp(d, "interface io.vmaq\n", 18) == 0);
        ck_assert(strncmp(d, "interface io.vmaq\n", 18) == 0 || strstr(d, "\ninterface io.vmaq\n"));
        ck_assert_int_eq(d[strlen(d) - 1], '\n');

        for (ProtoMethod m = 0; m < _PROTO_METHOD_MAX; m++) {
                const char *name = proto_method_to_string(m);
                _cleanup_free_ char *decl = NULL;

                if (strncmp(name, VMAQ_INTERFACE ".", strlen(VMAQ_INTERFACE) + 1) != 0)
                        continue;
                ck_assert_int_ge(asprintf(&decl, "\nmethod %s(", name + strlen(VMAQ_INTERFACE) + 1), 0);
                ck_assert_msg(strstr(d, decl), "%s missing", name);
        }

        for (ProtoError e = 0; e < _PROTO_ERROR_MAX; e++) {
                const char *name = proto_error_to_string(e);
                _cleanup_free_ char *decl = NULL;

                if (strncmp(name, VMAQ_INTERFACE ".", strlen(VMAQ_INTERFACE) + 1) != 0)
                        continue;
                ck_assert_int_ge(asprintf(&decl, "\nerror %s (", name + strlen(VMAQ_INTERFACE) + 1), 0);
                ck_assert_msg(strstr(d, decl), "%s missing", name);
        }
}
END_TEST

/* --- the client's side: calls --------------------------------------------- */

START_TEST(test_call_format) {
        _cleanup_free_ char *msg = NULL;
        struct json_object *p = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_call_format(PROTO_METHOD_GET_STATUS, NULL, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{}}");
        ck_assert_uint_eq(size, strlen(msg) + 1);
        free(TAKE_PTR(msg));

        ck_assert_int_eq(proto_normalize_request_format(&(ProtoNormalizeRequest) {
                        .pid = 7,
                        .addresses = (uint64_t[]) { 0, UINT64_MAX },
                        .n_addresses = 2,
                        .build_ids = true,
                        .pin = true,
                        .start_time = UINT64_C(9223372036854775808),
                }, false, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":7,\"addresses\":"
                         "[0,18446744073709551615],\"build_ids\":true,\"map_files\":false,"
                         "\"start_time\":9223372036854775808}}");
        ck_assert_uint_eq(size, strlen(msg) + 1);
        free(TAKE_PTR(msg));

        ck_assert_int_eq(proto_list_mappings_request_encode(&(ProtoListMappingsRequest) {
                        .pid = 9,
                        .exec_only = true,
                }, &p), 0);
        ck_assert_int_eq(proto_call_format(PROTO_METHOD_LIST_MAPPINGS, p, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":9,\"exec_only\":true,"
                         "\"build_ids\":false}}");
        free(TAKE_PTR(msg));

        /* Each parameter once. */
        ck_assert_int_eq(proto_list_mappings_request_encode(&(ProtoListMappingsRequest) {
                        .pid = 9,
                        .build_ids = true,
                        .pin = true,
                        .start_time = 4365,
                        .start = UINT64_C(0x7f5f1fc26000),
                }, &p), 0);
        ck_assert_int_eq(proto_call_format(PROTO_METHOD_LIST_MAPPINGS, p, &msg, &size), 0);
        ck_assert_str_eq(msg, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":9,\"exec_only\":false,"
                         "\"build_ids\":true,\"start_time\":4365,\"start\":140046531452928}}");
        free(TAKE_PTR(msg));

        /* Taken over also on failure. */
        ck_assert_int_eq(proto_call_format(_PROTO_METHOD_MAX, json_object_new_object(), &msg, &size), -EINVAL);
        ck_assert_int_eq(proto_call_format(PROTO_METHOD_GET_STATUS, json_object_new_array(), &msg, &size), -EINVAL);
        ck_assert_ptr_null(msg);
}
END_TEST

/* A ListMappings request the client encodes reads back the same on the daemon's side. */
static const struct {
        const char *parameters;
        int r;
        const char *parameter;
        pid_t pid;
        bool pin;
        uint64_t start_time;
} track_vectors[] = {
        { "{\"pid\":1}",                                0, NULL, 1, false, 0 },
        { "{\"pid\":2147483647,\"start_time\":0}",      0, NULL, 2147483647, true, 0 },
        { "{\"start_time\":18446744073709551615,\"pid\":3}", 0, NULL, 3, true, UINT64_MAX },
        { "{\"start_time\":9223372036854775808,\"pid\":3}", 0, NULL, 3, true, UINT64_C(9223372036854775808) },
        { "{}",                                         -EINVAL, "pid" },
        { "{\"pid\":0}",                                -EINVAL, "pid" },
        { "{\"pid\":-1}",                               -EINVAL, "pid" },
        { "{\"pid\":2147483648}",                       -EINVAL, "pid" },
        { "{\"pid\":\"1\"}",                            -EINVAL, "pid" },
        { "{\"pid\":1,\"start_time\":-1}",              -EINVAL, "start_time" },
        { "{\"pid\":1,\"start_time\":18446744073709551616}", -EINVAL, "start_time" },
        { "{\"pid\":1,\"start_time\":1.5}",             -EINVAL, "start_time" },
        { "{\"pid\":1,\"addresses\":[1]}",              -EINVAL, "addresses" },
        { "[]",                                         -EINVAL, "parameters" },
};

START_TEST(test_track_request_decode) {
        _cleanup_(json_object_putp) struct json_object *p = parse(track_vectors[_i].parameters);
        ProtoTrackRequest req = { .pid = -42 };
        const char *parameter = NULL;
        int r;

        r = proto_track_request_decode(p, &req, &parameter);
        ck_assert_msg(r == track_vectors[_i].r, "%s: %d", track_vectors[_i].parameters, r);
        if (r < 0) {
                ck_assert_str_eq(parameter, track_vectors[_i].parameter);
                ck_assert_int_eq(req.pid, -42);
                return;
        }
        ck_assert_int_eq(req.pid, track_vectors[_i].pid);
        ck_assert_int_eq(req.pin, track_vectors[_i].pin);
        ck_assert_uint_eq(req.start_time, track_vectors[_i].start_time);
}
END_TEST

START_TEST(test_track_roundtrip) {
        _cleanup_(json_object_putp) struct json_object *p = NULL, *r = NULL, *bad = NULL;
        ProtoTrackRequest req = {};
        const char *parameter = NULL, *field = NULL;
        uint64_t start_time = 0;
        pid_t pid = 0;

        ck_assert_int_eq(proto_track_request_encode(&(ProtoTrackRequest) {
                        .pid = 12, .pin = true, .start_time = UINT64_MAX }, &p), 0);
        ck_assert_str_eq(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN),
                         "{\"pid\":12,\"start_time\":18446744073709551615}");
        ck_assert_int_eq(proto_track_request_decode(p, &req, &parameter), 0);
        ck_assert_int_eq(req.pid, 12);
        ck_assert(req.pin);
        ck_assert_uint_eq(req.start_time, UINT64_MAX);

        ck_assert_int_eq(proto_track_reply_encode(13, 14, &r), 0);
        ck_assert_str_eq(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
                         "{\"pid\":13,\"start_time\":14}");
        ck_assert_int_eq(proto_track_reply_decode(r, &pid, &start_time, &field), 0);
        ck_assert_int_eq(pid, 13);
        ck_assert_uint_eq(start_time, 14);

        bad = parse("{\"pid\":13}");
        pid = 99;
        ck_assert_int_eq(proto_track_reply_decode(bad, &pid, &start_time, &field), -EBADMSG);
        ck_assert_str_eq(field, "start_time");
        ck_assert_int_eq(pid, 99);
        ck_assert_int_eq(proto_method_from_string("io.vmaq.Track"), PROTO_METHOD_TRACK);
}
END_TEST

START_TEST(test_list_mappings_request_roundtrip) {
        _cleanup_(json_object_putp) struct json_object *p = NULL;
        ProtoListMappingsRequest req = {};
        const char *parameter = NULL;

        ck_assert_int_eq(proto_list_mappings_request_encode(&(ProtoListMappingsRequest) {
                        .pid = 2147483647,
                        .build_ids = true,
                        .pin = true,
                        .start_time = UINT64_MAX,
                        .start = UINT64_MAX - 1,
                }, &p), 0);
        ck_assert_int_eq(proto_list_mappings_request_decode(p, &req, &parameter), 0);
        ck_assert_uint_eq(req.start, UINT64_MAX - 1);
        ck_assert_int_eq(req.pid, 2147483647);
        ck_assert(!req.exec_only);
        ck_assert(req.build_ids);
        ck_assert(req.pin);
        ck_assert_uint_eq(req.start_time, UINT64_MAX);
}
END_TEST

/* --- the client's side: replies ---------------------------------------------- */

static const struct {
        const char *text;
        int r;
        const char *error;                      /* expected name, NULL: a reply */
        bool has_parameters;
        const char *field;                      /* on failure */
} reply_split_vectors[] = {
        { "{\"parameters\":{\"a\":1}}", 0, NULL, true, NULL },
        { "{}", 0, NULL, false, NULL },
        { "{\"parameters\":{},\"continues\":false}", 0, NULL, true, NULL },
        { "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":4}}", 0, "io.vmaq.NoSuchProcess", true, NULL },
        { "{\"error\":\"org.example.Other\"}", 0, "org.example.Other", false, NULL },
        { "[]", -EBADMSG, NULL, false, "message" },
        { "\"x\"", -EBADMSG, NULL, false, "message" },
        { "{\"parameters\":[]}", -EBADMSG, NULL, false, "parameters" },
        { "{\"parameters\":null}", -EBADMSG, NULL, false, "parameters" },
        { "{\"parameters\":{},\"continues\":true}", -EBADMSG, NULL, false, "continues" },
        { "{\"parameters\":{},\"continues\":1}", -EBADMSG, NULL, false, "continues" },
        { "{\"error\":1}", -EBADMSG, NULL, false, "error" },
        { "{\"error\":\"NoDot\"}", -EBADMSG, NULL, false, "error" },
        { "{\"error\":\"io.vmaq.bad\"}", -EBADMSG, NULL, false, "error" },
        { "{\"parameters\":{},\"extra\":1}", -EBADMSG, NULL, false, "message" },
        { "{\"parameters\":{},\"upgrade\":true}", -EBADMSG, NULL, false, "message" },
};

START_TEST(test_reply_split) {
        _cleanup_(json_object_putp) struct json_object *o = parse(reply_split_vectors[_i].text);
        struct json_object *parameters = (struct json_object *) &o;
        const char *error = "unset", *field = NULL;
        int r;

        r = proto_reply_split(o, &error, &parameters, NULL, &field);
        ck_assert_msg(r == reply_split_vectors[_i].r, "'%s': %d", reply_split_vectors[_i].text, r);
        if (r < 0) {
                ck_assert_str_eq(field, reply_split_vectors[_i].field);
                ck_assert_str_eq(error, "unset");       /* untouched */
                return;
        }
        if (reply_split_vectors[_i].error)
                ck_assert_str_eq(error, reply_split_vectors[_i].error);
        else
                ck_assert_ptr_null(error);
        if (reply_split_vectors[_i].has_parameters)
                ck_assert(json_object_is_type(parameters, json_type_object));
        else
                ck_assert_ptr_null(parameters);
}
END_TEST

/* For a call that asked for "more": "continues" is taken, and ends with an error or false. */
static const struct {
        const char *text;
        int r;
        bool continues;
} reply_stream_vectors[] = {
        { "{\"parameters\":{},\"continues\":true}", 0, true },
        { "{\"parameters\":{},\"continues\":false}", 0, false },
        { "{\"parameters\":{}}", 0, false },
        { "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":1}}", 0, false },
        { "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":1},\"continues\":true}",
          -EBADMSG, false },
        { "{\"parameters\":{},\"continues\":\"yes\"}", -EBADMSG, false },
};

START_TEST(test_reply_split_stream) {
        _cleanup_(json_object_putp) struct json_object *o = parse(reply_stream_vectors[_i].text);
        struct json_object *parameters = NULL;
        const char *error = NULL, *field = NULL;
        bool continues = !reply_stream_vectors[_i].continues;
        int r;

        r = proto_reply_split(o, &error, &parameters, &continues, &field);
        ck_assert_int_eq(r, reply_stream_vectors[_i].r);
        if (r < 0)
                ck_assert_str_eq(field, "continues");
        else
                ck_assert_int_eq(continues, reply_stream_vectors[_i].continues);
}
END_TEST

static const struct {
        const char *name;
        const char *parameters;                 /* NULL: absent */
        int r;
        ProtoError error;
        int error_errno;
        const char *message;                    /* or, on failure, the field */
} error_reply_vectors[] = {
        { "org.varlink.service.InterfaceNotFound", "{\"interface\":\"org.x\"}", 0, PROTO_ERROR_INTERFACE_NOT_FOUND,
          -EADDRNOTAVAIL, "interface not found: 'org.x' (org.varlink.service.InterfaceNotFound)" },
        { "org.varlink.service.MethodNotFound", "{\"method\":\"io.vmaq.X\"}", 0, PROTO_ERROR_METHOD_NOT_FOUND,
          -EOPNOTSUPP, "method not found: 'io.vmaq.X' (org.varlink.service.MethodNotFound)" },
        { "org.varlink.service.MethodNotImplemented", "{\"method\":\"io.vmaq.Normalize\"}", 0,
          PROTO_ERROR_METHOD_NOT_IMPLEMENTED, -ENOSYS,
          "method not implemented: 'io.vmaq.Normalize' (org.varlink.service.MethodNotImplemented)" },
        { "org.varlink.service.InvalidParameter", "{\"parameter\":\"pid\"}", 0, PROTO_ERROR_INVALID_PARAMETER,
          -EINVAL, "invalid parameter: 'pid' (org.varlink.service.InvalidParameter)" },
        { "io.vmaq.InvalidMessage", "{\"reason\":\"not valid JSON\"}", 0, PROTO_ERROR_INVALID_MESSAGE, -EBADMSG,
          "invalid message: not valid JSON (io.vmaq.InvalidMessage)" },
        { "io.vmaq.RequestTooLarge", "{\"limit\":16777216}", 0, PROTO_ERROR_REQUEST_TOO_LARGE, -E2BIG,
          "request too large: over the limit of 16777216 bytes (io.vmaq.RequestTooLarge)" },
        { "io.vmaq.RequestTooLarge", "{\"parameter\":\"addresses\",\"limit\":100000}", 0,
          PROTO_ERROR_REQUEST_TOO_LARGE, -E2BIG,
          "request too large: more 'addresses' than the limit of 100000 (io.vmaq.RequestTooLarge)" },
        { "io.vmaq.ReplyTooLarge", "{\"limit\":65536}", 0, PROTO_ERROR_REPLY_TOO_LARGE, -ENOBUFS,
          "reply too large: over the limit of 65536 bytes, ask for less (io.vmaq.ReplyTooLarge)" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":4242}", 0, PROTO_ERROR_NO_SUCH_PROCESS, -ESRCH,
          "no such process: pid 4242 (io.vmaq.NoSuchProcess)" },
        { "io.vmaq.NoAddressSpace", "{\"pid\":2}", 0, PROTO_ERROR_NO_ADDRESS_SPACE, -ENXIO,
          "process has no address space: pid 2 (io.vmaq.NoAddressSpace)" },
        { "io.vmaq.PermissionDenied", "{\"pid\":1}", 0, PROTO_ERROR_PERMISSION_DENIED, -EACCES,
          "permission denied: pid 1 (io.vmaq.PermissionDenied)" },
        { "io.vmaq.ProcessChanged", "{\"pid\":4242,\"start_time\":18446744073709551615}", 0,
          PROTO_ERROR_PROCESS_CHANGED, -ESTALE,
          "process changed: pid 4242 now has start time 18446744073709551615 (io.vmaq.ProcessChanged)" },
        { "io.vmaq.ForeignPidNamespace", "{}", 0, PROTO_ERROR_FOREIGN_PID_NAMESPACE, -EXDEV,
          "client in a pid namespace the daemon cannot tell (io.vmaq.ForeignPidNamespace)" },
        { "io.vmaq.ForeignPidNamespace", NULL, 0, PROTO_ERROR_FOREIGN_PID_NAMESPACE, -EXDEV,
          "client in a pid namespace the daemon cannot tell (io.vmaq.ForeignPidNamespace)" },
        { "io.vmaq.InternalError", "{\"errno\":12}", 0, PROTO_ERROR_INTERNAL, -EIO,
          "internal error of the daemon: errno 12 (io.vmaq.InternalError)" },
        { "io.vmaq.TooManyConnections", "{\"reason\":\"in total\",\"limit\":4096}", 0,
          PROTO_ERROR_TOO_MANY_CONNECTIONS, -EUSERS, "too many connections: 4096 in total (io.vmaq.TooManyConnections)" },
        { "io.vmaq.MemoryLimitReached", "{\"limit\":67108864}", 0, PROTO_ERROR_MEMORY_LIMIT, -EBUSY,
          "the daemon holds its limit of 67108864 bytes for clients, try again later (io.vmaq.MemoryLimitReached)" },
        { "io.vmaq.TimedOut", "{\"limit\":2500000}", 0, PROTO_ERROR_TIMED_OUT, -ETIME,
          "no answer within 2.500 s, the daemon gave up (io.vmaq.TimedOut)" },
        { "io.vmaq.TimedOut", "{}", -EBADMSG, 0, 0, "limit" },
        { "io.vmaq.BadFileDescriptor", "{\"parameter\":\"pidfd\",\"reason\":\"not a pidfd\"}", 0,
          PROTO_ERROR_BAD_FILE_DESCRIPTOR, -EBADF, "bad file descriptor for 'pidfd': not a pidfd (io.vmaq.BadFileDescriptor)" },
        { "io.vmaq.BadFileDescriptor", "{\"reason\":\"too many\"}", 0,
          PROTO_ERROR_BAD_FILE_DESCRIPTOR, -EBADF, "bad file descriptors: too many (io.vmaq.BadFileDescriptor)" },
        { "io.vmaq.BadFileDescriptor", "{\"parameter\":\"pidfd\"}", -EBADMSG, 0, 0, "reason" },
        /* A later daemon may add fields. */
        { "io.vmaq.NoSuchProcess", "{\"pid\":5,\"new\":[1]}", 0, PROTO_ERROR_NO_SUCH_PROCESS, -ESRCH,
          "no such process: pid 5 (io.vmaq.NoSuchProcess)" },
        /* Not ours: told, not understood. */
        { "org.varlink.service.PermissionDenied", "{}", 0, _PROTO_ERROR_INVALID, -EPROTO,
          "unknown error (org.varlink.service.PermissionDenied)" },
        /* Malformed. */
        { "io.vmaq.NoSuchProcess", "{}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", NULL, -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":-1}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":-1}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":2147483648}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":\"1\"}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":1.0}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.NoSuchProcess", "{\"pid\":null}", -EBADMSG, 0, 0, "pid" },
        { "io.vmaq.ProcessChanged", "{\"pid\":1}", -EBADMSG, 0, 0, "start_time" },
        { "io.vmaq.ProcessChanged", "{\"pid\":1,\"start_time\":18446744073709551616}", -EBADMSG, 0, 0, "start_time" },
        { "io.vmaq.ProcessChanged", "{\"pid\":1,\"start_time\":-1}", -EBADMSG, 0, 0, "start_time" },
        { "io.vmaq.RequestTooLarge", "{\"parameter\":1,\"limit\":1}", -EBADMSG, 0, 0, "parameter" },
        { "io.vmaq.RequestTooLarge", "{\"parameter\":\"addresses\"}", -EBADMSG, 0, 0, "limit" },
        { "org.varlink.service.InvalidParameter", "{}", -EBADMSG, 0, 0, "parameter" },
        { "io.vmaq.InvalidMessage", "{\"reason\":true}", -EBADMSG, 0, 0, "reason" },
        { "io.vmaq.InternalError", "{\"errno\":-12}", -EBADMSG, 0, 0, "errno" },
        { "io.vmaq.InternalError", "{\"errno\":2147483648}", -EBADMSG, 0, 0, "errno" },
        { "io.vmaq.NoSuchProcess", "[]", -EBADMSG, 0, 0, "parameters" },
        { "nodot", "{}", -EBADMSG, 0, 0, "error" },
};

START_TEST(test_error_reply_decode) {
        _cleanup_(json_object_putp) struct json_object *p = NULL;
        ProtoErrorReply e = { .error_errno = 4711 };
        const char *field = NULL;
        int r;

        if (error_reply_vectors[_i].parameters)
                p = parse(error_reply_vectors[_i].parameters);

        r = proto_error_reply_decode(error_reply_vectors[_i].name, p, &e, &field);
        ck_assert_msg(r == error_reply_vectors[_i].r, "%s %s: %d", error_reply_vectors[_i].name,
                      error_reply_vectors[_i].parameters, r);
        if (r < 0) {
                ck_assert_str_eq(field, error_reply_vectors[_i].message);
                ck_assert_int_eq(e.error_errno, 4711);  /* untouched */
                return;
        }
        ck_assert_str_eq(e.name, error_reply_vectors[_i].name);
        ck_assert_int_eq(e.error, error_reply_vectors[_i].error);
        ck_assert_int_eq(e.error_errno, error_reply_vectors[_i].error_errno);
        ck_assert_str_eq(e.message, error_reply_vectors[_i].message);
}
END_TEST

/* Every error the daemon can format decodes back to its errno. */
START_TEST(test_error_reply_roundtrip) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p = NULL;
        const char *name = NULL, *field = NULL;
        ProtoErrorReply e = {};
        size_t size = 0;

        ck_assert_int_eq(proto_error_format((ProtoError) _i, &(ProtoErrorDetails) {
                        .parameter = "addresses",
                        .pid = 77,
                        .start_time = UINT64_MAX,
                        .limit = 10,
                        .error = 5,
                }, &msg, &size), 0);
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        ck_assert_int_eq(proto_reply_split(o, &name, &p, NULL, &field), 0);
        ck_assert_int_eq(proto_error_reply_decode(name, p, &e, &field), 0);
        ck_assert_int_eq(e.error, (ProtoError) _i);
        ck_assert_int_eq(e.error_errno, proto_error_to_errno((ProtoError) _i));
        ck_assert_str_eq(e.name, proto_error_to_string((ProtoError) _i));
}
END_TEST

/* Encode, format, parse, decode: the same reply. */
START_TEST(test_normalize_reply_decode) {
        static const ProtoResult results[] = {
                { .module = 0, .offset = UINT64_MAX },
                { .unknown = "unmapped" },
                { .module = 1, .offset = UINT64_C(9223372036854775808) },
                { .unknown = "anonymous" },
                { .unknown = "special" },
                { .module = 0, .offset = 0 },
        };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p = NULL;
        ProtoNormalizeReply reply = {};
        const char *error = NULL, *field = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = 42,
                        .start_time = UINT64_MAX,
                        .n_modules = 2,
                        .modules = test_modules,
                        .n_results = ELEMENTSOF(results),
                        .results = results,
                }, 0, false, &msg, &size), 0);
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
        ck_assert_ptr_null(error);

        ck_assert_int_eq(proto_normalize_reply_decode(p, NULL, 0, &reply, &field), 0);
        ck_assert_int_eq(reply.pid, 42);
        ck_assert_uint_eq(reply.start_time, UINT64_MAX);
        ck_assert_uint_eq(reply.n_modules, 2);
        for (size_t i = 0; i < 2; i++) {
                const ProtoModule *g = &reply.modules[i], *w = &test_modules[i];

                ck_assert_str_eq(g->path, w->path);
                if (w->map_files)
                        ck_assert_str_eq(g->map_files, w->map_files);
                else
                        ck_assert_ptr_null(g->map_files);
                ck_assert_uint_eq(g->build_id_len, w->build_id_len);
                if (w->build_id_len > 0)
                        ck_assert_mem_eq(g->build_id, w->build_id, w->build_id_len);
                else
                        ck_assert_ptr_null(g->build_id);
                ck_assert_int_eq(g->deleted, w->deleted);
                ck_assert_int_eq(g->vdso, w->vdso);
                ck_assert_uint_eq(g->dev_major, w->dev_major);
                ck_assert_uint_eq(g->dev_minor, w->dev_minor);
                ck_assert_uint_eq(g->inode, w->inode);
        }
        ck_assert_uint_eq(reply.n_results, ELEMENTSOF(results));
        for (size_t i = 0; i < ELEMENTSOF(results); i++) {
                if (results[i].unknown) {
                        ck_assert_str_eq(reply.results[i].unknown, results[i].unknown);
                        continue;
                }
                ck_assert_ptr_null(reply.results[i].unknown);
                ck_assert_uint_eq(reply.results[i].module, results[i].module);
                ck_assert_uint_eq(reply.results[i].offset, results[i].offset);
        }

        proto_normalize_reply_done(&reply);
        ck_assert_ptr_null(reply.modules);
        ck_assert_ptr_null(reply.results);
        proto_normalize_reply_done(&reply);     /* twice is fine */
}
END_TEST

#define NR_MODULE "{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3"
#define NR(modules, results) "{\"pid\":1,\"start_time\":5,\"modules\":[" modules "],\"results\":[" results "]}"

static const struct {
        const char *text;
        const char *field;                      /* NULL: valid */
} normalize_reply_vectors[] = {
        { NR("", ""), NULL },
        { NR(NR_MODULE "}", "{\"module\":0,\"offset\":0}"), NULL },
        { NR(NR_MODULE ",\"map_files\":\"/proc/1/map_files/1-2\",\"future\":1}", "{\"module\":0,\"offset\":18446744073709551615}"), NULL },
        { "{\"pid\":1,\"start_time\":0,\"modules\":[],\"results\":[],\"future\":{}}", NULL },
        { "{\"pid\":1,\"start_time\":0,\"exited\":true,\"modules\":[],\"results\":[{\"unknown\":\"exited\"}]}", NULL },
        { "{\"pid\":1,\"start_time\":0,\"exited\":1,\"modules\":[],\"results\":[]}", "exited" },
        { "{\"pid\":1,\"start_time\":0,\"modules\":[],\"results\":[{\"unknown\":\"gone\"}]}", "unknown" },
        /* build IDs: even length, 1 to 64 bytes, lowercase hex, or null */
        { NR("{\"path\":\"/a\",\"build_id\":\"00\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), NULL },
        { NR("{\"path\":\"/a\",\"build_id\":\"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), NULL },
        { NR("{\"path\":\"/a\",\"build_id\":\"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"build_id\":\"abc\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"build_id\":\"\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"build_id\":\"AB\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"build_id\":\"zz\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"build_id\":12,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        { NR("{\"path\":\"/a\",\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "build_id" },
        /* module fields */
        { NR("{\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "path" },
        { NR("{\"path\":null,\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "path" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":0,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "deleted" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":\"false\",\"dev_major\":1,\"dev_minor\":2,\"inode\":3}", ""), "vdso" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":4294967296,\"dev_minor\":2,\"inode\":3}", ""), "dev_major" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":-2,\"inode\":3}", ""), "dev_minor" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":18446744073709551616}", ""), "inode" },
        { NR("{\"path\":\"/a\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,\"dev_minor\":2,\"inode\":3.0}", ""), "inode" },
        { NR(NR_MODULE ",\"map_files\":null}", ""), "map_files" },
        { NR("1", ""), "modules" },
        /* results */
        { NR("", "{\"module\":0,\"offset\":0}"), "module" },
        { NR(NR_MODULE "}", "{\"module\":1,\"offset\":0}"), "module" },
        { NR(NR_MODULE "}", "{\"module\":4294967296,\"offset\":0}"), "module" },
        { NR(NR_MODULE "}", "{\"module\":0}"), "offset" },
        { NR(NR_MODULE "}", "{\"offset\":0}"), "module" },
        { NR(NR_MODULE "}", "{\"module\":0,\"offset\":-1}"), "offset" },
        { NR(NR_MODULE "}", "{\"module\":0,\"offset\":18446744073709551616}"), "offset" },
        { NR(NR_MODULE "}", "{\"module\":0,\"offset\":\"0x10\"}"), "offset" },
        { NR(NR_MODULE "}", "{\"module\":0,\"offset\":1e3}"), "offset" },
        { NR("", "{\"unknown\":\"vdso\"}"), "unknown" },
        { NR("", "{\"unknown\":null}"), "unknown" },
        { NR(NR_MODULE "}", "{\"unknown\":\"unmapped\",\"module\":0}"), "unknown" },
        { NR("", "{}"), "module" },
        { NR("", "[]"), "results" },
        /* top level */
        { "{\"start_time\":5,\"modules\":[],\"results\":[]}", "pid" },
        { "{\"pid\":-1,\"start_time\":5,\"modules\":[],\"results\":[]}", "pid" },
        { "{\"pid\":2147483648,\"start_time\":5,\"modules\":[],\"results\":[]}", "pid" },
        { "{\"pid\":1,\"modules\":[],\"results\":[]}", "start_time" },
        { "{\"pid\":1,\"start_time\":5,\"results\":[]}", "modules" },
        { "{\"pid\":1,\"start_time\":5,\"modules\":{}}", "modules" },
        { "{\"pid\":1,\"start_time\":5,\"modules\":[]}", "results" },
        { "{\"pid\":1,\"start_time\":5,\"modules\":[],\"results\":null}", "results" },
};

START_TEST(test_normalize_reply_decode_vectors) {
        _cleanup_(json_object_putp) struct json_object *p = parse(normalize_reply_vectors[_i].text);
        ProtoNormalizeReply reply = { .pid = 4711 };
        const char *field = NULL;
        int r;

        r = proto_normalize_reply_decode(p, NULL, 0, &reply, &field);
        if (!normalize_reply_vectors[_i].field) {
                ck_assert_msg(r == 0, "'%s': %d (%s)", normalize_reply_vectors[_i].text, r, field);
                proto_normalize_reply_done(&reply);
                return;
        }
        ck_assert_msg(r == -EBADMSG, "'%s': %d", normalize_reply_vectors[_i].text, r);
        ck_assert_str_eq(field, normalize_reply_vectors[_i].field);
        ck_assert_int_eq(reply.pid, 4711);      /* untouched */
}
END_TEST

START_TEST(test_normalize_reply_decode_none) {
        ProtoNormalizeReply reply = {};
        const char *field = NULL;

        ck_assert_int_eq(proto_normalize_reply_decode(NULL, NULL, 0, &reply, &field), -EBADMSG);
        ck_assert_str_eq(field, "pid");
        proto_normalize_reply_done(NULL);
}
END_TEST

START_TEST(test_list_mappings_reply_decode) {
        static const uint8_t id[] = { 0x01, 0xab };
        static const ProtoMapping mappings[] = {
                { .start = 0x400000, .end = 0x401000, .offset = 0x1000, .inode = 99, .dev_major = 8, .dev_minor = 1,
                  .perms = "r-xp", .path = "/bin/x", .kind = "file", .build_id = id, .build_id_len = sizeof(id) },
                { .start = 0x500000, .end = 0x501000, .perms = "rw-p", .kind = "anonymous" },
                { .start = UINT64_C(0xffffffffff600000), .end = UINT64_C(0xffffffffff601000), .perms = "--xp",
                  .path = "[vsyscall]", .kind = "special", .deleted = true },
        };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p = NULL;
        ProtoListMappingsReply reply = {};
        const char *error = NULL, *field = NULL;
        size_t size = 0;

        ck_assert_int_eq(proto_list_mappings_reply_format(7, UINT64_MAX, mappings, ELEMENTSOF(mappings), true, 0x5000,
                                                          &msg, &size), 0);
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);

        ck_assert_int_eq(proto_list_mappings_reply_decode(p, &reply, &field), 0);
        ck_assert_int_eq(reply.pid, 7);
        ck_assert_uint_eq(reply.start_time, UINT64_MAX);
        ck_assert(reply.has_next);
        ck_assert_uint_eq(reply.next, 0x5000);
        ck_assert_uint_eq(reply.n_mappings, ELEMENTSOF(mappings));
        for (size_t i = 0; i < ELEMENTSOF(mappings); i++) {
                const ProtoMapping *g = &reply.mappings[i], *w = &mappings[i];

                ck_assert_uint_eq(g->start, w->start);
                ck_assert_uint_eq(g->end, w->end);
                ck_assert_uint_eq(g->offset, w->offset);
                ck_assert_uint_eq(g->inode, w->inode);
                ck_assert_uint_eq(g->dev_major, w->dev_major);
                ck_assert_uint_eq(g->dev_minor, w->dev_minor);
                ck_assert_str_eq(g->perms, w->perms);
                if (w->path)
                        ck_assert_str_eq(g->path, w->path);
                else
                        ck_assert_ptr_null(g->path);
                ck_assert_str_eq(g->kind, w->kind);
                ck_assert_int_eq(g->deleted, w->deleted);
                ck_assert_uint_eq(g->build_id_len, w->build_id_len);
                if (w->build_id_len > 0)
                        ck_assert_mem_eq(g->build_id, w->build_id, w->build_id_len);
                else
                        ck_assert_ptr_null(g->build_id);
        }
        proto_list_mappings_reply_done(&reply);
        ck_assert_ptr_null(reply.mappings);
}
END_TEST

#define LM(fields) "{\"pid\":1,\"start_time\":2,\"mappings\":[{" fields "}]}"
#define LM_OK "\"start\":0,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"

static const struct {
        const char *text;
        const char *field;
} list_mappings_reply_vectors[] = {
        { LM(LM_OK), NULL },
        { LM(LM_OK ",\"path\":\"/x\",\"future\":true"), NULL },
        { "{\"pid\":1,\"start_time\":2,\"mappings\":[]}", NULL },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-xs\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"vdso\",\"deleted\":true,\"build_id\":\"ff\""), NULL },
        { LM("\"start\":-1,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "start" },
        { LM("\"start\":0,\"end\":18446744073709551616,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "end" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"rwxps\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "perms" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"xwrp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "perms" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-x\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "perms" },
        { LM("\"start\":0,\"end\":4096,\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":null"), "perms" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"heap\",\"deleted\":false,\"build_id\":null"), "kind" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"deleted\":false,\"build_id\":null"), "kind" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":null,\"build_id\":null"), "deleted" },
        { LM("\"start\":0,\"end\":4096,\"perms\":\"r-xp\",\"offset\":0,\"dev_major\":0,\"dev_minor\":0,\"inode\":0,\"kind\":\"anonymous\",\"deleted\":false,\"build_id\":\"0\""), "build_id" },
        { LM(LM_OK ",\"path\":7"), "path" },
        { "{\"pid\":1,\"start_time\":2,\"mappings\":[1]}", "mappings" },
        { "{\"pid\":1,\"start_time\":2,\"mappings\":{}}", "mappings" },
        { "{\"pid\":1,\"start_time\":2}", "mappings" },
        { "{\"pid\":1,\"mappings\":[]}", "start_time" },
        { "{\"pid\":-1,\"start_time\":2,\"mappings\":[]}", "pid" },
};

START_TEST(test_list_mappings_reply_decode_vectors) {
        _cleanup_(json_object_putp) struct json_object *p = parse(list_mappings_reply_vectors[_i].text);
        ProtoListMappingsReply reply = {};
        const char *field = NULL;
        int r;

        r = proto_list_mappings_reply_decode(p, &reply, &field);
        if (!list_mappings_reply_vectors[_i].field) {
                ck_assert_msg(r == 0, "'%s': %d (%s)", list_mappings_reply_vectors[_i].text, r, field);
                proto_list_mappings_reply_done(&reply);
                return;
        }
        ck_assert_msg(r == -EBADMSG, "'%s': %d", list_mappings_reply_vectors[_i].text, r);
        ck_assert_str_eq(field, list_mappings_reply_vectors[_i].field);
}
END_TEST

START_TEST(test_status_decode) {
        const ProtoStatus want = {
                .version = "0.1.0", .backend = "text", .uptime_usec = UINT64_MAX, .connections = 1,
                .connections_max = 256, .proc_cache_size = 2, .proc_cache_max = 3, .proc_cache_hits = 4,
                .proc_cache_misses = 5, .build_id_cache_size = 6, .build_id_cache_max = 7,
                .build_id_cache_hits = 8, .build_id_cache_misses = UINT64_C(9223372036854775808),
                .requests = 10, .errors = 11, .denied = 12, .connections_per_user_max = 13,
                .workers_used = 14, .workers_max = 15, .memory_used = 16, .memory_max = UINT64_MAX,
                .refused_connections = 17, .refused_user_connections = 18, .refused_memory = 19,
                .refused_timeouts = 20, .refused_idle = 21, .snapshots_held = 22, .snapshots_exited = 23,
                .snapshot_memory_used = 24, .snapshot_memory_max = UINT64_MAX,
        };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *enc = NULL, *p = NULL;
        const char *error = NULL, *field = NULL;
        ProtoStatus got = {};
        size_t size = 0;

        ck_assert_int_eq(proto_status_encode(&want, &enc), 0);
        ck_assert_int_eq(varlink_reply_format(enc, false, &msg, &size), 0);
        ck_assert_int_eq(varlink_json_parse(msg, size - 1, NULL, &o), 0);
        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
        ck_assert_int_eq(proto_status_decode(p, &got, &field), 0);

        ck_assert_str_eq(got.version, want.version);
        ck_assert_str_eq(got.backend, want.backend);
        ck_assert_uint_eq(got.uptime_usec, want.uptime_usec);
        ck_assert_uint_eq(got.connections, want.connections);
        ck_assert_uint_eq(got.connections_max, want.connections_max);
        ck_assert_uint_eq(got.proc_cache_size, want.proc_cache_size);
        ck_assert_uint_eq(got.proc_cache_max, want.proc_cache_max);
        ck_assert_uint_eq(got.proc_cache_hits, want.proc_cache_hits);
        ck_assert_uint_eq(got.proc_cache_misses, want.proc_cache_misses);
        ck_assert_uint_eq(got.build_id_cache_size, want.build_id_cache_size);
        ck_assert_uint_eq(got.build_id_cache_max, want.build_id_cache_max);
        ck_assert_uint_eq(got.build_id_cache_hits, want.build_id_cache_hits);
        ck_assert_uint_eq(got.build_id_cache_misses, want.build_id_cache_misses);
        ck_assert_uint_eq(got.requests, want.requests);
        ck_assert_uint_eq(got.errors, want.errors);
        ck_assert_uint_eq(got.denied, want.denied);
        ck_assert_uint_eq(got.connections_per_user_max, want.connections_per_user_max);
        ck_assert_uint_eq(got.workers_used, want.workers_used);
        ck_assert_uint_eq(got.workers_max, want.workers_max);
        ck_assert_uint_eq(got.memory_used, want.memory_used);
        ck_assert_uint_eq(got.memory_max, want.memory_max);
        ck_assert_uint_eq(got.refused_connections, want.refused_connections);
        ck_assert_uint_eq(got.refused_user_connections, want.refused_user_connections);
        ck_assert_uint_eq(got.refused_memory, want.refused_memory);
        ck_assert_uint_eq(got.refused_timeouts, want.refused_timeouts);
        ck_assert_uint_eq(got.refused_idle, want.refused_idle);
        ck_assert_uint_eq(got.snapshots_held, want.snapshots_held);
        ck_assert_uint_eq(got.snapshots_exited, want.snapshots_exited);
        ck_assert_uint_eq(got.snapshot_memory_used, want.snapshot_memory_used);
        ck_assert_uint_eq(got.snapshot_memory_max, want.snapshot_memory_max);
}
END_TEST

#define ST_CACHE "{\"size\":0,\"max\":1,\"hits\":2,\"misses\":3}"
#define ST(version, backend, uptime, cache) "{\"version\":" version ",\"backend\":" backend ",\"uptime_usec\":" uptime \
        ",\"connections\":1,\"connections_max\":2,\"proc_cache\":" cache ",\"build_id_cache\":" ST_CACHE \
        ",\"requests\":1,\"errors\":0,\"denied\":0}"
#define ST_WITH(more) "{\"version\":\"1\",\"backend\":\"text\",\"uptime_usec\":0,\"connections\":1,\"connections_max\":2," \
        "\"proc_cache\":" ST_CACHE ",\"build_id_cache\":" ST_CACHE ",\"requests\":1,\"errors\":0,\"denied\":0" more "}"

static const struct {
        const char *text;
        const char *field;
} status_vectors[] = {
        { ST("\"1\"", "\"ioctl\"", "0", ST_CACHE), NULL },
        { ST("\"1\"", "\"text\"", "18446744073709551615", "{\"size\":0,\"max\":1,\"hits\":2,\"misses\":3,\"new\":4}"), NULL },
        { ST("1", "\"ioctl\"", "0", ST_CACHE), "version" },
        { ST("\"1\"", "\"procfs\"", "0", ST_CACHE), "backend" },
        { ST("\"1\"", "null", "0", ST_CACHE), "backend" },
        { ST("\"1\"", "\"ioctl\"", "-1", ST_CACHE), "uptime_usec" },
        { ST("\"1\"", "\"ioctl\"", "18446744073709551616", ST_CACHE), "uptime_usec" },
        { ST("\"1\"", "\"ioctl\"", "0.5", ST_CACHE), "uptime_usec" },
        { ST("\"1\"", "\"ioctl\"", "0", "{\"size\":0,\"max\":1,\"hits\":2}"), "proc_cache" },
        { ST("\"1\"", "\"ioctl\"", "0", "{\"size\":0,\"max\":1,\"hits\":2,\"misses\":-3}"), "proc_cache" },
        { ST("\"1\"", "\"ioctl\"", "0", "[]"), "proc_cache" },
        { "{\"version\":\"1\"}", "backend" },
        /* The newer members are optional, but checked when present. */
        { ST_WITH(",\"workers\":{\"used\":1,\"max\":2},\"refused\":{\"connections\":0,\"user_connections\":0,"
                  "\"memory\":0,\"timeouts\":0,\"idle\":0},\"connections_per_user_max\":3"), NULL },
        { ST_WITH(",\"workers\":{\"used\":1}"), "workers" },
        { ST_WITH(",\"memory\":{\"used\":-1,\"max\":2}"), "memory" },
        { ST_WITH(",\"refused\":{\"connections\":0}"), "refused" },
        { ST_WITH(",\"connections_per_user_max\":\"3\""), "connections_per_user_max" },
};

START_TEST(test_status_decode_vectors) {
        _cleanup_(json_object_putp) struct json_object *p = parse(status_vectors[_i].text);
        ProtoStatus s = {};
        const char *field = NULL;
        int r;

        r = proto_status_decode(p, &s, &field);
        if (!status_vectors[_i].field) {
                ck_assert_msg(r == 0, "'%s': %d (%s)", status_vectors[_i].text, r, field);
                return;
        }
        ck_assert_msg(r == -EBADMSG, "'%s': %d", status_vectors[_i].text, r);
        ck_assert_str_eq(field, status_vectors[_i].field);
}
END_TEST

/* --- packed addresses ------------------------------------------------------ */

static const struct {
        const char *text;
        bool packed;                    /* the addresses come packed */
        int decoded;                    /* what proto_normalize_request_decode() says, either way */
} packed_vectors[] = {
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,2,18446744073709551615]}}", true, 0 },
        { "{\"parameters\":{\"addresses\":[ 0 , 7 ],\"pid\":1},\"method\":\"io.vmaq.Normalize\"}", true, 0 },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[]}}", true, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,2,3,4]}}", true, -E2BIG },
        /* Elements of other kinds: json-c's, and the same answer. */
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,\"0x10\"]}}", false, 0 },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,-1]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,1.5]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,[2]]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[{},2]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[null]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,18446744073709551616]}}", false, -EINVAL },
        /* A big integer anywhere else is rewritten for json-c: no packing then. */
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"start_time\":18446744073709551616,\"addresses\":[1]}}", false, -EINVAL },
        /* Keys json-c could read differently from the text, or twice. */
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1],\"addr\\u0065sses\":[]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1],\"addresses\":[]}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[]},\"parameters\":{\"pid\":1,\"addresses\":[5]}}", false, 0 },
        { "{\"method\":\"io.vmaq.Normalize\",\"param\\u0065ters\":{\"pid\":1,\"addresses\":[3]}}", false, 0 },
        /* json-c never sees the punctuation of a packed array: the scan checks it. */
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,,2]}}", false, -EBADMSG },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1 2]}}", false, -EBADMSG },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[,1]}}", false, -EBADMSG },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,]}}", false, -EBADMSG },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1:2]}}", false, -EBADMSG },
        /* Not the parameters' "addresses": left alone. */
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"x\":{\"addresses\":[1]},\"addresses\":[2]}}", true, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":2}}", false, -EINVAL },
        { "{\"method\":\"io.vmaq.Normalize\",\"parameters\":[{\"addresses\":[1]}]}", false, -EPROTO },
};

/* Packed or not, the same call: only the cost differs. */
START_TEST(test_packed_addresses) {
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {}, ref = {};
        _cleanup_(varlink_call_done) VarlinkCall call = {}, plain = {};
        const char *text = packed_vectors[_i].text, *parameter = NULL, *ref_parameter = NULL;
        VarlinkLimits limits;
        int r, k;

        proto_request_limits(3, &limits);
        limits.max_array_elements = 4;  /* let 4 through the scan, for the decoder to refuse */
        r = proto_call_parse(text, strlen(text), &limits, &call);
        k = varlink_call_parse(text, strlen(text), &limits, &plain);
        ck_assert_int_eq(r, k);
        if (r < 0) {
                ck_assert_int_eq(r, packed_vectors[_i].decoded);
                return;
        }
        ck_assert_int_eq(call.packed.valid, packed_vectors[_i].packed);
        ck_assert(!plain.packed.valid && !plain.packed.values);

        r = proto_normalize_request_decode(call.parameters, &call.packed, 3, &req, &parameter);
        k = proto_normalize_request_decode(plain.parameters, NULL, 3, &ref, &ref_parameter);
        ck_assert_int_eq(r, packed_vectors[_i].decoded);
        ck_assert_int_eq(r, k);
        if (r < 0) {
                ck_assert_str_eq(parameter, ref_parameter);
                return;
        }
        ck_assert_uint_eq(req.n_addresses, ref.n_addresses);
        ck_assert_mem_eq(req.addresses, ref.addresses, ref.n_addresses * sizeof(uint64_t));
}
END_TEST

/* --- Normalize results read from the text ---------------------------------- */

#define SPAN_REPLY(results) "{\"parameters\":{\"pid\":1,\"start_time\":2,\"modules\":[{\"path\":\"/a\"," \
        "\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":0,\"dev_minor\":0,\"inode\":1}]," \
        "\"results\":" results "}}"

/* The reader takes the daemon's own form; anything else goes through json-c: the same answer either way. */
static const struct {
        const char *text;
        int r;
        const char *field;
        bool read;                      /* in the daemon's form: read by the parser */
} span_vectors[] = {
        { SPAN_REPLY("[{\"module\":0,\"offset\":18446744073709551615},{\"unknown\":\"special\"}]"), 0, NULL, true },
        { SPAN_REPLY("[]"), 0, NULL, true },
        { SPAN_REPLY("[ {\"module\": 0, \"offset\": 5} ]"), 0, NULL, false },
        { SPAN_REPLY("[{\"offset\":5,\"module\":0}]"), 0, NULL, false },
        { SPAN_REPLY("[{\"module\":0,\"offset\":5,\"future\":[1,{}]}]"), 0, NULL, false },
        { SPAN_REPLY("[{\"unknown\":\"\\u0075nmapped\"}]"), 0, NULL, false },
        { SPAN_REPLY("[{\"module\":1,\"offset\":5}]"), -EBADMSG, "module", true },
        { SPAN_REPLY("[{\"module\":0,\"offset\":5.0}]"), -EBADMSG, "offset", false },
        { SPAN_REPLY("[{\"module\":0,\"offset\":1e3}]"), -EBADMSG, "offset", false },
        { SPAN_REPLY("[{\"module\":0,\"offset\":-1}]"), -EBADMSG, "offset", false },
        { SPAN_REPLY("[{\"module\":0}]"), -EBADMSG, "offset", false },
        { SPAN_REPLY("[{\"unknown\":\"weird\"}]"), -EBADMSG, "unknown", false },
        { SPAN_REPLY("[{\"unknown\":\"unmapped\",\"module\":0}]"), -EBADMSG, "unknown", false },
        { SPAN_REPLY("[7]"), -EBADMSG, "results", false },
};

START_TEST(test_results_span) {
        _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply fast = {}, ref = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL, *plain = NULL;
        const char *text = span_vectors[_i].text, *error = NULL, *field = NULL, *ref_field = NULL;
        struct json_object *p = NULL, *q = NULL;
        _cleanup_(proto_results_done) ProtoResults read = {};

        ck_assert_int_eq(proto_reply_parse(text, strlen(text), &o, &read), 0);
        ck_assert_int_eq(read.valid, span_vectors[_i].read);
        ck_assert_int_eq(proto_reply_split(o, &error, &p, NULL, &field), 0);
        ck_assert_int_eq(varlink_json_parse(text, strlen(text), NULL, &plain), 0);
        ck_assert_int_eq(proto_reply_split(plain, &error, &q, NULL, &field), 0);

        ck_assert_int_eq(proto_normalize_reply_decode(p, &read, 0, &fast, &field), span_vectors[_i].r);
        ck_assert_int_eq(proto_normalize_reply_decode(q, NULL, 0, &ref, &ref_field), span_vectors[_i].r);
        if (span_vectors[_i].r < 0) {
                ck_assert_str_eq(field, span_vectors[_i].field);
                ck_assert_str_eq(ref_field, span_vectors[_i].field);
                return;
        }
        ck_assert_uint_eq(fast.n_results, ref.n_results);
        for (size_t i = 0; i < ref.n_results; i++) {
                ck_assert_int_eq(!fast.results[i].unknown, !ref.results[i].unknown);
                if (ref.results[i].unknown)
                        ck_assert_str_eq(fast.results[i].unknown, ref.results[i].unknown);
                ck_assert_uint_eq(fast.results[i].module, ref.results[i].module);
                ck_assert_uint_eq(fast.results[i].offset, ref.results[i].offset);
        }
}
END_TEST

/* What the reader does not take is the strict parser's: invalid JSON in the results is still refused. */
START_TEST(test_results_span_invalid) {
        static const char *const texts[] = {
                SPAN_REPLY("[{\"module\":0,\"offset\":5},]"),
                SPAN_REPLY("[{\"unknown\":\"unmapped\"}}]"),
                SPAN_REPLY("[{\"module\":0,\"offset\":05}]"),
                SPAN_REPLY("[\"\\x\"]"),
                SPAN_REPLY("[\"]}}"),
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_(proto_results_done) ProtoResults read = {};
                _cleanup_(json_object_putp) struct json_object *o = NULL;

                ck_assert_int_eq(proto_reply_parse(texts[i], strlen(texts[i]), &o, &read), -EBADMSG);
                ck_assert_ptr_null(o);
                ck_assert(!read.valid && !read.results);
        }
}
END_TEST

/* The reservation is asked for once, after the scan, with what json-c will build and what was packed. */
static int reserve_record(void *userdata, size_t n_values, size_t n_packed) {
        size_t *counts = userdata;

        counts[0] = n_values;
        counts[1] = n_packed;
        counts[2]++;
        return counts[3] ? -ENOBUFS : 0;
}

START_TEST(test_parse_reserve) {
        static const char packed[] = "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[1,2,3]}}";
        static const char strings[] = "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[\"1\",2]}}";
        size_t counts[4] = {};
        VarlinkLimits limits = { .reserve = reserve_record, .userdata = counts };
        VarlinkCall call = {};

        /* The message, method, parameters, pid and the array; its three elements packed. */
        ck_assert_int_eq(proto_call_parse(packed, strlen(packed), &limits, &call), 0);
        ck_assert_uint_eq(counts[0], 5);
        ck_assert_uint_eq(counts[1], 3);
        ck_assert_uint_eq(counts[2], 1);
        varlink_call_done(&call);

        /* Not packed: every element is json-c's to build. */
        ck_assert_int_eq(proto_call_parse(strings, strlen(strings), &limits, &call), 0);
        ck_assert_uint_eq(counts[0], 7);
        ck_assert_uint_eq(counts[1], 0);
        varlink_call_done(&call);

        /* Refused: the parse fails with the reservation's error, nothing built. */
        counts[3] = 1;
        ck_assert_int_eq(proto_call_parse(packed, strlen(packed), &limits, &call), -ENOBUFS);
        ck_assert_ptr_null(call.object);
        ck_assert_ptr_null(call.packed.values);
        /* A message the scan refuses is not reserved for at all. */
        counts[2] = 0;
        ck_assert_int_eq(proto_call_parse("{\"method\":01}", 13, &limits, &call), -EBADMSG);
        ck_assert_uint_eq(counts[2], 0);
}
END_TEST

/* --- the JSON writer ------------------------------------------------------ */

/* What the writer makes of @s as an object's member, against json-c's text of the same. */
static void assert_writer_string_as_json_c(const char *s) {
        _cleanup_free_ char *mine = NULL, *theirs = NULL;
        struct json_object *o;
        size_t mine_size = 0, theirs_size = 0;
        JsonWriter w;

        json_writer_init(&w, 0);
        json_writer_object_open(&w);
        json_writer_key(&w, "parameters");
        json_writer_object_open(&w);
        json_writer_key(&w, "s");
        json_writer_string(&w, s);
        json_writer_object_close(&w);
        json_writer_object_close(&w);
        ck_assert_int_eq(json_writer_finish(&w, &mine, &mine_size), 0);

        o = json_object_new_object();
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(json_object_object_add(o, "s", json_object_new_string(s)), 0);
        ck_assert_int_eq(varlink_reply_format(o, false, &theirs, &theirs_size), 0);

        ck_assert_str_eq(mine, theirs);
        ck_assert_uint_eq(mine_size, theirs_size);
}

/* Every byte, alone and in runs, valid UTF-8 or not, is written as json-c writes it (bad bytes as U+FFFD). */
START_TEST(test_writer_strings) {
        static const char *const vectors[] = {
                "", "plain", "\"quoted\"", "back\\slash", "/slash/", "\b\f\n\r\t\x01\x1f\x7f",
                "caf\xc3\xa9", "\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                "\xf4\x90\x80\x80", "\xff\xfe", "a\xe2\x82", "/usr/lib/x (deleted)",
        };
        char one[2] = {}, buf[64];
        unsigned seed = 1;

        for (size_t i = 0; i < ELEMENTSOF(vectors); i++)
                assert_writer_string_as_json_c(vectors[i]);
        for (unsigned c = 1; c < 256; c++) {
                one[0] = (char) c;
                assert_writer_string_as_json_c(one);
        }
        for (int k = 0; k < 2000; k++) {
                size_t n = (size_t) rand_r(&seed) % (sizeof(buf) - 1);

                for (size_t i = 0; i < n; i++)
                        buf[i] = (char) (1 + rand_r(&seed) % 255);
                buf[n] = '\0';
                assert_writer_string_as_json_c(buf);
        }
}
END_TEST

/* Integers over the whole range, commas, nesting; a misuse is an error, not bad text. */
START_TEST(test_writer_structure) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        JsonWriter w;

        json_writer_init(&w, 1);
        json_writer_object_open(&w);
        json_writer_key(&w, "a");
        json_writer_array_open(&w);
        json_writer_u64(&w, 0);
        json_writer_u64(&w, UINT64_MAX);
        json_writer_i64(&w, INT64_MIN);
        json_writer_i64(&w, -1);
        json_writer_bool(&w, true);
        json_writer_bool(&w, false);
        json_writer_null(&w);
        json_writer_hex(&w, (const uint8_t[]) { 0x00, 0xab, 0xff }, 3);
        json_writer_array_open(&w);
        json_writer_array_close(&w);
        json_writer_object_open(&w);
        json_writer_object_close(&w);
        json_writer_array_close(&w);
        json_writer_key(&w, "b");
        json_writer_u64(&w, 7);
        json_writer_object_close(&w);
        ck_assert_int_eq(json_writer_finish(&w, &text, &size), 0);
        ck_assert_str_eq(text, "{\"a\":[0,18446744073709551615,-9223372036854775808,-1,true,false,null,"
                               "\"00abff\",[],{}],\"b\":7}");
        ck_assert_uint_eq(size, strlen(text) + 1);

        /* Unbalanced: refused, and the text is gone. */
        json_writer_init(&w, 0);
        json_writer_object_open(&w);
        ck_assert_int_eq(json_writer_finish(&w, &text, &size), -EINVAL);
        json_writer_init(&w, 0);
        json_writer_array_close(&w);
        ck_assert_int_eq(json_writer_finish(&w, &text, &size), -EINVAL);
        json_writer_init(&w, 0);
        json_writer_object_open(&w);
        json_writer_key(&w, "dangling");
        json_writer_object_close(&w);
        ck_assert_int_eq(json_writer_finish(&w, &text, &size), -EINVAL);
        /* Too deep for the writer. */
        json_writer_init(&w, 0);
        for (int i = 0; i <= JSON_WRITER_DEPTH_MAX; i++)
                json_writer_array_open(&w);
        ck_assert_int_eq(json_writer_finish(&w, &text, &size), -EINVAL);
        ck_assert_str_eq(text, "{\"a\":[0,18446744073709551615,-9223372036854775808,-1,true,false,null,"
                               "\"00abff\",[],{}],\"b\":7}");
}
END_TEST

static Suite *proto_suite(void) {
        Suite *s = suite_create("proto");
        TCase *tc;

        tc = tcase_create("call-parse-valid");
        tcase_add_loop_test(tc, test_call_parse_valid, 0, ELEMENTSOF(call_valid_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("call-parse-invalid");
        tcase_add_loop_test(tc, test_call_parse_invalid, 0, ELEMENTSOF(call_invalid_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("call-parse-depth");
        tcase_add_test(tc, test_call_parse_depth);
        suite_add_tcase(s, tc);

        tc = tcase_create("json-limits");
        tcase_add_loop_test(tc, test_json_limits, 0, ELEMENTSOF(limit_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("call-limits");
        tcase_add_loop_test(tc, test_call_limits, 0, ELEMENTSOF(call_limit_vectors));
        tcase_add_test(tc, test_call_limits_none);
        suite_add_tcase(s, tc);

        tc = tcase_create("call-limits-memory");
        tcase_add_loop_test(tc, test_call_limits_memory, 0, ELEMENTSOF(huge_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("json-numbers");
        tcase_add_loop_test(tc, test_json_numbers, 0, ELEMENTSOF(number_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("names");
        tcase_add_loop_test(tc, test_names, 0, ELEMENTSOF(qualified_name_vectors));
        tcase_add_test(tc, test_names_parts);
        suite_add_tcase(s, tc);

        tc = tcase_create("method-lookup");
        tcase_add_loop_test(tc, test_method_lookup, 0, ELEMENTSOF(method_vectors));
        tcase_add_test(tc, test_method_strings);
        suite_add_tcase(s, tc);

        tc = tcase_create("error-table");
        tcase_add_loop_test(tc, test_error_names, 0, ELEMENTSOF(error_name_vectors));
        tcase_add_loop_test(tc, test_error_from_errno, 0, ELEMENTSOF(errno_vectors));
        tcase_add_test(tc, test_error_out_of_range);
        suite_add_tcase(s, tc);

        tc = tcase_create("error-format");
        tcase_add_loop_test(tc, test_error_format, 0, ELEMENTSOF(error_format_vectors));
        tcase_add_test(tc, test_error_format_edge);
        suite_add_tcase(s, tc);

        tc = tcase_create("reply-format");
        tcase_add_test(tc, test_reply_format);
        tcase_add_test(tc, test_reply_format_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("normalize-addresses");
        tcase_add_loop_test(tc, test_normalize_addresses, 0, ELEMENTSOF(address_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("normalize-decode");
        tcase_add_loop_test(tc, test_normalize_decode, 0, ELEMENTSOF(normalize_vectors));
        tcase_add_test(tc, test_normalize_decode_limit);
        tcase_add_test(tc, test_normalize_decode_no_parameters);
        suite_add_tcase(s, tc);

        tc = tcase_create("request-limits");
        tcase_add_test(tc, test_request_limits);
        tcase_add_loop_test(tc, test_request_limits_largest, 0, ELEMENTSOF(request_limit_vectors));
        tcase_add_loop_test(tc, test_request_limits_other, 0, ELEMENTSOF(request_other_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("normalize-request-encode");
        tcase_add_test(tc, test_normalize_request_encode);
        suite_add_tcase(s, tc);

        tc = tcase_create("packed-addresses");
        tcase_add_loop_test(tc, test_packed_addresses, 0, ELEMENTSOF(packed_vectors));
        tcase_add_test(tc, test_parse_reserve);
        suite_add_tcase(s, tc);

        tc = tcase_create("results-span");
        tcase_add_loop_test(tc, test_results_span, 0, ELEMENTSOF(span_vectors));
        tcase_add_test(tc, test_results_span_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("json-writer");
        tcase_add_test(tc, test_writer_strings);
        tcase_add_test(tc, test_writer_structure);
        suite_add_tcase(s, tc);

        tc = tcase_create("normalize-reply-encode");
        tcase_add_test(tc, test_normalize_reply_encode);
        tcase_add_test(tc, test_normalize_reply_empty);
        tcase_add_test(tc, test_normalize_reply_exited);
        tcase_add_test(tc, test_normalize_reply_host_path);
        tcase_add_test(tc, test_normalize_reply_elf);
        tcase_add_loop_test(tc, test_normalize_reply_elf_bad, 0, ELEMENTSOF(bad_elf_results));
        tcase_add_test(tc, test_build_id_skipped);
        tcase_add_test(tc, test_reply_size_max);
        tcase_add_test(tc, test_normalize_reply_u64);
        tcase_add_test(tc, test_normalize_reply_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("list-mappings");
        tcase_add_loop_test(tc, test_list_mappings_decode, 0, ELEMENTSOF(list_mappings_vectors));
        tcase_add_test(tc, test_list_mappings_encode);
        suite_add_tcase(s, tc);

        tc = tcase_create("status-info");
        tcase_add_test(tc, test_status_encode);
        tcase_add_test(tc, test_info_encode);
        tcase_add_test(tc, test_empty_request_decode);
        suite_add_tcase(s, tc);

        tc = tcase_create("interface-description");
        tcase_add_loop_test(tc, test_interface_description, 0, ELEMENTSOF(description_vectors));
        tcase_add_test(tc, test_embedded_description);
        suite_add_tcase(s, tc);

        tc = tcase_create("call-format");
        tcase_add_test(tc, test_call_format);
        tcase_add_test(tc, test_list_mappings_request_roundtrip);
        tcase_add_loop_test(tc, test_track_request_decode, 0, ELEMENTSOF(track_vectors));
        tcase_add_test(tc, test_track_roundtrip);
        suite_add_tcase(s, tc);

        tc = tcase_create("reply-split");
        tcase_add_loop_test(tc, test_reply_split, 0, ELEMENTSOF(reply_split_vectors));
        tcase_add_loop_test(tc, test_reply_split_stream, 0, ELEMENTSOF(reply_stream_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("error-reply-decode");
        tcase_add_loop_test(tc, test_error_reply_decode, 0, ELEMENTSOF(error_reply_vectors));
        tcase_add_loop_test(tc, test_error_reply_roundtrip, 0, _PROTO_ERROR_MAX);
        suite_add_tcase(s, tc);

        tc = tcase_create("normalize-reply-decode");
        tcase_add_test(tc, test_normalize_reply_decode);
        tcase_add_loop_test(tc, test_normalize_reply_decode_vectors, 0, ELEMENTSOF(normalize_reply_vectors));
        tcase_add_test(tc, test_normalize_reply_decode_none);
        suite_add_tcase(s, tc);

        tc = tcase_create("list-mappings-reply-decode");
        tcase_add_test(tc, test_list_mappings_reply_decode);
        tcase_add_loop_test(tc, test_list_mappings_reply_decode_vectors, 0, ELEMENTSOF(list_mappings_reply_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("status-decode");
        tcase_add_test(tc, test_status_decode);
        tcase_add_loop_test(tc, test_status_decode_vectors, 0, ELEMENTSOF(status_vectors));
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(proto_suite());
}
