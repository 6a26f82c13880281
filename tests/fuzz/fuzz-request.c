/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The wire: what the daemon does with a client's bytes before it looks at
 * any process, and what libvmaq does with the daemon's, for a daemon may
 * be hostile too. No socket, no process: proto/ alone, as the daemon and
 * the client library call it.
 *
 * The input is cut into messages at NUL bytes, as connection.c frames
 * them; a last piece without its NUL is taken as a message too (the client
 * may still send the NUL). Each message is:
 *
 *   - a request: varlink_call_parse() with the limits of a daemon started
 *     with --max-addresses=FUZZ_MAX_ADDRESSES, proto_method_lookup() and the
 *     method's decoder, as methods.c runs them. What json-c built must be
 *     within the limits the scan enforced before (and within what the
 *     daemon charges for the message). Each error the daemon would answer
 *     is formatted and must decode in the client to the same error. A
 *     decoded request, encoded by the client's encoder, must come back the
 *     same through the daemon's parser;
 *   - a reply: varlink_json_parse() without limits, proto_reply_split(),
 *     then proto_error_reply_decode() or each reply decoder. What decodes
 *     must encode again and decode to the same, and a reply must not
 *     exceed the size bound the daemon checks before building it;
 *   - for the first message, a path, as a target may name its files with
 *     any bytes but NUL: the daemon's replies must carry it as JSON that
 *     its own parser takes.
 *
 * Everything is freed, so that the leak check of ASan stays quiet.
 */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "manager.h"
#include "varlink.h"
#include "vmaq-proto.h"

/*
 * The --max-addresses of the daemon we play: small, so that inputs of a
 * few KiB reach every limit the scan and the decoders derive from it.
 */
#define FUZZ_MAX_ADDRESSES 64U

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

static bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* --- what json-c built ---------------------------------------------------- */

typedef struct TreeCount {
        size_t values;
        size_t containers;
        size_t max_elements;            /* of any one array */
        size_t depth;                   /* the top level is 1 */
} TreeCount;

/* Count as varlink.h does: every value, keys not; JSON null is a NULL object. */
static void tree_count(struct json_object *o, size_t depth, TreeCount *c) {
        c->values++;
        c->depth = MAX(c->depth, depth);

        if (json_object_is_type(o, json_type_object)) {
                struct json_object_iter it;

                c->containers++;
                json_object_object_foreachC(o, it)
                        tree_count(it.val, depth + 1, c);
        } else if (json_object_is_type(o, json_type_array)) {
                size_t n = json_object_array_length(o);

                c->containers++;
                c->max_elements = MAX(c->max_elements, n);
                for (size_t i = 0; i < n; i++)
                        tree_count(json_object_array_get_idx(o, i), depth + 1, c);
        }
}

static size_t tree_values(struct json_object *o) {
        TreeCount c = {};

        tree_count(o, 1, &c);
        return c.values;
}

/*
 * A parsed call of @size bytes: what varlink.h promises of it, and that the
 * scan refused everything json-c would have built beyond the limits.
 */
static void check_call(const VarlinkCall *call, size_t size, const VarlinkLimits *limits) {
        TreeCount c = {};
        size_t added;

        FUZZ_CHECK(call->object);
        FUZZ_CHECK(varlink_qualified_name_is_valid(call->method));
        FUZZ_CHECK(json_object_is_type(call->parameters, json_type_object));

        /* An absent or null "parameters" became an empty object after the scan. */
        added = json_object_object_length(call->parameters) == 0 ? 1 : 0;

        tree_count(call->object, 1, &c);
        FUZZ_CHECK(c.depth <= VARLINK_DEPTH_MAX);
        FUZZ_CHECK(c.values <= limits->max_values + added);
        FUZZ_CHECK(c.containers <= limits->max_containers + added);
        FUZZ_CHECK(c.max_elements <= limits->max_array_elements);
        /* manager.c charges a job for at most size / 2 + 1 values. */
        FUZZ_CHECK(c.values <= size / 2 + 1 + added);
}

/* --- the daemon's errors, as the client reads them ----------------------------- */

/* A string the client got for one the daemon sent; a required one NULL is sent as "". */
static bool sent_string_eq(const char *sent, const char *got) {
        if (!got)
                return !sent;
        return strcmp(sent ?: "", got) == 0;
}

static bool details_eq(const ProtoErrorDetails *sent, const ProtoErrorDetails *got) {
        return sent_string_eq(sent->interface, got->interface) && sent_string_eq(sent->method, got->method) &&
               sent_string_eq(sent->parameter, got->parameter) && sent_string_eq(sent->reason, got->reason) &&
               sent->pid == got->pid && sent->start_time == got->start_time && sent->limit == got->limit &&
               sent->error == got->error;
}

/*
 * The reply a @text of @size bytes (with its NUL) is, parsed as libvmaq
 * does. Checks that it is one whole message and returns its parameters
 * and error name, borrowed from *ret_message.
 */
static void parse_reply_message(const char *text, size_t size, struct json_object **ret_message,
                                struct json_object **ret_parameters, const char **ret_error) {
        const char *field = NULL;
        int r;

        FUZZ_CHECK(size > 0 && text[size - 1] == '\0' && strlen(text) == size - 1);
        r = varlink_json_parse(text, size - 1, NULL, ret_message);
        FUZZ_CHECK(r == 0);
        r = proto_reply_split(*ret_message, ret_error, ret_parameters, NULL, &field);
        FUZZ_CHECK(r == 0);
}

/*
 * The daemon answers @e with @details: the client must read the same
 * error back, and the same message as @message if not NULL.
 */
static void check_error_reply(ProtoError e, const ProtoErrorDetails *details, const char *message) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        struct json_object *parameters = NULL;
        const char *error = NULL, *field = NULL;
        ProtoErrorReply got;
        size_t size = 0;
        int r;

        r = proto_error_format(e, details, &text, &size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);

        parse_reply_message(text, size, &o, &parameters, &error);
        FUZZ_CHECK(streq_ptr(error, proto_error_to_string(e)));

        r = proto_error_reply_decode(error, parameters, &got, &field);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(got.error == e);
        FUZZ_CHECK(got.error_errno == proto_error_to_errno(e));
        FUZZ_CHECK(details_eq(details, &got.details));
        FUZZ_CHECK(memchr(got.message, '\0', sizeof(got.message)));
        FUZZ_CHECK(!message || strcmp(message, got.message) == 0);
}

/* What methods.c's call_invalid_parameter() answers for a decoder's error. */
static void check_invalid_parameter(int r, const char *parameter, uint64_t limit) {
        FUZZ_CHECK(IN_SET(r, -EINVAL, -E2BIG, -ENOMEM));
        if (r == -ENOMEM)
                return;
        /* The decoders name what they refuse: the daemon would send "" otherwise. */
        FUZZ_CHECK(parameter);

        if (r == -E2BIG)
                check_error_reply(PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .parameter = parameter,
                                .limit = limit,
                        }, NULL);
        else
                check_error_reply(PROTO_ERROR_INVALID_PARAMETER, &(ProtoErrorDetails) {
                                .parameter = parameter,
                        }, NULL);
}

/* --- requests --------------------------------------------------------------- */

/*
 * Send @parameters (taken over) as libvmaq calls @m, and parse the call as
 * the daemon does into *ret. Whatever the client encodes, the daemon must
 * take, all of it.
 */
static void resend_call(ProtoMethod m, struct json_object *parameters, VarlinkCall *ret) {
        _cleanup_free_ char *text = NULL;
        VarlinkLimits limits;
        size_t size = 0, sent;
        int r;

        sent = tree_values(parameters);
        r = proto_call_format(m, parameters, &text, &size);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(size > 0 && text[size - 1] == '\0' && strlen(text) == size - 1);

        proto_request_limits(FUZZ_MAX_ADDRESSES, &limits);
        r = varlink_call_parse(text, size - 1, &limits, ret);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(strcmp(ret->method, proto_method_to_string(m)) == 0);
        /* Nothing sent twice or lost on the way, such as a key added twice. */
        FUZZ_CHECK(tree_values(ret->parameters) == sent);
}

/*
 * @call as the daemon parsed it, its addresses packed; @plain the same
 * message parsed without packing, all in json-c's tree. Both must decode
 * to the same request, or fail the same way.
 */
/* A decoded request names its process one way: a pid, or an fd index, never both; a maps fd is not pinned. */
static void check_target(ProtoTarget target, pid_t pid, unsigned fd_index, bool pin) {
        FUZZ_CHECK(proto_target_to_string(target));
        if (target == PROTO_TARGET_PID)
                FUZZ_CHECK(pid > 0 && fd_index == 0);
        else
                FUZZ_CHECK(pid == 0 && fd_index <= INT32_MAX);
        FUZZ_CHECK(!(pin && target == PROTO_TARGET_MAPS_FD));
}

static void fuzz_normalize(VarlinkCall *call, const VarlinkCall *plain) {
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {}, again = {}, ref = {};
        _cleanup_(varlink_call_done) VarlinkCall resent = {};
        const char *parameter = NULL, *ref_parameter = NULL;
        _cleanup_free_ char *text = NULL;
        VarlinkLimits limits;
        size_t size = 0;
        int r, k;

        r = proto_normalize_request_decode(call->parameters, &call->packed, FUZZ_MAX_ADDRESSES, &req, &parameter);
        k = proto_normalize_request_decode(plain->parameters, NULL, FUZZ_MAX_ADDRESSES, &ref, &ref_parameter);
        FUZZ_CHECK(r == k || (r == -ENOMEM || k == -ENOMEM));
        if (r == k && r < 0)
                FUZZ_CHECK(streq_ptr(parameter, ref_parameter));
        if (r == k && r >= 0)
                FUZZ_CHECK(req.n_addresses == ref.n_addresses &&
                           memcmp(req.addresses, ref.addresses, req.n_addresses * sizeof(uint64_t)) == 0 &&
                           req.pid == ref.pid && req.target == ref.target && req.fd_index == ref.fd_index &&
                           req.build_ids == ref.build_ids && req.map_files == ref.map_files &&
                           req.pin == ref.pin && req.start_time == ref.start_time);
        if (r < 0) {
                check_invalid_parameter(r, parameter, FUZZ_MAX_ADDRESSES);
                return;
        }
        FUZZ_CHECK(r == 0);
        check_target(req.target, req.pid, req.fd_index, req.pin);
        FUZZ_CHECK(req.addresses && req.n_addresses >= 1 && req.n_addresses <= FUZZ_MAX_ADDRESSES);
        FUZZ_CHECK(req.pin == json_object_object_get_ex(call->parameters, "start_time", NULL));

        /* What libvmaq sends for it, the daemon reads back exactly. */
        r = proto_normalize_request_format(&req, call->more, &text, &size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(size > 0 && text[size - 1] == '\0' && strlen(text) == size - 1);
        proto_request_limits(FUZZ_MAX_ADDRESSES, &limits);
        r = proto_call_parse(text, size - 1, &limits, &resent);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0 && resent.packed.valid && resent.more == call->more);

        r = proto_normalize_request_decode(resent.parameters, &resent.packed, FUZZ_MAX_ADDRESSES, &again, &parameter);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again.pid == req.pid && again.target == req.target && again.fd_index == req.fd_index);
        FUZZ_CHECK(again.n_addresses == req.n_addresses);
        FUZZ_CHECK(memcmp(again.addresses, req.addresses, req.n_addresses * sizeof(uint64_t)) == 0);
        FUZZ_CHECK(again.build_ids == req.build_ids);
        FUZZ_CHECK(again.map_files == req.map_files);
        FUZZ_CHECK(again.pin == req.pin);
        FUZZ_CHECK(again.start_time == req.start_time);
}

static void fuzz_list_mappings(const VarlinkCall *call) {
        _cleanup_(varlink_call_done) VarlinkCall resent = {};
        ProtoListMappingsRequest req = {}, again = {};
        struct json_object *parameters = NULL;
        const char *parameter = NULL;
        int r;

        r = proto_list_mappings_request_decode(call->parameters, &req, &parameter);
        if (r < 0) {
                check_invalid_parameter(r, parameter, 0);
                return;
        }
        FUZZ_CHECK(r == 0);
        check_target(req.target, req.pid, req.fd_index, req.pin);
        FUZZ_CHECK(req.pin == json_object_object_get_ex(call->parameters, "start_time", NULL));

        r = proto_list_mappings_request_encode(&req, &parameters);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        resend_call(PROTO_METHOD_LIST_MAPPINGS, parameters, &resent);

        r = proto_list_mappings_request_decode(resent.parameters, &again, &parameter);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again.pid == req.pid && again.target == req.target && again.fd_index == req.fd_index);
        FUZZ_CHECK(again.exec_only == req.exec_only);
        FUZZ_CHECK(again.build_ids == req.build_ids);
        FUZZ_CHECK(again.pin == req.pin);
        FUZZ_CHECK(again.start_time == req.start_time);
        FUZZ_CHECK(again.start == req.start);
}

/* A Track call decodes, re-encodes and decodes again to the same request. */
static void fuzz_track(const VarlinkCall *call) {
        _cleanup_(varlink_call_done) VarlinkCall resent = {};
        ProtoTrackRequest req = {}, again = {};
        struct json_object *parameters = NULL;
        const char *parameter = NULL;
        int r;

        r = proto_track_request_decode(call->parameters, &req, &parameter);
        if (r < 0) {
                check_invalid_parameter(r, parameter, 0);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(req.pid > 0);
        FUZZ_CHECK(req.pin == json_object_object_get_ex(call->parameters, "start_time", NULL));

        r = proto_track_request_encode(&req, &parameters);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        resend_call(PROTO_METHOD_TRACK, parameters, &resent);

        r = proto_track_request_decode(resent.parameters, &again, &parameter);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again.pid == req.pid);
        FUZZ_CHECK(again.pin == req.pin);
        FUZZ_CHECK(!req.pin || again.start_time == req.start_time);
}

static void fuzz_interface_description(const VarlinkCall *call) {
        _cleanup_free_ char *text = NULL;
        struct json_object *reply = NULL, *name;
        const char *parameter = NULL;
        size_t size = 0;
        int r;

        r = proto_interface_description_encode(call->parameters, &reply, &parameter);
        if (r == -EADDRNOTAVAIL) {
                name = json_object_object_get(call->parameters, "interface");
                FUZZ_CHECK(json_object_is_type(name, json_type_string));
                check_error_reply(PROTO_ERROR_INTERFACE_NOT_FOUND, &(ProtoErrorDetails) {
                                .interface = json_object_get_string(name),
                        }, NULL);
                return;
        }
        if (r < 0) {
                check_invalid_parameter(r, parameter, 0);
                return;
        }

        r = varlink_reply_format(reply, false, &text, &size);
        FUZZ_CHECK(r == 0 || r == -ENOMEM);
}

/* methods.c's method_run(), up to where a method would look at a process. */
static void fuzz_request(const char *msg, size_t size) {
        _cleanup_(varlink_call_done) VarlinkCall call = {}, plain = {};
        _cleanup_free_ char *interface = NULL;
        const char *parameter = NULL;
        VarlinkLimits limits;
        ProtoMethod method;
        int r, k;

        proto_request_limits(FUZZ_MAX_ADDRESSES, &limits);
        r = proto_call_parse(msg, size, &limits, &call);
        /* Packing the addresses changes nothing but the cost. */
        k = varlink_call_parse(msg, size, &limits, &plain);
        FUZZ_CHECK(r == k || r == -ENOMEM || k == -ENOMEM);
        if (r >= 0 && k >= 0)
                FUZZ_CHECK(call.oneway == plain.oneway && call.more == plain.more &&
                           strcmp(call.method, plain.method) == 0);
        if (r >= 0 && k < 0)
                return;
        if (r == -E2BIG) {
                check_error_reply(PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .parameter = "addresses",
                                .limit = FUZZ_MAX_ADDRESSES,
                        }, NULL);
                return;
        }
        if (r < 0) {
                FUZZ_CHECK(IN_SET(r, -EBADMSG, -EPROTO, -ENOMEM));
                check_error_reply(PROTO_ERROR_INVALID_MESSAGE, &(ProtoErrorDetails) {
                                .reason = r == -EBADMSG ? "not valid JSON" : "not a Varlink call",
                        }, NULL);
                return;
        }
        FUZZ_CHECK(r == 0);
        check_call(&plain, size, &limits);

        r = proto_method_lookup(call.method, &method);
        if (r == -EADDRNOTAVAIL) {
                /* The interface is what precedes the last dot. */
                interface = strndup(call.method, (size_t) (strrchr(call.method, '.') - call.method));
                FUZZ_CHECK(interface);
                FUZZ_CHECK(varlink_interface_name_is_valid(interface));
                check_error_reply(PROTO_ERROR_INTERFACE_NOT_FOUND, &(ProtoErrorDetails) {
                                .interface = interface,
                        }, NULL);
                return;
        }
        if (r < 0) {
                /* A parsed call's method is well-formed: only the method may be unknown. */
                FUZZ_CHECK(r == -EOPNOTSUPP);
                check_error_reply(PROTO_ERROR_METHOD_NOT_FOUND, &(ProtoErrorDetails) {
                                .method = call.method,
                        }, NULL);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(method >= 0 && method < _PROTO_METHOD_MAX);
        FUZZ_CHECK(strcmp(proto_method_to_string(method), call.method) == 0);

        switch (method) {
        case PROTO_METHOD_GET_INFO:
        case PROTO_METHOD_GET_STATUS:
                r = proto_empty_request_decode(call.parameters, &parameter);
                if (r < 0)
                        check_invalid_parameter(r, parameter, 0);
                else
                        FUZZ_CHECK(r == 0 && json_object_object_length(call.parameters) == 0);
                break;
        case PROTO_METHOD_GET_INTERFACE_DESCRIPTION:
                fuzz_interface_description(&call);
                break;
        case PROTO_METHOD_NORMALIZE:
                fuzz_normalize(&call, &plain);
                break;
        case PROTO_METHOD_LIST_MAPPINGS:
                fuzz_list_mappings(&call);
                break;
        case PROTO_METHOD_TRACK:
                fuzz_track(&call);
                break;
        default:
                break;
        }
}

/* --- replies ------------------------------------------------------------------ */

/*
 * Format @parameters (taken over) as the daemon replies, and read the reply
 * as libvmaq does: *ret_message holds it, *ret_parameters is borrowed from
 * it. Returns the size of the message, its NUL included.
 */
/* The client's view of the reply message @text the daemon formatted: a reply, not an error. Frees @text. */
static size_t receive_reply(char *text_in, size_t size, struct json_object **ret_message,
                            struct json_object **ret_parameters) {
        _cleanup_free_ char *text = text_in;
        const char *error = NULL;

        parse_reply_message(text, size, ret_message, ret_parameters, &error);
        FUZZ_CHECK(!error);
        return size;
}

static size_t resend_reply(struct json_object *parameters, struct json_object **ret_message,
                           struct json_object **ret_parameters) {
        char *text = NULL;
        size_t size = 0, sent;
        int r;

        sent = tree_values(parameters);
        r = varlink_reply_format(parameters, false, &text, &size);
        FUZZ_CHECK(r == 0);
        (void) receive_reply(text, size, ret_message, ret_parameters);
        FUZZ_CHECK(tree_values(*ret_parameters) == sent);
        return size;
}

static bool module_eq(const ProtoModule *a, const ProtoModule *b) {
        return streq_ptr(a->path, b->path) && streq_ptr(a->map_files, b->map_files) &&
               a->build_id_len == b->build_id_len &&
               (a->build_id_len == 0 || memcmp(a->build_id, b->build_id, a->build_id_len) == 0) &&
               a->build_id_skipped == b->build_id_skipped && a->deleted == b->deleted && a->vdso == b->vdso &&
               a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && a->inode == b->inode &&
               streq_ptr(a->elf_type, b->elf_type) && streq_ptr(a->go_build_id, b->go_build_id) &&
               a->has_htlhash == b->has_htlhash &&
               (!a->has_htlhash || memcmp(a->htlhash, b->htlhash, sizeof(a->htlhash)) == 0) &&
               a->has_package == b->has_package && streq_ptr(a->package.name, b->package.name) &&
               streq_ptr(a->package.version, b->package.version) &&
               streq_ptr(a->package.debug_info_url, b->package.debug_info_url) &&
               streq_ptr(a->host_path, b->host_path);
}

static bool result_eq(const ProtoResult *a, const ProtoResult *b) {
        return streq_ptr(a->unknown, b->unknown) && a->module == b->module && a->offset == b->offset &&
               a->has_elf_address == b->has_elf_address && a->elf_address == b->elf_address &&
               streq_ptr(a->no_elf_address, b->no_elf_address);
}

static bool str_in(const char *s, const char *const *strv, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(s, strv[i]) == 0)
                        return true;
        return false;
}

static void check_normalize_reply(const ProtoNormalizeReply *reply) {
        static const char *const unknown[] = { "unmapped", "anonymous", "special", "exited" };
        static const char *const no_elf[] = { "not_elf", "outside_load_segments", "unreadable" };
        static const char *const elf_types[] = { "exec", "dyn", "other" };

        FUZZ_CHECK(reply->pid >= 0);
        FUZZ_CHECK(reply->n_modules == 0 || reply->modules);
        FUZZ_CHECK(reply->n_results == 0 || reply->results);
        for (size_t i = 0; i < reply->n_modules; i++) {
                const ProtoModule *m = &reply->modules[i];

                FUZZ_CHECK(m->path);
                FUZZ_CHECK(m->build_id_len <= VMAQ_BUILD_ID_MAX);
                FUZZ_CHECK((m->build_id_len == 0) == !m->build_id);
                FUZZ_CHECK(!m->elf_type || str_in(m->elf_type, elf_types, ELEMENTSOF(elf_types)));
        }
        for (size_t i = 0; i < reply->n_results; i++) {
                const ProtoResult *res = &reply->results[i];

                if (res->unknown) {
                        FUZZ_CHECK(str_in(res->unknown, unknown, ELEMENTSOF(unknown)));
                        FUZZ_CHECK(!res->has_elf_address && !res->no_elf_address);
                } else
                        FUZZ_CHECK(res->module < reply->n_modules);
                FUZZ_CHECK(!(res->has_elf_address && res->no_elf_address));
                FUZZ_CHECK(!res->no_elf_address || str_in(res->no_elf_address, no_elf, ELEMENTSOF(no_elf)));
        }
}

/* Decoded, encoded by the daemon's encoder and decoded again: the same, within the daemon's bound. */
static void fuzz_normalize_reply(struct json_object *parameters) {
        _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply reply = {}, again = {};
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        struct json_object *resent = NULL;
        char *text = NULL;
        const char *field = NULL;
        size_t size;
        int r;

        r = proto_normalize_reply_decode(parameters, NULL, 0, &reply, &field);
        if (r < 0) {
                FUZZ_CHECK(r == -ENOMEM || (r == -EBADMSG && field));
                return;
        }
        FUZZ_CHECK(r == 0);
        check_normalize_reply(&reply);

        r = proto_normalize_reply_format(&reply, 0, false, &text, &size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        size = receive_reply(text, size, &message, &resent);
        FUZZ_CHECK(size <= proto_normalize_reply_size_max(&reply));

        r = proto_normalize_reply_decode(resent, NULL, 0, &again, &field);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again.pid == reply.pid && again.start_time == reply.start_time);
        FUZZ_CHECK(again.n_modules == reply.n_modules && again.n_results == reply.n_results);
        for (size_t i = 0; i < reply.n_modules; i++)
                FUZZ_CHECK(module_eq(&reply.modules[i], &again.modules[i]));
        for (size_t i = 0; i < reply.n_results; i++)
                FUZZ_CHECK(result_eq(&reply.results[i], &again.results[i]));
}

static bool mapping_eq(const ProtoMapping *a, const ProtoMapping *b) {
        return a->start == b->start && a->end == b->end && a->offset == b->offset && a->inode == b->inode &&
               a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && streq_ptr(a->perms, b->perms) &&
               streq_ptr(a->path, b->path) && streq_ptr(a->kind, b->kind) && a->deleted == b->deleted &&
               a->build_id_len == b->build_id_len &&
               (a->build_id_len == 0 || memcmp(a->build_id, b->build_id, a->build_id_len) == 0) &&
               a->build_id_skipped == b->build_id_skipped;
}

/* The bound methods.c fills a ListMappings reply to. */
static size_t list_mappings_size_max(const ProtoMapping *mappings, size_t n) {
        size_t size = proto_list_mappings_reply_size_max();

        for (size_t i = 0; i < n; i++)
                size += proto_mapping_size_max(mappings[i].path ? strlen(mappings[i].path) : 0, false) +
                        (mappings[i].host_path ? 16 + 6 * strlen(mappings[i].host_path) : 0);
        return size;
}

static void fuzz_list_mappings_reply(struct json_object *parameters) {
        _cleanup_(proto_list_mappings_reply_done) ProtoListMappingsReply reply = {}, again = {};
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        struct json_object *resent = NULL;
        char *text = NULL;
        const char *field = NULL;
        size_t size;
        int r;

        r = proto_list_mappings_reply_decode(parameters, &reply, &field);
        if (r < 0) {
                FUZZ_CHECK(r == -ENOMEM || (r == -EBADMSG && field));
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(reply.pid >= 0);
        FUZZ_CHECK(reply.n_mappings == 0 || reply.mappings);
        for (size_t i = 0; i < reply.n_mappings; i++) {
                const ProtoMapping *m = &reply.mappings[i];

                FUZZ_CHECK(m->perms && strlen(m->perms) == 4);
                FUZZ_CHECK(m->kind);
                FUZZ_CHECK(m->build_id_len <= VMAQ_BUILD_ID_MAX);
                FUZZ_CHECK((m->build_id_len == 0) == !m->build_id);
        }

        r = proto_list_mappings_reply_format(reply.pid, reply.start_time, reply.mappings, reply.n_mappings,
                                             reply.has_next, reply.next, &text, &size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        size = receive_reply(text, size, &message, &resent);
        FUZZ_CHECK(size <= list_mappings_size_max(reply.mappings, reply.n_mappings));

        r = proto_list_mappings_reply_decode(resent, &again, &field);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again.pid == reply.pid && again.start_time == reply.start_time);
        FUZZ_CHECK(again.has_next == reply.has_next && again.next == reply.next);
        FUZZ_CHECK(again.n_mappings == reply.n_mappings);
        for (size_t i = 0; i < reply.n_mappings; i++)
                FUZZ_CHECK(mapping_eq(&reply.mappings[i], &again.mappings[i]));
}

#define STATUS_U64_FIELDS(X)                                                            \
        X(uptime_usec) X(connections) X(connections_max) X(connections_per_user_max)    \
        X(proc_cache_size) X(proc_cache_max) X(proc_cache_hits) X(proc_cache_misses)    \
        X(build_id_cache_size) X(build_id_cache_max) X(build_id_cache_hits)             \
        X(build_id_cache_misses) X(workers_used) X(workers_max) X(memory_used)          \
        X(memory_max) X(refused_connections) X(refused_user_connections)                \
        X(refused_memory) X(refused_timeouts) X(refused_idle) X(requests) X(errors)     \
        X(denied)

static bool status_eq(const ProtoStatus *a, const ProtoStatus *b) {
#define STATUS_FIELD_EQ(f) a->f == b->f &&
        return streq_ptr(a->version, b->version) && streq_ptr(a->backend, b->backend) &&
               STATUS_U64_FIELDS(STATUS_FIELD_EQ) true;
#undef STATUS_FIELD_EQ
}

static void fuzz_status(struct json_object *parameters) {
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        struct json_object *encoded = NULL, *resent = NULL;
        ProtoStatus status, again;
        const char *field = NULL;
        int r;

        r = proto_status_decode(parameters, &status, &field);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG && field);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(status.version);
        FUZZ_CHECK(streq_ptr(status.backend, "ioctl") || streq_ptr(status.backend, "text"));

        r = proto_status_encode(&status, &encoded);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        (void) resend_reply(encoded, &message, &resent);

        r = proto_status_decode(resent, &again, &field);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(status_eq(&status, &again));
}

static void fuzz_error_reply(const char *name, struct json_object *parameters) {
        ProtoErrorReply e;
        const char *field = NULL;
        int r;

        r = proto_error_reply_decode(name, parameters, &e, &field);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG && field);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(e.name == name);
        FUZZ_CHECK(memchr(e.message, '\0', sizeof(e.message)));
        if (e.error < 0) {
                /* Another service's error: its name is all there is. */
                FUZZ_CHECK(e.error_errno == -EPROTO);
                return;
        }

        FUZZ_CHECK(e.error < _PROTO_ERROR_MAX);
        FUZZ_CHECK(e.error_errno == proto_error_to_errno(e.error));
        /* What the client read, the daemon would send so, and the client read it the same. */
        check_error_reply(e.error, &e.details, e.message);
}

/*
 * The reply @msg read as libvmaq reads a Normalize reply, its results
 * left out of json-c's tree and read from the text, against @plain, the
 * parameters of the same message all in the tree: the same answer, or
 * the same failure.
 */
static void fuzz_normalize_reply_span(const char *msg, size_t size, struct json_object *plain) {
        _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply fast = {}, ref = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        struct json_object *parameters = NULL;
        const char *error = NULL, *field = NULL, *ref_field = NULL;
        _cleanup_(proto_results_done) ProtoResults read = {};
        bool continues;
        int r, k;

        r = proto_reply_parse(msg, size, &o, &read);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        r = proto_reply_split(o, &error, &parameters, &continues, &field);
        FUZZ_CHECK(r == 0 && !error);

        r = proto_normalize_reply_decode(parameters, &read, 0, &fast, &field);
        k = proto_normalize_reply_decode(plain, NULL, 0, &ref, &ref_field);
        if (r == -ENOMEM || k == -ENOMEM)
                return;
        FUZZ_CHECK(r == k);
        if (r < 0) {
                FUZZ_CHECK(streq_ptr(field, ref_field));
                return;
        }
        FUZZ_CHECK(fast.n_results == ref.n_results && fast.n_modules == ref.n_modules);
        for (size_t i = 0; i < ref.n_results; i++)
                FUZZ_CHECK(streq_ptr(fast.results[i].unknown, ref.results[i].unknown) &&
                           fast.results[i].module == ref.results[i].module &&
                           fast.results[i].offset == ref.results[i].offset);
}

/* libvmaq's call(), from the reply received on. */
static void fuzz_reply(const char *msg, size_t size) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        struct json_object *parameters = NULL;
        const char *error = NULL, *field = NULL;
        TreeCount c = {};
        int r;

        r = varlink_json_parse(msg, size, NULL, &o);
        if (r < 0) {
                FUZZ_CHECK(IN_SET(r, -EBADMSG, -ENOMEM));
                return;
        }
        FUZZ_CHECK(r == 0);
        tree_count(o, 1, &c);
        FUZZ_CHECK(c.depth <= VARLINK_DEPTH_MAX);

        r = proto_reply_split(o, &error, &parameters, NULL, &field);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG && field);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(!parameters || json_object_is_type(parameters, json_type_object));

        if (error) {
                FUZZ_CHECK(varlink_qualified_name_is_valid(error));
                fuzz_error_reply(error, parameters);
                return;
        }

        /* The client knows which method it called; any of them may get this reply. */
        fuzz_normalize_reply(parameters);
        fuzz_normalize_reply_span(msg, size, parameters);
        fuzz_list_mappings_reply(parameters);
        fuzz_status(parameters);
}

/* --- a target's path in the daemon's replies ---------------------------------- */

static bool is_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s >= 0x80)
                        return false;
        return true;
}

/*
 * The path the client reads for @path sent: the same, except that bytes
 * that are no UTF-8 become U+FFFD (three bytes for one).
 */
static void check_path_received(const char *path, const char *got) {
        FUZZ_CHECK(got);
        if (is_ascii(path))
                FUZZ_CHECK(strcmp(path, got) == 0);
        else
                FUZZ_CHECK(strlen(got) <= 3 * strlen(path));
}

static void fuzz_path(const char *msg, size_t size) {
        _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply got_normalize = {};
        _cleanup_(proto_list_mappings_reply_done) ProtoListMappingsReply got_list = {};
        _cleanup_(json_object_putp) struct json_object *message = NULL, *message2 = NULL;
        struct json_object *resent = NULL;
        char *text = NULL;
        _cleanup_free_ char *path = NULL;
        ProtoModule module;
        ProtoResult result = { .offset = 0x1010 };
        ProtoMapping mapping;
        ProtoNormalizeReply reply;
        const char *field = NULL;
        size_t sent;
        int r;

        path = strndup(msg, size);
        if (!path)
                return;

        module = (ProtoModule) {
                .path = path,
                .map_files = "/proc/1/map_files/55d0c8a2f000-55d0c8b0e000",
                .deleted = true,
                .inode = 1311001,
        };
        reply = (ProtoNormalizeReply) {
                .pid = 1,
                .start_time = 4365,
                .n_modules = 1,
                .modules = &module,
                .n_results = 1,
                .results = &result,
        };
        r = proto_normalize_reply_format(&reply, 0, false, &text, &sent);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        sent = receive_reply(text, sent, &message, &resent);
        FUZZ_CHECK(sent <= proto_normalize_reply_size_max(&reply));
        r = proto_normalize_reply_decode(resent, NULL, 0, &got_normalize, &field);
        FUZZ_CHECK(r == 0 && got_normalize.n_modules == 1);
        check_path_received(path, got_normalize.modules[0].path);

        /* methods.c sends no path for a mapping without a name. */
        mapping = (ProtoMapping) {
                .start = 0x55d0c8a2f000,
                .end = 0x55d0c8b0e000,
                .perms = "r-xp",
                .path = path[0] ? path : NULL,
                .kind = "file",
        };
        r = proto_list_mappings_reply_format(1, 4365, &mapping, 1, false, 0, &text, &sent);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        sent = receive_reply(text, sent, &message2, &resent);
        FUZZ_CHECK(sent <= list_mappings_size_max(&mapping, 1));
        r = proto_list_mappings_reply_decode(resent, &got_list, &field);
        FUZZ_CHECK(r == 0 && got_list.n_mappings == 1);
        if (mapping.path)
                check_path_received(path, got_list.mappings[0].path);
        else
                FUZZ_CHECK(!got_list.mappings[0].path);
}

/* --- the input ---------------------------------------------------------------- */

static void fuzz_message(const char *data, size_t size, bool first) {
        _cleanup_free_ char *msg = NULL;

        /* In a buffer of its own size: a read past the message is a bug, not the next message. */
        msg = malloc(MAX(size, (size_t) 1));
        FUZZ_CHECK(msg);
        memcpy(msg, data, size);

        fuzz_request(msg, size);
        fuzz_reply(msg, size);
        /* Four encodings and parses: once per input is enough to explore paths, and keeps inputs fast. */
        if (first)
                fuzz_path(msg, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *) data, *end = p + size;

        while (p < end) {
                const char *nul = memchr(p, '\0', (size_t) (end - p));
                size_t len = (size_t) ((nul ?: end) - p);

                /* connection.c refuses a longer message and closes the connection. */
                if (len > DEFAULT_MAX_MESSAGE_SIZE)
                        break;

                fuzz_message(p, len, p == (const char *) data);
                if (!nul)
                        break;
                p = nul + 1;
        }

        return 0;
}
