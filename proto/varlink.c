/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Varlink message framing on top of json-c. json-c's strict mode is not
 * strict enough for input from an unprivileged peer (it takes NaN, "00",
 * "1.", raw control characters, overlong UTF-8, lone surrogates, and it
 * clamps big integers), so every message is first checked by a small
 * lexer of our own, and json-c only builds the tree.
 */

#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-writer.h"
#include "macro.h"
#include "parse-util.h"
#include "varlink.h"

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

static void json_tokener_freep(struct json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

static bool char_is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool char_is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool char_is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool char_is_structural(char c) {
        return IN_SET(c, '{', '}', '[', ']', ':', ',');
}

/* What may follow a number or a literal: anything else would make json-c read a different token. */
static bool char_ends_token(const char *p, size_t n, size_t i) {
        return i == n || char_is_json_space(p[i]) || p[i] == ',' || p[i] == ']' || p[i] == '}';
}

static int hex4(const char *p, size_t n, size_t i, unsigned *ret) {
        uint64_t v;

        if (n - i < 4 || parse_u64_n(p + i, 4, 16, &v) < 0)
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

/* Check the string starting at the quote at p[*i]; leave *i after the closing quote. */
static int scan_string(const char *p, size_t n, size_t *i) {
        size_t k = *i + 1;

        for (;;) {
                unsigned char c;
                unsigned u, u2;
                size_t len;

                if (k >= n)
                        return -EBADMSG;
                c = (unsigned char) p[k];

                if (c == '"') {
                        *i = k + 1;
                        return 0;
                }
                if (c < 0x20)
                        return -EBADMSG;
                if (c >= 0x80) {
                        len = utf8_sequence_len((const unsigned char *) p + k, n - k);
                        if (len == 0)
                                return -EBADMSG;
                        k += len;
                        continue;
                }
                if (c != '\\') {
                        k++;
                        continue;
                }

                k++;
                if (k >= n)
                        return -EBADMSG;
                if (p[k] != '\0' && strchr("\"\\/bfnrt", p[k])) {
                        k++;
                        continue;
                }
                if (p[k] != 'u' || hex4(p, n, k + 1, &u) < 0)
                        return -EBADMSG;
                k += 5;

                /* A C string cannot hold U+0000; a lone surrogate is no character at all. */
                if (u == 0 || (u >= 0xdc00 && u <= 0xdfff))
                        return -EBADMSG;
                if (u >= 0xd800 && u <= 0xdbff) {
                        if (n - k < 2 || p[k] != '\\' || p[k + 1] != 'u' || hex4(p, n, k + 2, &u2) < 0 ||
                            u2 < 0xdc00 || u2 > 0xdfff)
                                return -EBADMSG;
                        k += 6;
                }
        }
}

/*
 * Check the number starting at p[*i] against the RFC 8259 grammar and leave
 * *i after it. *ret_clamped tells whether it is an integer that json-c would
 * clamp: below INT64_MIN or above UINT64_MAX. *ret_unsigned whether it is an
 * integer in 0..UINT64_MAX, then *ret_value is it.
 */
static int scan_number(const char *p, size_t n, size_t *i, bool *ret_clamped, bool *ret_unsigned, uint64_t *ret_value) {
        size_t k = *i, digits;
        bool negative = false, integer = true;
        uint64_t v = 0;
        int r;

        if (p[k] == '-') {
                negative = true;
                k++;
        }

        /* The value on the way: 19 digits cannot overflow; more are parsed again below, checked. */
        digits = k;
        if (k < n && p[k] == '0')
                k++;
        else if (k < n && p[k] >= '1' && p[k] <= '9')
                while (k < n && char_is_digit(p[k])) {
                        v = v * 10 + (uint64_t) (p[k] - '0');
                        k++;
                }
        else
                return -EBADMSG;

        if (k < n && p[k] == '.') {
                size_t f = ++k;

                while (k < n && char_is_digit(p[k]))
                        k++;
                if (k == f)
                        return -EBADMSG;
                integer = false;
        }

        if (k < n && (p[k] == 'e' || p[k] == 'E')) {
                size_t e;

                k++;
                if (k < n && (p[k] == '+' || p[k] == '-'))
                        k++;
                e = k;
                while (k < n && char_is_digit(p[k]))
                        k++;
                if (k == e)
                        return -EBADMSG;
                integer = false;
        }

        if (!char_ends_token(p, n, k))
                return -EBADMSG;

        *ret_clamped = *ret_unsigned = false;
        if (integer && k - digits < 20) {
                if (negative && v > (uint64_t) INT64_MAX + 1)
                        *ret_clamped = true;
                else if (!negative) {
                        *ret_unsigned = true;
                        *ret_value = v;
                }
        } else if (integer) {
                r = parse_u64_n(p + digits, k - digits, 10, &v);
                if (r == -ERANGE || (r >= 0 && negative && v > (uint64_t) INT64_MAX + 1))
                        *ret_clamped = true;
                else if (r < 0)
                        return -EBADMSG;
                else if (!negative) {
                        *ret_unsigned = true;
                        *ret_value = v;
                }
        }

        *i = k;
        return 0;
}

/*
 * An array of unsigned integers the scan takes out of the text: the value
 * of @key in the message's "parameters". json-c is then given the text
 * without the array's elements, [] in its place, so that it builds no
 * object for each. When anything could make json-c see it differently
 * (an element that is not such an integer, a key written with an escape,
 * a key twice), the array is left to json-c: ->valid is false. With
 * ->reader, the array is the reader's to read instead, as it goes: if it
 * does not take it, the scan goes on into the array as anywhere else and
 * json-c builds it.
 */
typedef struct ScanPack {
        const char *key;
        VarlinkSpanReader reader;               /* reads the array itself; NULL: pack integers */
        void *userdata;
        VarlinkPacked packed;
        size_t allocated;
        size_t open, close;                     /* the offsets of its '[' and ']' */
        bool found, abandoned;
} ScanPack;

static void scan_pack_done(ScanPack *pack) {
        free(pack->packed.values);
}

static void scan_pack_abandon(ScanPack *pack) {
        pack->abandoned = true;
        pack->packed.values = mfree(pack->packed.values);
        pack->packed.n = pack->allocated = 0;
}

static int scan_pack_add(ScanPack *pack, uint64_t v) {
        if (pack->packed.n == pack->allocated) {
                size_t n = MAX(pack->allocated * 2, (size_t) 256);
                uint64_t *a = reallocarray(pack->packed.values, n, sizeof(uint64_t));

                if (!a)
                        return -ENOMEM;
                pack->packed.values = a;
                pack->allocated = n;
        }
        pack->packed.values[pack->packed.n++] = v;
        return 0;
}

static bool key_is(const char *key, size_t len, const char *name) {
        return key && len == strlen(name) && memcmp(key, name, len) == 0;
}

/*
 * What the scan knows of the containers it is in, the innermost last. No
 * value may be deeper than VARLINK_DEPTH_MAX levels, so a fixed array
 * holds them all.
 */
typedef struct ScanState {
        const VarlinkLimits *limits;
        size_t n_values;
        size_t n_containers;
        size_t depth;
        struct {
                char type;                      /* '{' or '[' */
                size_t n_elements;              /* values directly inside an array */
                const char *key;                /* of an object: the key of the value that follows, raw */
                size_t key_len;
        } levels[VARLINK_DEPTH_MAX];
        ScanPack *pack;                         /* NULL: nothing to pack */
        bool packing;                           /* inside the array being packed */
        size_t n_parameters;                    /* "parameters" keys of the message */
        size_t n_packed_keys;                   /* pack->key keys of the parameters */
} ScanState;

/* A key of the message or of its parameters, @len bytes without quotes at @key: note what packing needs. */
static void scan_key(ScanState *s, const char *key, size_t len) {
        ScanPack *pack = s->pack;

        s->levels[s->depth - 1].key = key;
        s->levels[s->depth - 1].key_len = len;
        if (!pack || pack->abandoned || s->depth > 2)
                return;
        /* An escape could spell the same key differently: json-c would see one we do not. */
        if (memchr(key, '\\', len)) {
                scan_pack_abandon(pack);
                return;
        }
        if (s->depth == 1 && key_is(key, len, "parameters") && ++s->n_parameters > 1)
                scan_pack_abandon(pack);
        if (s->depth == 2 && s->levels[1].type == '{' &&
            key_is(s->levels[0].key, s->levels[0].key_len, "parameters") && key_is(key, len, pack->key) &&
            ++s->n_packed_keys > 1)
                scan_pack_abandon(pack);
}

/* At the '[' at p[i]: start packing if it opens the array to pack. Called before the level is entered. */
static void scan_pack_open(ScanState *s, size_t i) {
        ScanPack *pack = s->pack;

        if (!pack || pack->abandoned)
                return;
        if (s->packing) {
                /* A container inside: not an array of integers. */
                if (!pack->reader)
                        scan_pack_abandon(pack);
                return;
        }
        if (s->depth == 2 && !pack->found && s->levels[0].type == '{' && s->levels[1].type == '{' &&
            key_is(s->levels[0].key, s->levels[0].key_len, "parameters") &&
            key_is(s->levels[1].key, s->levels[1].key_len, pack->key)) {
                pack->found = s->packing = true;
                pack->open = i;
        }
}

/* Count a value: a scalar once it is checked, a container at its opening bracket. */
static int scan_value(ScanState *s) {
        const VarlinkLimits *l = s->limits;

        /* The top level is level 1. json-c refuses this too, but after building all before it. */
        if (s->depth >= VARLINK_DEPTH_MAX)
                return -EBADMSG;

        s->n_values++;
        if (l && l->max_values > 0 && s->n_values > l->max_values)
                return -E2BIG;

        if (s->depth > 0 && s->levels[s->depth - 1].type == '[') {
                size_t n = ++s->levels[s->depth - 1].n_elements;

                if (l && l->max_array_elements > 0 && n > l->max_array_elements)
                        return -E2BIG;
        }
        return 0;
}

static int scan_open(ScanState *s, char type) {
        const VarlinkLimits *l = s->limits;
        int r;

        r = scan_value(s);
        if (r < 0)
                return r;

        s->n_containers++;
        if (l && l->max_containers > 0 && s->n_containers > l->max_containers)
                return -E2BIG;

        s->levels[s->depth].type = type;
        s->levels[s->depth].n_elements = 0;
        s->depth++;
        return 0;
}

static int scan_close(ScanState *s, char type) {
        if (s->depth == 0 || s->levels[s->depth - 1].type != type)
                return -EBADMSG;
        s->depth--;
        return 0;
}

/*
 * Check the whole text and count its values against @limits (NULL: no
 * limits) in the same pass, so that a message over a limit is refused
 * before json-c allocates anything for it. The grammar between tokens is
 * json-c's to check; the scan only needs to tell keys from values: in an
 * object, a string right after '{' or ',' is a key. It allocates nothing.
 *
 * If @out is not NULL, copy the text there with ".0" appended to each
 * clamped integer, so that json-c reads it as a double; @out must have
 * room for @n plus two bytes per clamped integer. Returns the number of
 * clamped integers.
 */
static int scan_json(const char *p, size_t n, const VarlinkLimits *limits, ScanPack *pack, char *out,
                     size_t *ret_values) {
        ScanState s = {
                .limits = limits,
                .pack = pack,
        };
        size_t i = 0, copied = 0, o = 0;
        int n_clamped = 0, r;
        char last = 0;                          /* the last structural character; 0 after a scalar */

        while (i < n) {
                char c = p[i];

                if (char_is_json_space(c)) {
                        i++;
                        continue;
                }

                if (char_is_structural(c)) {
                        if (c == '[')
                                scan_pack_open(&s, i);
                        if (c == '[' && s.packing && pack->reader) {
                                size_t len = 0;

                                s.packing = false;
                                r = pack->reader(pack->userdata, p + i, n - i, &len);
                                if (r == -EAGAIN)
                                        /* Not in the reader's form: scanned and built as any other. */
                                        scan_pack_abandon(pack);
                                else if (r < 0)
                                        return r;
                                else if (len < 2 || len > n - i || p[i + len - 1] != ']')
                                        return -EINVAL;
                                else {
                                        /* Read, strictly, by the reader: counted as one array. */
                                        r = scan_open(&s, c);
                                        if (r >= 0)
                                                r = scan_close(&s, '[');
                                        if (r < 0)
                                                return r;
                                        i += len - 1;
                                        pack->close = i;
                                        last = ']';
                                        i++;
                                        continue;
                                }
                        } else if (c == '{' && s.packing && !pack->reader)
                                scan_pack_abandon(pack);
                        /*
                         * json-c will not see the array's punctuation: check it
                         * here, or leave the array to json-c, which does.
                         */
                        if (s.packing && s.depth == 3 && !pack->abandoned &&
                            ((c == ',' && last != 0) || (c == ']' && !IN_SET(last, 0, '[')) || c == ':'))
                                scan_pack_abandon(pack);
                        if (c == '{' || c == '[')
                                r = scan_open(&s, c);
                        else if (c == '}' || c == ']')
                                r = scan_close(&s, c == '}' ? '{' : '[');
                        else
                                r = 0;
                        if (r >= 0 && c == ']' && s.packing && s.depth == 2) {
                                s.packing = false;
                                pack->close = i;
                        }
                        if (r < 0)
                                return r;
                        last = c;
                        i++;
                        continue;
                }

                if (c == '"') {
                        bool key = s.depth > 0 && s.levels[s.depth - 1].type == '{' && IN_SET(last, '{', ',');
                        size_t start = i;

                        r = scan_string(p, n, &i);
                        if (r < 0)
                                return r;
                        if (key) {
                                scan_key(&s, p + start + 1, i - start - 2);
                                last = 0;
                                continue;
                        }
                        if (s.packing && !pack->reader)
                                scan_pack_abandon(pack);
                } else if (c == '-' || char_is_digit(c)) {
                        bool clamped, is_unsigned;
                        uint64_t v = 0;

                        r = scan_number(p, n, &i, &clamped, &is_unsigned, &v);
                        if (r < 0)
                                return r;
                        if (s.packing && !pack->abandoned && !pack->reader) {
                                if (!is_unsigned || !IN_SET(last, '[', ','))
                                        scan_pack_abandon(pack);
                                else if (scan_pack_add(pack, v) < 0)
                                        return -ENOMEM;
                        }
                        if (clamped) {
                                if (n_clamped == INT_MAX)
                                        return -EBADMSG;
                                n_clamped++;
                                if (out) {
                                        memcpy(out + o, p + copied, i - copied);
                                        o += i - copied;
                                        memcpy(out + o, ".0", 2);
                                        o += 2;
                                        copied = i;
                                }
                        }
                } else if (char_is_alpha(c)) {
                        static const char *const literals[] = { "true", "false", "null" };
                        bool found = false;

                        for (size_t l = 0; l < ELEMENTSOF(literals) && !found; l++) {
                                size_t len = strlen(literals[l]);

                                if (n - i >= len && memcmp(p + i, literals[l], len) == 0 &&
                                    char_ends_token(p, n, i + len)) {
                                        i += len;
                                        found = true;
                                }
                        }
                        if (!found)
                                return -EBADMSG;
                        if (s.packing && !pack->reader)
                                scan_pack_abandon(pack);
                } else
                        return -EBADMSG;

                /* A scalar value, checked: count it. */
                r = scan_value(&s);
                if (r < 0)
                        return r;
                last = 0;
        }

        if (out)
                memcpy(out + o, p + copied, n - copied);
        if (ret_values)
                *ret_values = s.n_values;
        return n_clamped;
}

/* Feed @size bytes at @data to @tok; returns json-c's verdict. */
static enum json_tokener_error feed(struct json_tokener *tok, const char *data, size_t size,
                                    struct json_object **ret) {
        *ret = json_tokener_parse_ex(tok, data, (int) size);
        return json_tokener_get_error(tok);
}

/* varlink_json_parse(), and with @pack (may be NULL) the array it names taken out. */
static int json_parse(const char *data, size_t size, const VarlinkLimits *limits, ScanPack *pack,
                      struct json_object **ret) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = NULL;
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *copy = NULL;
        enum json_tokener_error e;
        size_t end, n_values = 0;
        int n_clamped;

        if (!data && size > 0)
                return -EBADMSG;
        /* json-c takes an int; the daemon's limit is far below anyway. */
        if (size > INT_MAX)
                return -EBADMSG;
        /* json-c stops at a NUL and would leave the rest unread. */
        if (size > 0 && memchr(data, '\0', size))
                return -EBADMSG;

        /* Before anything is allocated: json-c's tree costs up to hundreds of bytes per input byte. */
        n_clamped = scan_json(data, size, limits, pack, NULL, &n_values);
        if (n_clamped < 0)
                return n_clamped;
        if (pack && (n_clamped > 0 || !pack->found))
                scan_pack_abandon(pack);
        if (limits && limits->reserve) {
                /* The array's elements were counted as values: json-c will not build them. */
                size_t n_packed = pack && !pack->abandoned && !pack->reader ? pack->packed.n : 0;
                int r = limits->reserve(limits->userdata, n_values - n_packed, n_packed);

                if (r < 0)
                        return r;
        }
        if (n_clamped > 0) {
                size_t copy_size;

                /* Rare: only a peer sending integers beyond 64 bits gets here. */
                if (__builtin_mul_overflow((size_t) n_clamped, (size_t) 2, &copy_size) ||
                    __builtin_add_overflow(copy_size, size, &copy_size) || copy_size > INT_MAX)
                        return -EBADMSG;
                copy = malloc(copy_size);
                if (!copy)
                        return -ENOMEM;
                (void) scan_json(data, size, limits, NULL, copy, NULL);
                data = copy;
                size = copy_size;
        }

        tok = json_tokener_new_ex(VARLINK_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

        if (pack && !pack->abandoned) {
                /* The text up to the array's '[', then from its ']': json-c sees []. The scan found both. */
                e = feed(tok, data, pack->open + 1, &o);
                if (e != json_tokener_continue)
                        return -EBADMSG;
                data += pack->close;
                size -= pack->close;
        }
        e = feed(tok, data ?: "", size, &o);
        end = json_tokener_get_parse_end(tok);
        if (e == json_tokener_continue && end == size)
                /* A number at the top level, or the end of the input came too early: say it ended. */
                e = feed(tok, "", 1, &o);
        else if (e == json_tokener_success && end != size)
                return -EBADMSG;        /* a second value after the first */

        /* json-c reports a failed allocation as a parse error: nothing better to say. */
        if (e != json_tokener_success)
                return -EBADMSG;

        if (pack)
                pack->packed.valid = !pack->abandoned;

        /* NULL is JSON's null. */

        *ret = TAKE_PTR(o);
        return 0;
}

int varlink_json_parse(const char *data, size_t size, const VarlinkLimits *limits, struct json_object **ret) {
        return json_parse(data, size, limits, NULL, ret);
}

int varlink_json_parse_span(const char *data, size_t size, const VarlinkLimits *limits, const char *key,
                            VarlinkSpanReader reader, void *userdata, struct json_object **ret, bool *ret_read) {
        ScanPack pack = { .key = key, .reader = reader, .userdata = userdata };
        int r;

        assert(reader);

        r = json_parse(data, size, limits, &pack, ret);
        if (r < 0)
                return r;
        *ret_read = pack.packed.valid;
        return 0;
}

static bool label_is_valid(const char *s, size_t n, bool first) {
        if (n == 0)
                return false;
        if (first ? !char_is_alpha(s[0]) : !(char_is_alpha(s[0]) || char_is_digit(s[0])))
                return false;
        if (s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!char_is_alpha(s[i]) && !char_is_digit(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool interface_name_is_valid_n(const char *s, size_t n) {
        size_t labels = 0;

        for (const char *p = s, *end = s + n;;) {
                const char *dot = memchr(p, '.', (size_t) (end - p));
                size_t len = (size_t) ((dot ?: end) - p);

                if (!label_is_valid(p, len, labels == 0))
                        return false;
                labels++;
                if (!dot)
                        break;
                p = dot + 1;
        }

        return labels >= 2;
}

bool varlink_interface_name_is_valid(const char *name) {
        return name && interface_name_is_valid_n(name, strlen(name));
}

bool varlink_member_name_is_valid(const char *name) {
        if (!name || !(name[0] >= 'A' && name[0] <= 'Z'))
                return false;
        for (const char *p = name + 1; *p; p++)
                if (!char_is_alpha(*p) && !char_is_digit(*p))
                        return false;
        return true;
}

bool varlink_qualified_name_is_valid(const char *name) {
        const char *dot;

        if (!name)
                return false;
        dot = strrchr(name, '.');
        return dot && interface_name_is_valid_n(name, (size_t) (dot - name)) &&
               varlink_member_name_is_valid(dot + 1);
}

int varlink_call_parse_packed(const char *data, size_t size, const VarlinkLimits *limits, const char *packed_key,
                              VarlinkCall *ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        struct json_object *method = NULL, *parameters = NULL;
        _cleanup_(scan_pack_done) ScanPack pack = { .key = packed_key };
        bool oneway = false, more = false;
        int r;

        r = json_parse(data, size, limits, packed_key ? &pack : NULL, &o);
        if (r < 0)
                return r;

        if (!json_object_is_type(o, json_type_object))
                return -EPROTO;

        json_object_object_foreach(o, key, value) {
                if (strcmp(key, "method") == 0)
                        method = value;
                else if (strcmp(key, "parameters") == 0)
                        /* null is the same as absent, as for any other Varlink service. */
                        parameters = value;
                else if (strcmp(key, "oneway") == 0 || strcmp(key, "more") == 0) {
                        if (!json_object_is_type(value, json_type_boolean))
                                return -EPROTO;
                        if (key[0] == 'o')
                                oneway = json_object_get_boolean(value);
                        else
                                more = json_object_get_boolean(value);
                } else
                        /* "upgrade" too: we cannot switch protocols, so refuse rather than ignore. */
                        return -EPROTO;
        }

        if (!json_object_is_type(method, json_type_string) ||
            (size_t) json_object_get_string_len(method) != strlen(json_object_get_string(method)) ||
            !varlink_qualified_name_is_valid(json_object_get_string(method)))
                return -EPROTO;

        if (!parameters) {
                parameters = json_object_new_object();
                if (!parameters)
                        return -ENOMEM;
                if (json_object_object_add(o, "parameters", parameters) < 0) {
                        json_object_put(parameters);
                        return -ENOMEM;
                }
        } else if (!json_object_is_type(parameters, json_type_object))
                return -EPROTO;

        *ret = (VarlinkCall) {
                .method = json_object_get_string(method),
                .parameters = parameters,
                .oneway = oneway,
                .more = more,
                .packed = pack.packed,
        };
        pack.packed.values = NULL;      /* the call's now */
        ret->object = TAKE_PTR(o);
        return 0;
}

int varlink_call_parse(const char *data, size_t size, const VarlinkLimits *limits, VarlinkCall *ret) {
        return varlink_call_parse_packed(data, size, limits, NULL, ret);
}

void varlink_call_done(VarlinkCall *call) {
        if (!call)
                return;
        json_object_put(call->object);
        free(call->packed.values);
        *call = (VarlinkCall) {};
}

/*
 * Serialize @o into a malloc'd, NUL-terminated buffer. json-c copies string
 * bytes as they are, so a byte that is not valid UTF-8 (only possible inside
 * a string: everything else json-c writes is ASCII) becomes U+FFFD.
 */
static int format_message(struct json_object *o, char **ret, size_t *ret_size) {
        const char *text;
        size_t len, n_bad = 0, out_size;
        char *buf, *q;

        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                   &len);
        if (!text)
                return -ENOMEM;

        for (size_t i = 0; i < len;) {
                size_t l = utf8_sequence_len((const unsigned char *) text + i, len - i);

                if (l == 0) {
                        n_bad++;
                        i++;
                } else
                        i += l;
        }

        /* Each bad byte grows by two (1 -> 3 bytes), plus the NUL. */
        if (__builtin_mul_overflow(n_bad, (size_t) 2, &out_size) ||
            __builtin_add_overflow(out_size, len + 1, &out_size))
                return -ENOMEM;
        buf = malloc(out_size);
        if (!buf)
                return -ENOMEM;

        q = buf;
        for (size_t i = 0; i < len;) {
                size_t l = n_bad > 0 ? utf8_sequence_len((const unsigned char *) text + i, len - i) : len;

                if (l == 0) {
                        memcpy(q, "\xef\xbf\xbd", 3);
                        q += 3;
                        i++;
                } else {
                        memcpy(q, text + i, l);
                        q += l;
                        i += l;
                }
        }
        *q = '\0';

        *ret = buf;
        *ret_size = out_size;
        return 0;
}

static int message_format(const char *error, struct json_object *parameters_in, bool continues, char **ret,
                          size_t *ret_size) {
        _cleanup_(json_object_putp) struct json_object *parameters = parameters_in;
        _cleanup_(json_object_putp) struct json_object *o = NULL;

        if (parameters && !json_object_is_type(parameters, json_type_object))
                return -EINVAL;
        if (!parameters) {
                parameters = json_object_new_object();
                if (!parameters)
                        return -ENOMEM;
        }

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        if (error) {
                struct json_object *e = json_object_new_string(error);

                if (!e || json_object_object_add(o, "error", e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }

        if (json_object_object_add(o, "parameters", parameters) < 0)
                return -ENOMEM;
        parameters = NULL;      /* owned by o now */

        if (continues) {
                struct json_object *c = json_object_new_boolean(true);

                if (!c || json_object_object_add(o, "continues", c) < 0) {
                        json_object_put(c);
                        return -ENOMEM;
                }
        }

        return format_message(o, ret, ret_size);
}

int varlink_reply_format(struct json_object *parameters, bool continues, char **ret, size_t *ret_size) {
        return message_format(NULL, parameters, continues, ret, ret_size);
}

int varlink_error_format(const char *error, struct json_object *parameters, char **ret, size_t *ret_size) {
        if (!varlink_qualified_name_is_valid(error)) {
                json_object_put(parameters);
                return -EINVAL;
        }
        return message_format(error, parameters, false, ret, ret_size);
}
