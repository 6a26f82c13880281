/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The io.vmaq interface on the wire: method names, the error table, and
 * each method's parameters and replies as json-c objects.
 */

#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-writer.h"
#include "macro.h"
#include "parse-util.h"
#include "string-table.h"
#include "varlink.h"
#include "vmaq-proto.h"

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

/* The standard definition every Varlink service implements. */
static const char varlink_service_description[] =
        "# The interface every Varlink service provides: what the service is, and\n"
        "# the definitions of the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# The service's vendor, product, version and URL, and the names of the\n"
        "# interfaces it implements.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# The definition of one of the interfaces the service implements.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The service does not implement this interface.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The interface has no method of this name.\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the method, but the service does not implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# A parameter is missing, of the wrong type, out of range, or unknown.\n"
        "error InvalidParameter (parameter: string)\n";

/* --- methods ------------------------------------------------------------ */

static const char *const proto_method_table[_PROTO_METHOD_MAX] = {
        [PROTO_METHOD_GET_INFO]                  = VARLINK_SERVICE_INTERFACE ".GetInfo",
        [PROTO_METHOD_GET_INTERFACE_DESCRIPTION] = VARLINK_SERVICE_INTERFACE ".GetInterfaceDescription",
        [PROTO_METHOD_NORMALIZE]                 = VMAQ_INTERFACE ".Normalize",
        [PROTO_METHOD_LIST_MAPPINGS]             = VMAQ_INTERFACE ".ListMappings",
        [PROTO_METHOD_GET_STATUS]                = VMAQ_INTERFACE ".GetStatus",
        [PROTO_METHOD_TRACK]                     = VMAQ_INTERFACE ".Track",
};

DEFINE_STRING_TABLE_LOOKUP(proto_method, ProtoMethod);

static bool interface_is_ours(const char *name, size_t len) {
        return (len == strlen(VMAQ_INTERFACE) && memcmp(name, VMAQ_INTERFACE, len) == 0) ||
               (len == strlen(VARLINK_SERVICE_INTERFACE) && memcmp(name, VARLINK_SERVICE_INTERFACE, len) == 0);
}

int proto_method_lookup(const char *name, ProtoMethod *ret) {
        ProtoMethod m;

        if (!varlink_qualified_name_is_valid(name))
                return -EINVAL;

        m = proto_method_from_string(name);
        if (m < 0)
                /* Valid, so there is a dot: what precedes the last one is the interface. */
                return interface_is_ours(name, (size_t) (strrchr(name, '.') - name)) ? -EOPNOTSUPP : -EADDRNOTAVAIL;

        *ret = m;
        return 0;
}

/* --- errors ------------------------------------------------------------- */

/* The parameters an error carries, sent in this order. */
enum {
        FIELD_INTERFACE          = 1 << 0,
        FIELD_METHOD             = 1 << 1,
        FIELD_PARAMETER          = 1 << 2,
        FIELD_PARAMETER_OPTIONAL = 1 << 3,      /* sent only when not NULL */
        FIELD_REASON             = 1 << 4,
        FIELD_PID                = 1 << 5,
        FIELD_START_TIME         = 1 << 6,
        FIELD_LIMIT              = 1 << 7,
        FIELD_ERRNO              = 1 << 8,
};

/*
 * The one table: Varlink name, errnos (the first is the one handed back by
 * proto_error_to_errno()), parameters. Keep proto/io.vmaq.varlink and
 * docs/PROTOCOL.md in step.
 */
static const struct {
        const char *name;
        int errnos[2];
        unsigned fields;
} proto_error_table[_PROTO_ERROR_MAX] = {
        [PROTO_ERROR_INTERFACE_NOT_FOUND] = {
                VARLINK_SERVICE_INTERFACE ".InterfaceNotFound", { EADDRNOTAVAIL }, FIELD_INTERFACE },
        [PROTO_ERROR_METHOD_NOT_FOUND] = {
                VARLINK_SERVICE_INTERFACE ".MethodNotFound", { EOPNOTSUPP }, FIELD_METHOD },
        [PROTO_ERROR_METHOD_NOT_IMPLEMENTED] = {
                VARLINK_SERVICE_INTERFACE ".MethodNotImplemented", { ENOSYS }, FIELD_METHOD },
        [PROTO_ERROR_INVALID_PARAMETER] = {
                VARLINK_SERVICE_INTERFACE ".InvalidParameter", { EINVAL }, FIELD_PARAMETER },
        [PROTO_ERROR_INVALID_MESSAGE] = {
                VMAQ_INTERFACE ".InvalidMessage", { EBADMSG }, FIELD_REASON },
        [PROTO_ERROR_REQUEST_TOO_LARGE] = {
                VMAQ_INTERFACE ".RequestTooLarge", { E2BIG, EMSGSIZE }, FIELD_PARAMETER_OPTIONAL | FIELD_LIMIT },
        [PROTO_ERROR_REPLY_TOO_LARGE] = {
                VMAQ_INTERFACE ".ReplyTooLarge", { ENOBUFS }, FIELD_LIMIT },
        [PROTO_ERROR_NO_SUCH_PROCESS] = {
                VMAQ_INTERFACE ".NoSuchProcess", { ESRCH }, FIELD_PID },
        [PROTO_ERROR_NO_ADDRESS_SPACE] = {
                VMAQ_INTERFACE ".NoAddressSpace", { ENXIO }, FIELD_PID },
        [PROTO_ERROR_PERMISSION_DENIED] = {
                VMAQ_INTERFACE ".PermissionDenied", { EACCES, EPERM }, FIELD_PID },
        [PROTO_ERROR_PROCESS_CHANGED] = {
                VMAQ_INTERFACE ".ProcessChanged", { ESTALE }, FIELD_PID | FIELD_START_TIME },
        [PROTO_ERROR_FOREIGN_PID_NAMESPACE] = {
                VMAQ_INTERFACE ".ForeignPidNamespace", { EXDEV }, 0 },
        [PROTO_ERROR_INTERNAL] = {
                VMAQ_INTERFACE ".InternalError", { EIO }, FIELD_ERRNO },
        [PROTO_ERROR_TOO_MANY_CONNECTIONS] = {
                VMAQ_INTERFACE ".TooManyConnections", { EUSERS }, FIELD_REASON | FIELD_LIMIT },
        [PROTO_ERROR_MEMORY_LIMIT] = {
                VMAQ_INTERFACE ".MemoryLimitReached", { EBUSY }, FIELD_LIMIT },
        [PROTO_ERROR_TIMED_OUT] = {
                VMAQ_INTERFACE ".TimedOut", { ETIME }, FIELD_LIMIT },
        [PROTO_ERROR_BAD_FILE_DESCRIPTOR] = {
                VMAQ_INTERFACE ".BadFileDescriptor", { EBADF }, FIELD_PARAMETER_OPTIONAL | FIELD_REASON },
};

static const char *const proto_target_table[_PROTO_TARGET_MAX] = {
        [PROTO_TARGET_PID]     = "pid",
        [PROTO_TARGET_PIDFD]   = "pidfd",
        [PROTO_TARGET_MAPS_FD] = "maps_fd",
};

const char *proto_target_to_string(ProtoTarget t) {
        if ((int) t < 0 || t >= _PROTO_TARGET_MAX)
                return NULL;
        return proto_target_table[t];
}

const char *proto_error_to_string(ProtoError e) {
        if ((int) e < 0 || e >= _PROTO_ERROR_MAX)
                return NULL;
        return proto_error_table[e].name;
}

ProtoError proto_error_from_string(const char *name) {
        if (!name)
                return _PROTO_ERROR_INVALID;
        for (ProtoError e = 0; e < _PROTO_ERROR_MAX; e++)
                if (strcmp(name, proto_error_table[e].name) == 0)
                        return e;
        return _PROTO_ERROR_INVALID;
}

ProtoError proto_error_from_errno(int error) {
        if (error < 0)
                error = -error;
        if (error == 0)
                return PROTO_ERROR_INTERNAL;

        for (ProtoError e = 0; e < _PROTO_ERROR_MAX; e++)
                for (size_t i = 0; i < ELEMENTSOF(proto_error_table[e].errnos); i++)
                        if (proto_error_table[e].errnos[i] == error)
                                return e;

        return PROTO_ERROR_INTERNAL;
}

int proto_error_to_errno(ProtoError e) {
        if ((int) e < 0 || e >= _PROTO_ERROR_MAX)
                return -EIO;
        return -proto_error_table[e].errnos[0];
}

/* --- json-c helpers ----------------------------------------------------- */

/* Add @v under the literal @key: json-c then neither copies the key nor looks for an old one. */
static int add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add_ex(o, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_string(struct json_object *o, const char *key, const char *s) {
        if (!s)
                return -EINVAL;
        return add(o, key, json_object_new_string(s));
}

static int add_u64(struct json_object *o, const char *key, uint64_t u) {
        return add(o, key, json_object_new_uint64(u));
}

static int add_int(struct json_object *o, const char *key, int i) {
        return add(o, key, json_object_new_int(i));
}

static int add_bool(struct json_object *o, const char *key, bool b) {
        return add(o, key, json_object_new_boolean(b));
}

static int append(struct json_object *array, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(array, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static bool string_in(const char *s, const char *const *set, size_t n) {
        if (!s)
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(s, set[i]) == 0)
                        return true;
        return false;
}

/* --- decoding ----------------------------------------------------------- */

/*
 * A JSON integer in 0..UINT64_MAX. json-c keeps integers as int64 or, above
 * INT64_MAX, as uint64, so a negative one reads negative as int64 and a big
 * one reads INT64_MAX. Beyond 64 bits varlink_json_parse() made a double.
 */
static int json_get_u64(struct json_object *v, uint64_t *ret) {
        if (!json_object_is_type(v, json_type_int))
                return -EINVAL;
        if (json_object_get_int64(v) < 0)
                return -EINVAL;
        *ret = json_object_get_uint64(v);
        return 0;
}

/* A string without a NUL inside (json-c would hand out a shorter C string). */
static int json_get_string(struct json_object *v, const char **ret) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s))
                return -EINVAL;
        *ret = s;
        return 0;
}

static int field_pid(struct json_object *v, void *p) {
        uint64_t u;

        if (json_get_u64(v, &u) < 0 || u == 0 || u > INT32_MAX)
                return -EINVAL;
        *(pid_t *) p = (pid_t) u;
        return 0;
}

/* A pid in a reply: 0 when the process has none the client could use. */
static int field_reply_pid(struct json_object *v, void *p) {
        uint64_t u;

        if (json_get_u64(v, &u) < 0 || u > INT32_MAX)
                return -EINVAL;
        *(pid_t *) p = (pid_t) u;
        return 0;
}

/* An index of the fds sent with a call; -1 until one is given. */
static int field_fd_index(struct json_object *v, void *p) {
        uint64_t u;

        if (json_get_u64(v, &u) < 0 || u > INT32_MAX)
                return -EINVAL;
        *(int64_t *) p = (int64_t) u;
        return 0;
}

static int field_bool(struct json_object *v, void *p) {
        if (!json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *(bool *) p = json_object_get_boolean(v);
        return 0;
}

static int field_u64(struct json_object *v, void *p) {
        return json_get_u64(v, p);
}

static int field_string(struct json_object *v, void *p) {
        return json_get_string(v, p);
}

typedef struct AddressList {
        uint64_t *addresses;
        size_t n;
        size_t max;
        VarlinkPacked *packed;          /* NULL: none */
} AddressList;

static void address_list_done(AddressList *l) {
        free(l->addresses);
        l->addresses = NULL;
        l->n = 0;
}

static int parse_address_element(struct json_object *v, uint64_t *ret) {
        const char *s;

        if (json_object_is_type(v, json_type_string)) {
                if (json_get_string(v, &s) < 0)
                        return -EINVAL;
                return parse_address(s, ret) < 0 ? -EINVAL : 0;
        }
        return json_get_u64(v, ret);
}

static int field_address(struct json_object *v, void *p) {
        return parse_address_element(v, p);
}

static int field_addresses(struct json_object *v, void *p) {
        AddressList *l = p;
        _cleanup_free_ uint64_t *a = NULL;
        size_t n;
        int r;

        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        n = json_object_array_length(v);
        if (n == 0 && l->packed && l->packed->valid) {
                /* Taken out of the message by the parser, checked already: take them over. */
                n = l->packed->n;
                if (n == 0)
                        return -EINVAL;
                if (n > l->max)
                        return -E2BIG;
                free(l->addresses);
                l->addresses = TAKE_PTR(l->packed->values);
                l->n = n;
                l->packed->n = 0;
                l->packed->valid = false;
                return 0;
        }
        if (n == 0)
                return -EINVAL;
        if (n > l->max)
                return -E2BIG;

        a = calloc(n, sizeof(uint64_t));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = parse_address_element(json_object_array_get_idx(v, i), &a[i]);
                if (r < 0)
                        return r;
        }

        free(l->addresses);
        l->addresses = TAKE_PTR(a);
        l->n = n;
        return 0;
}

static bool has_parameter(struct json_object *parameters, const char *name) {
        return parameters && json_object_object_get_ex(parameters, name, NULL);
}

typedef struct Field {
        const char *name;
        int (*parse)(struct json_object *v, void *p);
        size_t offset;                  /* of what parse() fills, in the target */
        bool required;
} Field;

/*
 * Fill @target from @parameters (NULL: none) as @fields say. Parameters
 * are looked at in the order the message has them; the first bad one is
 * named in *ret_parameter, then the first missing required one.
 */
static int dispatch_fields(struct json_object *parameters, const Field *fields, size_t n_fields, void *target,
                           const char **ret_parameter) {
        if (parameters && !json_object_is_type(parameters, json_type_object)) {
                *ret_parameter = "parameters";
                return -EINVAL;
        }

        if (parameters) {
                json_object_object_foreach(parameters, key, value) {
                        const Field *f = NULL;
                        int r;

                        for (size_t i = 0; i < n_fields && !f; i++)
                                if (strcmp(key, fields[i].name) == 0)
                                        f = &fields[i];
                        if (!f) {
                                *ret_parameter = key;
                                return -EINVAL;
                        }

                        r = f->parse(value, (uint8_t *) target + f->offset);
                        if (r < 0) {
                                *ret_parameter = f->name;
                                return r;
                        }
                }
        }

        for (size_t i = 0; i < n_fields; i++)
                if (fields[i].required && !has_parameter(parameters, fields[i].name)) {
                        *ret_parameter = fields[i].name;
                        return -EINVAL;
                }

        return 0;
}

int proto_empty_request_decode(struct json_object *parameters, const char **ret_parameter) {
        return dispatch_fields(parameters, NULL, 0, NULL, ret_parameter);
}

/* See proto_request_limits(): the values and containers of a request besides its addresses, with room. */
#define REQUEST_VALUES_OTHER 16
#define REQUEST_CONTAINERS_MAX 16

void proto_request_limits(size_t max_addresses, VarlinkLimits *ret) {
        size_t values;

        assert(max_addresses > 0);      /* 0 would mean no limit */
        assert(ret);

        if (__builtin_add_overflow(max_addresses, (size_t) REQUEST_VALUES_OTHER, &values))
                values = SIZE_MAX;

        *ret = (VarlinkLimits) {
                .max_values = values,
                .max_containers = REQUEST_CONTAINERS_MAX,
                .max_array_elements = max_addresses,
        };
}

/* The "pid", "pidfd" and "maps_fd" parameters as given: 0 and -1 for none. */
typedef struct TargetFields {
        pid_t pid;
        int64_t pidfd;
        int64_t maps_fd;
} TargetFields;

#define TARGET_FIELDS_INIT { .pidfd = -1, .maps_fd = -1 }

/* Exactly one of them, or *ret_parameter names what is missing or too much. */
static int target_fields_resolve(const TargetFields *f, bool pin, ProtoTarget *ret_target, pid_t *ret_pid,
                                 unsigned *ret_fd_index, const char **ret_parameter) {
        const char *second = NULL;
        unsigned n = 0;

        *ret_target = PROTO_TARGET_PID;
        if (f->pid > 0)
                n++;
        if (f->pidfd >= 0 && n++ == 0)
                *ret_target = PROTO_TARGET_PIDFD;
        else if (f->pidfd >= 0)
                second = "pidfd";
        if (f->maps_fd >= 0 && n++ == 0)
                *ret_target = PROTO_TARGET_MAPS_FD;
        else if (f->maps_fd >= 0)
                second = second ?: "maps_fd";

        if (n == 0) {
                *ret_parameter = "pid";
                return -EINVAL;
        }
        if (n > 1) {
                *ret_parameter = second;
                return -EINVAL;
        }
        /* A maps file is bound to one address space: there is no other process to tell apart. */
        if (pin && *ret_target == PROTO_TARGET_MAPS_FD) {
                *ret_parameter = "start_time";
                return -EINVAL;
        }

        *ret_pid = f->pid;
        *ret_fd_index = (unsigned) (*ret_target == PROTO_TARGET_PIDFD ? f->pidfd :
                                    *ret_target == PROTO_TARGET_MAPS_FD ? f->maps_fd : 0);
        return 0;
}

typedef struct NormalizeTarget {
        ProtoNormalizeRequest req;
        TargetFields target;
        AddressList addresses;
} NormalizeTarget;

int proto_call_parse(const char *data, size_t size, const VarlinkLimits *limits, VarlinkCall *ret) {
        return varlink_call_parse_packed(data, size, limits, "addresses", ret);
}

int proto_normalize_request_decode(struct json_object *parameters, VarlinkPacked *packed, size_t max_addresses,
                                   ProtoNormalizeRequest *ret, const char **ret_parameter) {
        static const Field fields[] = {
                { "pid",        field_pid,       offsetof(NormalizeTarget, target.pid),     false },
                { "pidfd",      field_fd_index,  offsetof(NormalizeTarget, target.pidfd),   false },
                { "maps_fd",    field_fd_index,  offsetof(NormalizeTarget, target.maps_fd), false },
                /* Required, but told after the process: see below. */
                { "addresses",  field_addresses, offsetof(NormalizeTarget, addresses),      false },
                { "build_ids",  field_bool,      offsetof(NormalizeTarget, req.build_ids),  false },
                { "map_files",  field_bool,      offsetof(NormalizeTarget, req.map_files),  false },
                { "htlhash",    field_bool,      offsetof(NormalizeTarget, req.htlhash),    false },
                { "start_time", field_u64,       offsetof(NormalizeTarget, req.start_time), false },
        };
        NormalizeTarget t = {
                .req.build_ids = true,
                .target = TARGET_FIELDS_INIT,
                .addresses.max = max_addresses,
                .addresses.packed = packed,
        };
        int r;

        r = dispatch_fields(parameters, fields, ELEMENTSOF(fields), &t, ret_parameter);
        t.req.pin = has_parameter(parameters, "start_time");
        if (r >= 0)
                r = target_fields_resolve(&t.target, t.req.pin, &t.req.target, &t.req.pid, &t.req.fd_index,
                                          ret_parameter);
        if (r >= 0 && !has_parameter(parameters, "addresses")) {
                *ret_parameter = "addresses";
                r = -EINVAL;
        }
        if (r < 0) {
                address_list_done(&t.addresses);
                return r;
        }

        t.req.addresses = TAKE_PTR(t.addresses.addresses);
        t.req.n_addresses = t.addresses.n;
        *ret = t.req;
        return 0;
}

void proto_normalize_request_done(ProtoNormalizeRequest *req) {
        if (!req)
                return;
        free(req->addresses);
        req->addresses = NULL;
        req->n_addresses = 0;
}

int proto_list_mappings_request_decode(struct json_object *parameters, ProtoListMappingsRequest *ret,
                                       const char **ret_parameter) {
        typedef struct ListTarget {
                ProtoListMappingsRequest req;
                TargetFields target;
        } ListTarget;
        static const Field fields[] = {
                { "pid",        field_pid,      offsetof(ListTarget, target.pid),     false },
                { "pidfd",      field_fd_index, offsetof(ListTarget, target.pidfd),   false },
                { "maps_fd",    field_fd_index, offsetof(ListTarget, target.maps_fd), false },
                { "exec_only",  field_bool,     offsetof(ListTarget, req.exec_only),  false },
                { "build_ids",  field_bool,     offsetof(ListTarget, req.build_ids),  false },
                { "start_time", field_u64,      offsetof(ListTarget, req.start_time), false },
                { "start",      field_address,  offsetof(ListTarget, req.start),      false },
        };
        ListTarget t = {
                .req.build_ids = true,
                .target = TARGET_FIELDS_INIT,
        };
        int r;

        r = dispatch_fields(parameters, fields, ELEMENTSOF(fields), &t, ret_parameter);
        if (r < 0)
                return r;

        t.req.pin = has_parameter(parameters, "start_time");
        r = target_fields_resolve(&t.target, t.req.pin, &t.req.target, &t.req.pid, &t.req.fd_index, ret_parameter);
        if (r < 0)
                return r;
        *ret = t.req;
        return 0;
}

int proto_track_request_decode(struct json_object *parameters, ProtoTrackRequest *ret, const char **ret_parameter) {
        static const Field fields[] = {
                { "pid",        field_pid, offsetof(ProtoTrackRequest, pid),        true  },
                { "start_time", field_u64, offsetof(ProtoTrackRequest, start_time), false },
        };
        ProtoTrackRequest req = {};
        int r;

        r = dispatch_fields(parameters, fields, ELEMENTSOF(fields), &req, ret_parameter);
        if (r < 0)
                return r;

        req.pin = has_parameter(parameters, "start_time");
        *ret = req;
        return 0;
}

/* --- encoding ----------------------------------------------------------- */

int proto_error_format(ProtoError e, const ProtoErrorDetails *details, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        const ProtoErrorDetails empty = {};
        unsigned f;
        int r = 0;

        if ((int) e < 0 || e >= _PROTO_ERROR_MAX)
                return -EINVAL;
        if (!details)
                details = &empty;
        f = proto_error_table[e].fields;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        /* A required string the caller did not know is sent empty: the reply must still match the IDL. */
        if (r >= 0 && (f & FIELD_INTERFACE))
                r = add_string(o, "interface", details->interface ?: "");
        if (r >= 0 && (f & FIELD_METHOD))
                r = add_string(o, "method", details->method ?: "");
        if (r >= 0 && (f & FIELD_PARAMETER))
                r = add_string(o, "parameter", details->parameter ?: "");
        if (r >= 0 && (f & FIELD_PARAMETER_OPTIONAL) && details->parameter)
                r = add_string(o, "parameter", details->parameter);
        if (r >= 0 && (f & FIELD_REASON))
                r = add_string(o, "reason", details->reason ?: "");
        if (r >= 0 && (f & FIELD_PID))
                r = add_int(o, "pid", (int) details->pid);
        if (r >= 0 && (f & FIELD_START_TIME))
                r = add_u64(o, "start_time", details->start_time);
        if (r >= 0 && (f & FIELD_LIMIT))
                r = add_u64(o, "limit", details->limit);
        if (r >= 0 && (f & FIELD_ERRNO))
                r = add_int(o, "errno", details->error);
        if (r < 0)
                return r;

        return varlink_error_format(proto_error_table[e].name, TAKE_PTR(o), ret, ret_size);
}

int proto_info_encode(const ProtoInfo *info, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_(json_object_putp) struct json_object *interfaces = NULL;
        int r;

        o = json_object_new_object();
        interfaces = json_object_new_array_ext(2);
        if (!o || !interfaces)
                return -ENOMEM;

        r = add_string(o, "vendor", info->vendor);
        if (r >= 0)
                r = add_string(o, "product", info->product);
        if (r >= 0)
                r = add_string(o, "version", info->version);
        if (r >= 0)
                r = add_string(o, "url", info->url);
        if (r >= 0)
                r = append(interfaces, json_object_new_string(VARLINK_SERVICE_INTERFACE));
        if (r >= 0)
                r = append(interfaces, json_object_new_string(VMAQ_INTERFACE));
        if (r >= 0)
                r = add(o, "interfaces", TAKE_PTR(interfaces));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int proto_interface_description_encode(struct json_object *parameters, struct json_object **ret,
                                       const char **ret_parameter) {
        static const Field fields[] = {
                { "interface", field_string, 0, true },
        };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        const char *interface = NULL, *description;
        int r;

        r = dispatch_fields(parameters, fields, ELEMENTSOF(fields), &interface, ret_parameter);
        if (r < 0)
                return r;

        if (strcmp(interface, VMAQ_INTERFACE) == 0)
                description = proto_vmaq_interface_description;
        else if (strcmp(interface, VARLINK_SERVICE_INTERFACE) == 0)
                description = varlink_service_description;
        else
                return -EADDRNOTAVAIL;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = add_string(o, "description", description);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

/* "key": value members of the object being written. */
static void write_u64(JsonWriter *w, const char *key, uint64_t u) {
        json_writer_key(w, key);
        json_writer_u64(w, u);
}

static void write_bool(JsonWriter *w, const char *key, bool b) {
        json_writer_key(w, key);
        json_writer_bool(w, b);
}

static void write_string(JsonWriter *w, const char *key, const char *str) {
        json_writer_key(w, key);
        json_writer_string(w, str);
}

int proto_normalize_request_format(const ProtoNormalizeRequest *req, bool more, char **ret, size_t *ret_size) {
        size_t hint;
        JsonWriter w;

        if ((req->n_addresses > 0 && !req->addresses) || !proto_target_to_string(req->target) ||
            req->fd_index > INT32_MAX)
                return -EINVAL;

        /* 20 digits and a comma per address, and the rest. */
        if (__builtin_mul_overflow(req->n_addresses, (size_t) 21, &hint) ||
            __builtin_add_overflow(hint, (size_t) 256, &hint))
                return -ENOMEM;
        json_writer_init(&w, hint);
        json_writer_object_open(&w);
        write_string(&w, "method", proto_method_to_string(PROTO_METHOD_NORMALIZE));
        json_writer_key(&w, "parameters");
        json_writer_object_open(&w);
        json_writer_key(&w, proto_target_to_string(req->target));
        json_writer_i64(&w, req->target == PROTO_TARGET_PID ? req->pid : (int64_t) req->fd_index);
        json_writer_key(&w, "addresses");
        json_writer_array_open(&w);
        for (size_t i = 0; i < req->n_addresses; i++) {
                char *p = json_writer_value_begin(&w, 20);

                if (p)
                        json_writer_value_end(&w, json_format_u64(p, req->addresses[i]));
        }
        json_writer_array_close(&w);
        write_bool(&w, "build_ids", req->build_ids);
        write_bool(&w, "map_files", req->map_files);
        if (req->htlhash)
                write_bool(&w, "htlhash", true);
        if (req->pin)
                write_u64(&w, "start_time", req->start_time);
        json_writer_object_close(&w);
        if (more)
                write_bool(&w, "more", true);
        json_writer_object_close(&w);
        return json_writer_finish(&w, ret, ret_size);
}

/* "build_id": lowercase hex, or null when there is none. */
static void write_build_id(JsonWriter *w, const uint8_t *id, size_t len) {
        json_writer_key(w, "build_id");
        if (!id || len == 0)
                json_writer_null(w);
        else
                json_writer_hex(w, id, len);
}

/* The values of Module.elf_type. */
static const char *const elf_types[] = { "exec", "dyn", "other" };

static int module_check(const ProtoModule *m) {
        if (!m->path || (m->build_id && m->build_id_len > VMAQ_BUILD_ID_MAX))
                return -EINVAL;
        if (m->elf_type && !string_in(m->elf_type, elf_types, ELEMENTSOF(elf_types)))
                return -EINVAL;
        return 0;
}

static void module_write(JsonWriter *w, const ProtoModule *m) {
        json_writer_object_open(w);
        write_string(w, "path", m->path);
        write_build_id(w, m->build_id, m->build_id_len);
        if (m->build_id_skipped)
                write_bool(w, "build_id_skipped", true);
        write_bool(w, "deleted", m->deleted);
        write_bool(w, "vdso", m->vdso);
        if (m->map_files)
                write_string(w, "map_files", m->map_files);
        if (m->host_path)
                write_string(w, "host_path", m->host_path);
        write_u64(w, "dev_major", m->dev_major);
        write_u64(w, "dev_minor", m->dev_minor);
        write_u64(w, "inode", m->inode);
        if (m->elf_type)
                write_string(w, "elf_type", m->elf_type);
        if (m->go_build_id)
                write_string(w, "go_build_id", m->go_build_id);
        if (m->has_htlhash) {
                json_writer_key(w, "htlhash");
                json_writer_hex(w, m->htlhash, sizeof(m->htlhash));
        }
        if (m->has_package) {
                const ProtoPackage *pk = &m->package;
                const struct {
                        const char *key, *value;
                } f[] = {
                        { "type", pk->type },
                        { "name", pk->name },
                        { "version", pk->version },
                        { "architecture", pk->architecture },
                        { "os", pk->os },
                        { "osVersion", pk->os_version },
                        { "debugInfoUrl", pk->debug_info_url },
                };

                json_writer_key(w, "package");
                json_writer_object_open(w);
                for (size_t i = 0; i < ELEMENTSOF(f); i++)
                        if (f[i].value)
                                write_string(w, f[i].key, f[i].value);
                json_writer_object_close(w);
        }
        json_writer_object_close(w);
}

/* The values of Result.unknown in proto/io.vmaq.varlink. */
static const char *const unknown_kinds[] = { "unmapped", "anonymous", "special", "exited" };

/* The values of Result.no_elf_address. */
static const char *const no_elf_address_kinds[] = { "not_elf", "outside_load_segments", "unreadable" };

static int result_check(const ProtoResult *res, size_t n_modules) {
        if (res->unknown ? !string_in(res->unknown, unknown_kinds, ELEMENTSOF(unknown_kinds))
                         : res->module >= n_modules)
                return -EINVAL;
        if ((res->has_elf_address || res->no_elf_address) && res->unknown)
                return -EINVAL;
        if (res->no_elf_address &&
            (res->has_elf_address || !string_in(res->no_elf_address, no_elf_address_kinds,
                                                ELEMENTSOF(no_elf_address_kinds))))
                return -EINVAL;
        return 0;
}

/*
 * {"module":4294967295,"offset":18446744073709551615,"elf_address":18446744073709551615},
 * {"module":…,"offset":…,"no_elf_address":"outside_load_segments"} or
 * {"unknown":"anonymous"}, and a comma.
 */
#define RESULT_SIZE_MAX 128U

/* The form results_read() takes: there are many results, and they are written and read a lot. */
static void result_write(JsonWriter *w, const ProtoResult *res) {
        static const char module[] = "{\"module\":", offset[] = ",\"offset\":", unknown[] = "{\"unknown\":\"",
                elf_address[] = ",\"elf_address\":", no_elf_address[] = ",\"no_elf_address\":\"";
        char *p = json_writer_value_begin(w, RESULT_SIZE_MAX);

        if (!p)
                return;
        if (res->unknown) {
                /* One of unknown_kinds: nothing to escape. */
                p = mempcpy(p, unknown, sizeof(unknown) - 1);
                p = mempcpy(p, res->unknown, strlen(res->unknown));
                p = mempcpy(p, "\"}", 2);
        } else {
                p = mempcpy(p, module, sizeof(module) - 1);
                p = json_format_u64(p, res->module);
                p = mempcpy(p, offset, sizeof(offset) - 1);
                p = json_format_u64(p, res->offset);
                if (res->has_elf_address) {
                        p = mempcpy(p, elf_address, sizeof(elf_address) - 1);
                        p = json_format_u64(p, res->elf_address);
                } else if (res->no_elf_address) {
                        /* One of no_elf_address_kinds: nothing to escape. */
                        p = mempcpy(p, no_elf_address, sizeof(no_elf_address) - 1);
                        p = mempcpy(p, res->no_elf_address, strlen(res->no_elf_address));
                        *p++ = '"';
                }
                *p++ = '}';
        }
        json_writer_value_end(w, p);
}

/* {"parameters":{ ... the caller writes the parameters' members ... */
static void reply_open(JsonWriter *w) {
        json_writer_object_open(w);
        json_writer_key(w, "parameters");
        json_writer_object_open(w);
}

/* ... }} or },"continues":true}, and the NUL. */
static int reply_close(JsonWriter *w, bool continues, char **ret, size_t *ret_size) {
        json_writer_object_close(w);
        if (continues)
                write_bool(w, "continues", true);
        json_writer_object_close(w);
        return json_writer_finish(w, ret, ret_size);
}

int proto_normalize_reply_format(const ProtoNormalizeReply *reply, size_t n_modules_before, bool continues,
                                 char **ret, size_t *ret_size) {
        JsonWriter w;
        size_t n_modules;
        int r;

        if ((reply->n_modules > 0 && !reply->modules) || (reply->n_results > 0 && !reply->results) ||
            __builtin_add_overflow(reply->n_modules, n_modules_before, &n_modules) || n_modules > UINT32_MAX)
                return -EINVAL;
        for (size_t i = 0; i < reply->n_modules; i++) {
                r = module_check(&reply->modules[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < reply->n_results; i++) {
                r = result_check(&reply->results[i], n_modules);
                if (r < 0)
                        return r;
        }

        json_writer_init(&w, proto_normalize_reply_size_max(reply));
        reply_open(&w);
        json_writer_key(&w, "pid");
        json_writer_i64(&w, reply->pid);
        write_u64(&w, "start_time", reply->start_time);
        if (reply->exited)
                write_bool(&w, "exited", true);
        json_writer_key(&w, "modules");
        json_writer_array_open(&w);
        for (size_t i = 0; i < reply->n_modules; i++)
                module_write(&w, &reply->modules[i]);
        json_writer_array_close(&w);
        json_writer_key(&w, "results");
        json_writer_array_open(&w);
        for (size_t i = 0; i < reply->n_results; i++)
                result_write(&w, &reply->results[i]);
        json_writer_array_close(&w);
        return reply_close(&w, continues, ret, ret_size);
}

/* The values of Mapping.kind in proto/io.vmaq.varlink. */
static const char *const mapping_kinds[] = { "file", "anonymous", "special", "vdso" };

static int mapping_check(const ProtoMapping *m) {
        if (!m->perms || !string_in(m->kind, mapping_kinds, ELEMENTSOF(mapping_kinds)) ||
            (m->build_id && m->build_id_len > VMAQ_BUILD_ID_MAX) ||
            (m->elf_type && !string_in(m->elf_type, elf_types, ELEMENTSOF(elf_types))))
                return -EINVAL;
        return 0;
}

static void mapping_write(JsonWriter *w, const ProtoMapping *m) {
        json_writer_object_open(w);
        write_u64(w, "start", m->start);
        write_u64(w, "end", m->end);
        write_string(w, "perms", m->perms);
        write_u64(w, "offset", m->offset);
        write_u64(w, "dev_major", m->dev_major);
        write_u64(w, "dev_minor", m->dev_minor);
        write_u64(w, "inode", m->inode);
        if (m->path)
                write_string(w, "path", m->path);
        if (m->host_path)
                write_string(w, "host_path", m->host_path);
        write_string(w, "kind", m->kind);
        write_bool(w, "deleted", m->deleted);
        write_build_id(w, m->build_id, m->build_id_len);
        if (m->build_id_skipped)
                write_bool(w, "build_id_skipped", true);
        if (m->elf_type)
                write_string(w, "elf_type", m->elf_type);
        json_writer_object_close(w);
}

/*
 * The keys, punctuation, booleans and 20-digit numbers of one module or
 * mapping, its build ID in hex, with room to spare; strings come on top,
 * each byte at most a six-byte escape.
 */
#define ENTRY_SIZE_MAX (512U + 2U * VMAQ_BUILD_ID_MAX)
/* The reply around them: pid, start_time, next, the keys of the arrays. */
#define REPLY_SIZE_MAX 256U

/* "/proc/", a pid and "/root" before the path. */
#define HOST_PATH_PREFIX_MAX 32U

size_t proto_mapping_size_max(size_t path_len, bool host_path) {
        return ENTRY_SIZE_MAX + 6 * path_len + (host_path ? 16 + 6 * (HOST_PATH_PREFIX_MAX + path_len) : 0);
}

/* A string member: its key, quotes and comma, and each byte at most a six-byte escape. */
static size_t member_size_max(const char *s) {
        return s ? 32 + 6 * strlen(s) : 0;
}

size_t proto_module_size_max(const ProtoModule *m) {
        size_t size = ENTRY_SIZE_MAX + 6 * strlen(m->path) + (m->map_files ? 6 * strlen(m->map_files) : 0) +
                      member_size_max(m->host_path) + member_size_max(m->elf_type) +
                      member_size_max(m->go_build_id) + (m->has_htlhash ? 32 + 2 * PROTO_HTLHASH_SIZE : 0);

        if (m->has_package)
                size += 16 + member_size_max(m->package.type) + member_size_max(m->package.name) +
                        member_size_max(m->package.version) + member_size_max(m->package.architecture) +
                        member_size_max(m->package.os) + member_size_max(m->package.os_version) +
                        member_size_max(m->package.debug_info_url);
        return size;
}

size_t proto_result_size_max(void) {
        return RESULT_SIZE_MAX;
}

size_t proto_normalize_reply_size_max(const ProtoNormalizeReply *reply) {
        size_t size = REPLY_SIZE_MAX + reply->n_results * RESULT_SIZE_MAX;

        for (size_t i = 0; i < reply->n_modules; i++)
                size += proto_module_size_max(&reply->modules[i]);
        return size;
}

size_t proto_list_mappings_reply_size_max(void) {
        return REPLY_SIZE_MAX;
}

int proto_list_mappings_reply_format(pid_t pid, uint64_t start_time, const ProtoMapping *mappings, size_t n,
                                     bool has_next, uint64_t next, char **ret, size_t *ret_size) {
        size_t size = REPLY_SIZE_MAX;
        JsonWriter w;
        int r;

        if (n > 0 && !mappings)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                r = mapping_check(&mappings[i]);
                if (r < 0)
                        return r;
                size += proto_mapping_size_max(mappings[i].path ? strlen(mappings[i].path) : 0, false) +
                        (mappings[i].host_path ? 16 + 6 * strlen(mappings[i].host_path) : 0);
        }

        json_writer_init(&w, size);
        reply_open(&w);
        json_writer_key(&w, "pid");
        json_writer_i64(&w, pid);
        write_u64(&w, "start_time", start_time);
        json_writer_key(&w, "mappings");
        json_writer_array_open(&w);
        for (size_t i = 0; i < n; i++)
                mapping_write(&w, &mappings[i]);
        json_writer_array_close(&w);
        if (has_next)
                write_u64(&w, "next", next);
        return reply_close(&w, false, ret, ret_size);
}

/* An object of integers: names[i] is values[i]. */
static int u64_object_encode(const char *const *names, const uint64_t *values, size_t n, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = add_u64(o, names[i], values[i]);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(o);
        return 0;
}

/* The members of the GetStatus objects, in the order of their uint64_t in ProtoStatus. */
static const char *const cache_status_names[] = { "size", "max", "hits", "misses" };
static const char *const usage_names[] = { "used", "max" };
static const char *const refused_names[] = { "connections", "user_connections", "memory", "timeouts", "idle" };
static const char *const snapshot_names[] = { "held", "exited", "memory_used", "memory_max" };
static const char *const limit_names[] = { "max_addresses", "max_message_size", "max_reply_size" };

static_assert(offsetof(ProtoStatus, proc_cache_misses) - offsetof(ProtoStatus, proc_cache_size) ==
              3 * sizeof(uint64_t), "ProtoStatus layout");
static_assert(offsetof(ProtoStatus, build_id_cache_misses) - offsetof(ProtoStatus, build_id_cache_size) ==
              3 * sizeof(uint64_t), "ProtoStatus layout");
static_assert(offsetof(ProtoStatus, refused_idle) - offsetof(ProtoStatus, refused_connections) ==
              4 * sizeof(uint64_t), "ProtoStatus layout");
static_assert(offsetof(ProtoStatus, snapshot_memory_max) - offsetof(ProtoStatus, snapshots_held) ==
              3 * sizeof(uint64_t), "ProtoStatus layout");
static_assert(offsetof(ProtoStatus, max_reply_size) - offsetof(ProtoStatus, max_addresses) ==
              2 * sizeof(uint64_t), "ProtoStatus layout");

int proto_status_encode(const ProtoStatus *status, struct json_object **ret) {
        /* The values of GetStatus.backend in proto/io.vmaq.varlink. */
        static const char *const backends[] = { "ioctl", "text" };
        const struct {
                const char *name;
                const char *const *names;
                const uint64_t *values;
                size_t n;
        } objects[] = {
                { "proc_cache",     cache_status_names, &status->proc_cache_size,     ELEMENTSOF(cache_status_names) },
                { "build_id_cache", cache_status_names, &status->build_id_cache_size, ELEMENTSOF(cache_status_names) },
                { "workers",        usage_names,        &status->workers_used,        ELEMENTSOF(usage_names) },
                { "memory",         usage_names,        &status->memory_used,         ELEMENTSOF(usage_names) },
                { "refused",        refused_names,      &status->refused_connections, ELEMENTSOF(refused_names) },
        };
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        if (!string_in(status->backend, backends, ELEMENTSOF(backends)))
                return -EINVAL;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        r = add_string(o, "version", status->version);
        if (r >= 0)
                r = add_string(o, "backend", status->backend);
        if (r >= 0)
                r = add_u64(o, "uptime_usec", status->uptime_usec);
        if (r >= 0)
                r = add_u64(o, "connections", status->connections);
        if (r >= 0)
                r = add_u64(o, "connections_max", status->connections_max);
        if (r >= 0)
                r = add_u64(o, "connections_per_user_max", status->connections_per_user_max);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(objects); i++) {
                struct json_object *v = NULL;

                r = u64_object_encode(objects[i].names, objects[i].values, objects[i].n, &v);
                if (r >= 0)
                        r = add(o, objects[i].name, v);
        }
        if (r >= 0)
                r = add_u64(o, "requests", status->requests);
        if (r >= 0)
                r = add_u64(o, "errors", status->errors);
        if (r >= 0)
                r = add_u64(o, "denied", status->denied);
        if (r >= 0) {
                struct json_object *v = NULL;

                r = u64_object_encode(snapshot_names, &status->snapshots_held, ELEMENTSOF(snapshot_names), &v);
                if (r >= 0)
                        r = add(o, "snapshots", v);
        }
        if (r >= 0) {
                struct json_object *v = NULL;

                r = u64_object_encode(limit_names, &status->max_addresses, ELEMENTSOF(limit_names), &v);
                if (r >= 0)
                        r = add(o, "limits", v);
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int proto_track_reply_encode(pid_t pid, uint64_t start_time, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = add_int(o, "pid", (int) pid);
        if (r >= 0)
                r = add_u64(o, "start_time", start_time);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

/* --- the client's side -------------------------------------------------- */

int proto_call_format(ProtoMethod m, struct json_object *parameters, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) struct json_object *p = parameters;
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        const char *name = proto_method_to_string(m), *text;
        size_t len;
        char *s;
        int r;

        if (!name)
                return -EINVAL;
        if (p && !json_object_is_type(p, json_type_object))
                return -EINVAL;
        if (!p) {
                p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
        }

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = add_string(o, "method", name);
        if (r >= 0)
                r = add(o, "parameters", TAKE_PTR(p));
        if (r < 0)
                return r;

        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text)
                return -ENOMEM;
        s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, text, len + 1);

        *ret = s;
        *ret_size = len + 1;
        return 0;
}

int proto_list_mappings_request_encode(const ProtoListMappingsRequest *req, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        if (!proto_target_to_string(req->target) || req->fd_index > INT32_MAX)
                return -EINVAL;
        r = add_int(o, proto_target_to_string(req->target),
                    req->target == PROTO_TARGET_PID ? (int) req->pid : (int) req->fd_index);
        if (r >= 0)
                r = add_bool(o, "exec_only", req->exec_only);
        if (r >= 0)
                r = add_bool(o, "build_ids", req->build_ids);
        if (r >= 0 && req->pin)
                r = add_u64(o, "start_time", req->start_time);
        if (r >= 0 && req->start > 0)
                r = add_u64(o, "start", req->start);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int proto_track_request_encode(const ProtoTrackRequest *req, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        r = add_int(o, "pid", (int) req->pid);
        if (r >= 0 && req->pin)
                r = add_u64(o, "start_time", req->start_time);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

static void set_field(const char **ret_field, const char *name) {
        if (ret_field)
                *ret_field = name;
}

/*
 * Fill @target from the reply object @o (NULL: {}) as @fields say, in the
 * order of @fields. Unlike dispatch_fields(), keys not in @fields are
 * ignored: a later daemon may add some.
 */
static int dispatch_reply_fields(struct json_object *o, const Field *fields, size_t n_fields, void *target,
                                 const char **ret_field) {
        if (o && !json_object_is_type(o, json_type_object)) {
                set_field(ret_field, "parameters");
                return -EBADMSG;
        }

        for (size_t i = 0; i < n_fields; i++) {
                struct json_object *v = NULL;

                if (!o || !json_object_object_get_ex(o, fields[i].name, &v)) {
                        if (fields[i].required) {
                                set_field(ret_field, fields[i].name);
                                return -EBADMSG;
                        }
                        continue;
                }
                if (fields[i].parse(v, (uint8_t *) target + fields[i].offset) < 0) {
                        set_field(ret_field, fields[i].name);
                        return -EBADMSG;
                }
        }

        return 0;
}

static int field_u32(struct json_object *v, void *p) {
        uint64_t u;

        if (json_get_u64(v, &u) < 0 || u > UINT32_MAX)
                return -EINVAL;
        *(uint32_t *) p = (uint32_t) u;
        return 0;
}

static int field_int(struct json_object *v, void *p) {
        uint64_t u;

        if (json_get_u64(v, &u) < 0 || u > INT32_MAX)
                return -EINVAL;
        *(int *) p = (int) u;
        return 0;
}

/* The bytes go to storage the caller provides; len 0 for null. */
typedef struct BuildIdTarget {
        uint8_t *bytes;                 /* VMAQ_BUILD_ID_MAX of them */
        size_t len;
} BuildIdTarget;

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -EINVAL;         /* uppercase too: the protocol sends lowercase */
}

static int field_build_id(struct json_object *v, void *p) {
        BuildIdTarget *t = p;
        const char *s;
        size_t n;

        if (json_object_is_type(v, json_type_null)) {
                t->len = 0;
                return 0;
        }
        if (json_get_string(v, &s) < 0)
                return -EINVAL;
        n = strlen(s);
        if (n == 0 || n % 2 != 0 || n > 2 * VMAQ_BUILD_ID_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 2) {
                int hi = unhex(s[i]), lo = unhex(s[i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                t->bytes[i / 2] = (uint8_t) (hi << 4 | lo);
        }
        t->len = n / 2;
        return 0;
}

static int field_array(struct json_object *v, void *p) {
        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        *(struct json_object **) p = v;
        return 0;
}

static int field_object(struct json_object *v, void *p) {
        if (!json_object_is_type(v, json_type_object))
                return -EINVAL;
        *(struct json_object **) p = v;
        return 0;
}

/* A string of @set, returned as the constant of @set (outlives the JSON). */
static const char *string_pick(const char *s, const char *const *set, size_t n) {
        for (size_t i = 0; s && i < n; i++)
                if (strcmp(s, set[i]) == 0)
                        return set[i];
        return NULL;
}

int proto_reply_split(struct json_object *message, const char **ret_error, struct json_object **ret_parameters,
                      bool *ret_continues, const char **ret_field) {
        struct json_object *parameters = NULL;
        const char *error = NULL;
        bool continues = false;

        if (!json_object_is_type(message, json_type_object)) {
                set_field(ret_field, "message");
                return -EBADMSG;
        }

        json_object_object_foreach(message, key, value) {
                if (strcmp(key, "parameters") == 0) {
                        if (!json_object_is_type(value, json_type_object)) {
                                set_field(ret_field, "parameters");
                                return -EBADMSG;
                        }
                        parameters = value;
                } else if (strcmp(key, "error") == 0) {
                        if (json_get_string(value, &error) < 0 || !varlink_qualified_name_is_valid(error)) {
                                set_field(ret_field, "error");
                                return -EBADMSG;
                        }
                } else if (strcmp(key, "continues") == 0) {
                        /* A stream of replies only for whoever asked for one. */
                        if (!json_object_is_type(value, json_type_boolean) ||
                            (json_object_get_boolean(value) && !ret_continues)) {
                                set_field(ret_field, "continues");
                                return -EBADMSG;
                        }
                        continues = json_object_get_boolean(value);
                } else {
                        set_field(ret_field, "message");
                        return -EBADMSG;
                }
        }

        /* An error ends a stream. */
        if (error && continues) {
                set_field(ret_field, "continues");
                return -EBADMSG;
        }

        *ret_error = error;
        *ret_parameters = parameters;
        if (ret_continues)
                *ret_continues = continues;
        return 0;
}

static void error_reply_describe(ProtoErrorReply *e) {
        const ProtoErrorDetails *d = &e->details;
        char what[sizeof(e->message)];

        switch (e->error) {
        case PROTO_ERROR_INTERFACE_NOT_FOUND:
                snprintf(what, sizeof(what), "interface not found: '%s'", d->interface);
                break;
        case PROTO_ERROR_METHOD_NOT_FOUND:
                snprintf(what, sizeof(what), "method not found: '%s'", d->method);
                break;
        case PROTO_ERROR_METHOD_NOT_IMPLEMENTED:
                snprintf(what, sizeof(what), "method not implemented: '%s'", d->method);
                break;
        case PROTO_ERROR_INVALID_PARAMETER:
                snprintf(what, sizeof(what), "invalid parameter: '%s'", d->parameter);
                break;
        case PROTO_ERROR_INVALID_MESSAGE:
                snprintf(what, sizeof(what), "invalid message: %s", d->reason);
                break;
        case PROTO_ERROR_REQUEST_TOO_LARGE:
                if (d->parameter)
                        snprintf(what, sizeof(what), "request too large: more '%s' than the limit of %llu",
                                 d->parameter, (unsigned long long) d->limit);
                else
                        snprintf(what, sizeof(what), "request too large: over the limit of %llu bytes",
                                 (unsigned long long) d->limit);
                break;
        case PROTO_ERROR_REPLY_TOO_LARGE:
                snprintf(what, sizeof(what), "reply too large: over the limit of %llu bytes, ask for less",
                         (unsigned long long) d->limit);
                break;
        case PROTO_ERROR_NO_SUCH_PROCESS:
                snprintf(what, sizeof(what), "no such process: pid %d", (int) d->pid);
                break;
        case PROTO_ERROR_NO_ADDRESS_SPACE:
                snprintf(what, sizeof(what), "process has no address space: pid %d", (int) d->pid);
                break;
        case PROTO_ERROR_PERMISSION_DENIED:
                snprintf(what, sizeof(what), "permission denied: pid %d", (int) d->pid);
                break;
        case PROTO_ERROR_PROCESS_CHANGED:
                snprintf(what, sizeof(what), "process changed: pid %d now has start time %llu", (int) d->pid,
                         (unsigned long long) d->start_time);
                break;
        case PROTO_ERROR_FOREIGN_PID_NAMESPACE:
                snprintf(what, sizeof(what), "client in a pid namespace the daemon cannot tell");
                break;
        case PROTO_ERROR_INTERNAL:
                snprintf(what, sizeof(what), "internal error of the daemon: errno %d", d->error);
                break;
        case PROTO_ERROR_TOO_MANY_CONNECTIONS:
                snprintf(what, sizeof(what), "too many connections: %llu %s", (unsigned long long) d->limit,
                         d->reason);
                break;
        case PROTO_ERROR_MEMORY_LIMIT:
                snprintf(what, sizeof(what), "the daemon holds its limit of %llu bytes for clients, try again later",
                         (unsigned long long) d->limit);
                break;
        case PROTO_ERROR_TIMED_OUT:
                snprintf(what, sizeof(what), "no answer within %llu.%03llu s, the daemon gave up",
                         (unsigned long long) (d->limit / 1000000U),
                         (unsigned long long) (d->limit % 1000000U / 1000U));
                break;
        case PROTO_ERROR_BAD_FILE_DESCRIPTOR:
                if (d->parameter)
                        snprintf(what, sizeof(what), "bad file descriptor for '%s': %s", d->parameter, d->reason);
                else
                        snprintf(what, sizeof(what), "bad file descriptors: %s", d->reason);
                break;
        default:
                snprintf(what, sizeof(what), "unknown error");
                break;
        }

        /* Cut what it takes to keep the name readable. */
        snprintf(e->message, sizeof(e->message), "%.*s (%s)",
                 (int) MIN(strlen(what), sizeof(e->message) / 2), what, e->name);
}

int proto_error_reply_decode(const char *name, struct json_object *parameters, ProtoErrorReply *ret,
                             const char **ret_field) {
        ProtoErrorReply e = {
                .name = name,
                .error = proto_error_from_string(name),
        };
        Field fields[8];
        size_t n = 0;
        unsigned f;
        int r;

        if (!name || !varlink_qualified_name_is_valid(name)) {
                set_field(ret_field, "error");
                return -EBADMSG;
        }

        if (e.error < 0) {
                /* Not ours to interpret: only its name is told. */
                e.error_errno = -EPROTO;
                error_reply_describe(&e);
                *ret = e;
                return 0;
        }

        f = proto_error_table[e.error].fields;
        if (f & FIELD_INTERFACE)
                fields[n++] = (Field) { "interface", field_string, offsetof(ProtoErrorDetails, interface), true };
        if (f & FIELD_METHOD)
                fields[n++] = (Field) { "method", field_string, offsetof(ProtoErrorDetails, method), true };
        if (f & (FIELD_PARAMETER | FIELD_PARAMETER_OPTIONAL))
                fields[n++] = (Field) { "parameter", field_string, offsetof(ProtoErrorDetails, parameter),
                                        f & FIELD_PARAMETER };
        if (f & FIELD_REASON)
                fields[n++] = (Field) { "reason", field_string, offsetof(ProtoErrorDetails, reason), true };
        if (f & FIELD_PID)
                fields[n++] = (Field) { "pid", field_reply_pid, offsetof(ProtoErrorDetails, pid), true };
        if (f & FIELD_START_TIME)
                fields[n++] = (Field) { "start_time", field_u64, offsetof(ProtoErrorDetails, start_time), true };
        if (f & FIELD_LIMIT)
                fields[n++] = (Field) { "limit", field_u64, offsetof(ProtoErrorDetails, limit), true };
        if (f & FIELD_ERRNO)
                fields[n++] = (Field) { "errno", field_int, offsetof(ProtoErrorDetails, error), true };

        r = dispatch_reply_fields(parameters, fields, n, &e.details, ret_field);
        if (r < 0)
                return r;

        e.error_errno = proto_error_to_errno(e.error);
        error_reply_describe(&e);
        *ret = e;
        return 0;
}

/* "htlhash": 16 bytes in lowercase hex, into a ProtoModule. */
static int field_htlhash(struct json_object *v, void *p) {
        ProtoModule *m = p;
        const char *s;

        if (json_get_string(v, &s) < 0 || strlen(s) != 2 * PROTO_HTLHASH_SIZE)
                return -EINVAL;
        for (size_t i = 0; i < PROTO_HTLHASH_SIZE; i++) {
                int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                m->htlhash[i] = (uint8_t) (hi << 4 | lo);
        }
        m->has_htlhash = true;
        return 0;
}

/* "package": an object of strings, into a ProtoModule; members not ours, or not strings, are ignored. */
static int field_package(struct json_object *v, void *p) {
        ProtoModule *m = p;
        struct {
                const char *key;
                const char **value;
        } f[] = {
                { "type", &m->package.type },
                { "name", &m->package.name },
                { "version", &m->package.version },
                { "architecture", &m->package.architecture },
                { "os", &m->package.os },
                { "osVersion", &m->package.os_version },
                { "debugInfoUrl", &m->package.debug_info_url },
        };

        if (!json_object_is_type(v, json_type_object))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(f); i++) {
                struct json_object *s;

                if (json_object_object_get_ex(v, f[i].key, &s) && json_object_is_type(s, json_type_string))
                        *f[i].value = json_object_get_string(s);
        }
        m->has_package = true;
        return 0;
}

typedef struct ModuleTarget {
        ProtoModule m;
        BuildIdTarget id;
} ModuleTarget;

static int module_decode(struct json_object *o, ProtoModule *ret, uint8_t *id_storage, const char **ret_field) {
        static const Field fields[] = {
                { "path",      field_string,   offsetof(ModuleTarget, m.path),      true  },
                { "build_id",  field_build_id, offsetof(ModuleTarget, id),          true  },
                { "build_id_skipped", field_bool, offsetof(ModuleTarget, m.build_id_skipped), false },
                { "deleted",   field_bool,     offsetof(ModuleTarget, m.deleted),   true  },
                { "vdso",      field_bool,     offsetof(ModuleTarget, m.vdso),      true  },
                { "map_files", field_string,   offsetof(ModuleTarget, m.map_files), false },
                { "host_path", field_string,   offsetof(ModuleTarget, m.host_path), false },
                { "dev_major", field_u32,      offsetof(ModuleTarget, m.dev_major), true  },
                { "dev_minor", field_u32,      offsetof(ModuleTarget, m.dev_minor), true  },
                { "inode",     field_u64,      offsetof(ModuleTarget, m.inode),     true  },
                { "elf_type",  field_string,   offsetof(ModuleTarget, m.elf_type),  false },
                { "go_build_id", field_string, offsetof(ModuleTarget, m.go_build_id), false },
                { "htlhash",   field_htlhash,  offsetof(ModuleTarget, m),           false },
                { "package",   field_package,  offsetof(ModuleTarget, m),           false },
        };
        ModuleTarget t = { .id.bytes = id_storage };
        int r;

        if (!json_object_is_type(o, json_type_object)) {
                set_field(ret_field, "modules");
                return -EBADMSG;
        }
        r = dispatch_reply_fields(o, fields, ELEMENTSOF(fields), &t, ret_field);
        if (r < 0)
                return r;
        /* A later daemon may know more types: not one of ours is none. */
        t.m.elf_type = t.m.elf_type ? string_pick(t.m.elf_type, elf_types, ELEMENTSOF(elf_types)) : NULL;

        t.m.build_id = t.id.len > 0 ? id_storage : NULL;
        t.m.build_id_len = t.id.len;
        *ret = t.m;
        return 0;
}

typedef struct ResultTarget {
        uint32_t module;
        uint64_t offset;
        const char *unknown;
        uint64_t elf_address;
        const char *no_elf_address;
} ResultTarget;

static int result_decode(struct json_object *o, size_t n_modules, ProtoResult *ret, const char **ret_field) {
        static const Field fields[] = {
                { "module",  field_u32,    offsetof(ResultTarget, module),  false },
                { "offset",  field_u64,    offsetof(ResultTarget, offset),  false },
                { "unknown", field_string, offsetof(ResultTarget, unknown), false },
                { "elf_address", field_u64, offsetof(ResultTarget, elf_address), false },
                { "no_elf_address", field_string, offsetof(ResultTarget, no_elf_address), false },
        };
        ResultTarget t = {};
        bool has_module, has_offset, has_elf_address;
        int r;

        if (!json_object_is_type(o, json_type_object)) {
                set_field(ret_field, "results");
                return -EBADMSG;
        }
        r = dispatch_reply_fields(o, fields, ELEMENTSOF(fields), &t, ret_field);
        if (r < 0)
                return r;

        has_module = json_object_object_get_ex(o, "module", NULL);
        has_offset = json_object_object_get_ex(o, "offset", NULL);
        has_elf_address = json_object_object_get_ex(o, "elf_address", NULL);
        if (t.unknown) {
                /* One or the other: a result with both would be ambiguous. */
                if (has_module || has_offset || has_elf_address || t.no_elf_address) {
                        set_field(ret_field, "unknown");
                        return -EBADMSG;
                }
                *ret = (ProtoResult) {
                        .unknown = string_pick(t.unknown, unknown_kinds, ELEMENTSOF(unknown_kinds)),
                };
                if (!ret->unknown) {
                        set_field(ret_field, "unknown");
                        return -EBADMSG;
                }
                return 0;
        }

        if (!has_module || t.module >= n_modules) {
                set_field(ret_field, "module");
                return -EBADMSG;
        }
        if (!has_offset) {
                set_field(ret_field, "offset");
                return -EBADMSG;
        }
        *ret = (ProtoResult) {
                .module = t.module,
                .offset = t.offset,
                .has_elf_address = has_elf_address,
                .elf_address = t.elf_address,
        };
        if (t.no_elf_address) {
                ret->no_elf_address = string_pick(t.no_elf_address, no_elf_address_kinds,
                                                  ELEMENTSOF(no_elf_address_kinds));
                if (!ret->no_elf_address || has_elf_address) {
                        set_field(ret_field, "no_elf_address");
                        return -EBADMSG;
                }
        }
        return 0;
}

/* An array of @n structs of @size bytes, followed by n build IDs; NULL when n is 0. */
static int alloc_with_build_ids(size_t n, size_t size, void **ret) {
        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        if (size > SIZE_MAX - VMAQ_BUILD_ID_MAX)
                return -ENOMEM;
        *ret = calloc(n, size + VMAQ_BUILD_ID_MAX);
        return *ret ? 0 : -ENOMEM;
}

/* Whether *p (up to @end) starts with the @len bytes of @lit; if so, skip them. */
static bool skip_bytes(const char **p, const char *end, const char *lit, size_t len) {
        if ((size_t) (end - *p) < len || memcmp(*p, lit, len) != 0)
                return false;
        *p += len;
        return true;
}

#define skip_literal(p, end, lit) skip_bytes(p, end, "" lit, sizeof(lit) - 1)

/* A JSON integer in 0..UINT64_MAX at *p, if it is one and nothing else: no fraction, no exponent, no leading zero. */
static bool skip_u64(const char **p, const char *end, uint64_t *ret) {
        const char *q = *p;
        uint64_t v = 0;

        /* 19 digits cannot overflow; 20 are parsed again, checked. */
        while (q < end && *q >= '0' && *q <= '9' && q - *p < 19)
                v = v * 10 + (uint64_t) (*q++ - '0');
        if (q < end && *q >= '0' && *q <= '9') {
                while (q < end && *q >= '0' && *q <= '9')
                        q++;
                if (parse_u64_n(*p, (size_t) (q - *p), 10, &v) < 0)
                        return false;
        }
        /* JSON has no leading zeros. */
        if (q == *p || (**p == '0' && q - *p > 1) || (q < end && IN_SET(*q, '.', 'e', 'E')))
                return false;
        *p = q;
        *ret = v;
        return true;
}

/* One of the @n strings @kinds at *p, up to its closing '"', which is skipped too. */
static bool skip_kind(const char **p, const char *end, const char *const *kinds, size_t n, const char **ret) {
        const char *q = memchr(*p, '"', (size_t) (end - *p));
        char kind[32];

        if (!q || (size_t) (q - *p) >= sizeof(kind))
                return false;
        memcpy(kind, *p, (size_t) (q - *p));
        kind[q - *p] = '\0';
        *ret = string_pick(kind, kinds, n);
        if (!*ret)
                return false;
        *p = q + 1;
        return true;
}

/*
 * VarlinkSpanReader for a Normalize reply's results, in the form the
 * daemon writes them: {"module":N,"offset":N} and {"unknown":"kind"},
 * without spaces, read straight into a ProtoResults. Anything else, valid
 * JSON or not, is -EAGAIN: json-c then builds the array and the decoder
 * names what is wrong, if anything. Module indexes are checked by the
 * decoder, which knows the modules.
 */
static int results_read(void *userdata, const char *text, size_t size, size_t *ret_len) {
        ProtoResults *out = userdata;
        _cleanup_free_ ProtoResult *results = NULL;
        const char *p = text, *end = text + size;
        size_t n = 0, max = 0;

        /* Each result has its '{': no more results than those of the rest of the message. */
        for (const char *q = text; (q = memchr(q, '{', (size_t) (end - q))); q++)
                max++;
        if (max > 0) {
                results = calloc(max, sizeof(ProtoResult));
                if (!results)
                        return -ENOMEM;
        }

        if (!skip_literal(&p, end, "["))
                return -EAGAIN;
        if (!skip_literal(&p, end, "]"))
                for (;;) {
                        ProtoResult *res;
                        uint64_t module;

                        if (n == max)
                                return -EAGAIN;
                        res = &results[n++];
                        if (skip_literal(&p, end, "{\"module\":")) {
                                if (!skip_u64(&p, end, &module) || module > UINT32_MAX ||
                                    !skip_literal(&p, end, ",\"offset\":") || !skip_u64(&p, end, &res->offset))
                                        return -EAGAIN;
                                res->module = (uint32_t) module;
                                if (skip_literal(&p, end, ",\"elf_address\":")) {
                                        if (!skip_u64(&p, end, &res->elf_address))
                                                return -EAGAIN;
                                        res->has_elf_address = true;
                                } else if (skip_literal(&p, end, ",\"no_elf_address\":\"")) {
                                        if (!skip_kind(&p, end, no_elf_address_kinds, ELEMENTSOF(no_elf_address_kinds),
                                                       &res->no_elf_address))
                                                return -EAGAIN;
                                }
                        } else if (skip_literal(&p, end, "{\"unknown\":\"")) {
                                if (!skip_kind(&p, end, unknown_kinds, ELEMENTSOF(unknown_kinds), &res->unknown))
                                        return -EAGAIN;
                        } else
                                return -EAGAIN;
                        if (!skip_literal(&p, end, "}"))
                                return -EAGAIN;
                        if (skip_literal(&p, end, "]"))
                                break;
                        if (!skip_literal(&p, end, ","))
                                return -EAGAIN;
                }

        free(out->results);
        out->results = TAKE_PTR(results);
        out->n = n;
        *ret_len = (size_t) (p - text);
        return 0;
}

int proto_reply_parse(const char *text, size_t size, struct json_object **ret, ProtoResults *ret_results) {
        ProtoResults results = {};
        bool read = false;
        int r;

        r = varlink_json_parse_span(text, size, NULL, "results", results_read, &results, ret, &read);
        if (r < 0 || !read) {
                proto_results_done(&results);
                *ret_results = (ProtoResults) {};
                return r;
        }
        results.valid = true;
        *ret_results = results;
        return 0;
}

void proto_results_done(ProtoResults *r) {
        if (!r)
                return;
        free(r->results);
        *r = (ProtoResults) {};
}

/* The results through json-c, each checked as result_decode() does. */
static int results_decode(struct json_object *array, size_t n_modules, ProtoResult **ret, size_t *ret_n,
                          const char **ret_field) {
        _cleanup_free_ ProtoResult *results = NULL;
        size_t n = json_object_array_length(array);
        int r;

        if (n > 0) {
                results = calloc(n, sizeof(ProtoResult));
                if (!results)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = result_decode(json_object_array_get_idx(array, i), n_modules, &results[i], ret_field);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(results);
        *ret_n = n;
        return 0;
}

int proto_normalize_reply_decode(struct json_object *parameters, ProtoResults *read, size_t n_modules_before,
                                 ProtoNormalizeReply *ret, const char **ret_field) {
        static const Field fields[] = {
                { "pid",        field_reply_pid, offsetof(ProtoNormalizeReply, pid),    true },
                { "start_time", field_u64,   offsetof(ProtoNormalizeReply, start_time), true },
                { "exited",     field_bool,  offsetof(ProtoNormalizeReply, exited),     false },
        };
        struct json_object *modules_json = NULL, *results_json = NULL;
        const Field array_fields[] = {
                { "modules", field_array, 0, true },
        }, results_fields[] = {
                { "results", field_array, 0, true },
        };
        _cleanup_free_ ProtoModule *modules = NULL;
        _cleanup_free_ ProtoResult *results = NULL;
        ProtoNormalizeReply reply = {};
        uint8_t *ids;
        size_t n_modules, n_results = 0, n_known;
        int r;

        r = dispatch_reply_fields(parameters, fields, ELEMENTSOF(fields), &reply, ret_field);
        if (r < 0)
                return r;
        r = dispatch_reply_fields(parameters, array_fields, 1, &modules_json, ret_field);
        if (r < 0)
                return r;
        r = dispatch_reply_fields(parameters, results_fields, 1, &results_json, ret_field);
        if (r < 0)
                return r;

        n_modules = json_object_array_length(modules_json);
        r = alloc_with_build_ids(n_modules, sizeof(ProtoModule), (void **) &modules);
        if (r < 0)
                return r;
        /* No arithmetic on NULL, not even + 0: with no modules there is no array. */
        ids = modules ? (uint8_t *) (modules + n_modules) : NULL;
        for (size_t i = 0; i < n_modules; i++) {
                r = module_decode(json_object_array_get_idx(modules_json, i), &modules[i],
                                  ids + i * VMAQ_BUILD_ID_MAX, ret_field);
                if (r < 0)
                        return r;
        }

        /* The modules a result may name: these and those of the replies before them in a stream. */
        if (__builtin_add_overflow(n_modules, n_modules_before, &n_known)) {
                set_field(ret_field, "modules");
                return -EBADMSG;
        }

        if (read && read->valid && json_object_array_length(results_json) == 0) {
                /* Read from the text by the parser: take them, and check what it could not. */
                for (size_t i = 0; i < read->n; i++)
                        if (!read->results[i].unknown && read->results[i].module >= n_known) {
                                set_field(ret_field, "module");
                                return -EBADMSG;
                        }
                results = TAKE_PTR(read->results);
                n_results = read->n;
                *read = (ProtoResults) {};
        }
        if (!results) {
                r = results_decode(results_json, n_known, &results, &n_results, ret_field);
                if (r < 0)
                        return r;
        }

        reply.n_modules = n_modules;
        reply.modules = TAKE_PTR(modules);
        reply.n_results = n_results;
        reply.results = TAKE_PTR(results);
        *ret = reply;
        return 0;
}

void proto_normalize_reply_done(ProtoNormalizeReply *reply) {
        if (!reply)
                return;
        /* Allocated by proto_normalize_reply_decode(): const only to readers. */
        free((void *) reply->modules);
        free((void *) reply->results);
        reply->modules = NULL;
        reply->results = NULL;
        reply->n_modules = reply->n_results = 0;
}

static bool perms_is_valid(const char *p) {
        return strlen(p) == 4 && strchr("r-", p[0]) && strchr("w-", p[1]) && strchr("x-", p[2]) &&
               strchr("ps", p[3]);
}

typedef struct MappingTarget {
        ProtoMapping m;
        BuildIdTarget id;
} MappingTarget;

static int mapping_decode(struct json_object *o, ProtoMapping *ret, uint8_t *id_storage, const char **ret_field) {
        static const Field fields[] = {
                { "start",     field_u64,      offsetof(MappingTarget, m.start),     true  },
                { "end",       field_u64,      offsetof(MappingTarget, m.end),       true  },
                { "perms",     field_string,   offsetof(MappingTarget, m.perms),     true  },
                { "offset",    field_u64,      offsetof(MappingTarget, m.offset),    true  },
                { "dev_major", field_u32,      offsetof(MappingTarget, m.dev_major), true  },
                { "dev_minor", field_u32,      offsetof(MappingTarget, m.dev_minor), true  },
                { "inode",     field_u64,      offsetof(MappingTarget, m.inode),     true  },
                { "path",      field_string,   offsetof(MappingTarget, m.path),      false },
                { "host_path", field_string,   offsetof(MappingTarget, m.host_path), false },
                { "elf_type",  field_string,   offsetof(MappingTarget, m.elf_type),  false },
                { "kind",      field_string,   offsetof(MappingTarget, m.kind),      true  },
                { "deleted",   field_bool,     offsetof(MappingTarget, m.deleted),   true  },
                { "build_id",  field_build_id, offsetof(MappingTarget, id),          true  },
                { "build_id_skipped", field_bool, offsetof(MappingTarget, m.build_id_skipped), false },
        };
        MappingTarget t = { .id.bytes = id_storage };
        int r;

        if (!json_object_is_type(o, json_type_object)) {
                set_field(ret_field, "mappings");
                return -EBADMSG;
        }
        r = dispatch_reply_fields(o, fields, ELEMENTSOF(fields), &t, ret_field);
        if (r < 0)
                return r;

        if (!perms_is_valid(t.m.perms)) {
                set_field(ret_field, "perms");
                return -EBADMSG;
        }
        t.m.elf_type = t.m.elf_type ? string_pick(t.m.elf_type, elf_types, ELEMENTSOF(elf_types)) : NULL;
        t.m.kind = string_pick(t.m.kind, mapping_kinds, ELEMENTSOF(mapping_kinds));
        if (!t.m.kind) {
                set_field(ret_field, "kind");
                return -EBADMSG;
        }
        t.m.build_id = t.id.len > 0 ? id_storage : NULL;
        t.m.build_id_len = t.id.len;
        *ret = t.m;
        return 0;
}

int proto_list_mappings_reply_decode(struct json_object *parameters, ProtoListMappingsReply *ret,
                                     const char **ret_field) {
        struct json_object *array = NULL;
        const Field fields[] = {
                { "pid",        field_reply_pid, offsetof(ProtoListMappingsReply, pid),    true },
                { "start_time", field_u64,   offsetof(ProtoListMappingsReply, start_time), true },
                { "next",       field_u64,   offsetof(ProtoListMappingsReply, next),       false },
        }, array_fields[] = {
                { "mappings",   field_array, 0,                                            true },
        };
        _cleanup_free_ ProtoMapping *mappings = NULL;
        ProtoListMappingsReply reply = {};
        uint8_t *ids;
        size_t n;
        int r;

        r = dispatch_reply_fields(parameters, fields, ELEMENTSOF(fields), &reply, ret_field);
        if (r < 0)
                return r;
        r = dispatch_reply_fields(parameters, array_fields, 1, &array, ret_field);
        if (r < 0)
                return r;

        n = json_object_array_length(array);
        r = alloc_with_build_ids(n, sizeof(ProtoMapping), (void **) &mappings);
        if (r < 0)
                return r;
        ids = mappings ? (uint8_t *) (mappings + n) : NULL;
        for (size_t i = 0; i < n; i++) {
                r = mapping_decode(json_object_array_get_idx(array, i), &mappings[i], ids + i * VMAQ_BUILD_ID_MAX,
                                   ret_field);
                if (r < 0)
                        return r;
        }

        reply.has_next = json_object_object_get_ex(parameters, "next", NULL);
        reply.n_mappings = n;
        reply.mappings = TAKE_PTR(mappings);
        *ret = reply;
        return 0;
}

void proto_list_mappings_reply_done(ProtoListMappingsReply *reply) {
        if (!reply)
                return;
        free((void *) reply->mappings);
        reply->mappings = NULL;
        reply->n_mappings = 0;
}

/* An object of integers into consecutive uint64_t, named as @names; each is required. */
static int u64_object_decode(struct json_object *v, const char *const *names, size_t n, uint64_t *p) {
        struct json_object *o = NULL;

        if (field_object(v, &o) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                struct json_object *m = NULL;

                if (!json_object_object_get_ex(o, names[i], &m) || field_u64(m, p + i) < 0)
                        return -EINVAL;
        }
        return 0;
}

static int field_cache_status(struct json_object *v, void *p) {
        return u64_object_decode(v, cache_status_names, ELEMENTSOF(cache_status_names), p);
}

static int field_usage(struct json_object *v, void *p) {
        return u64_object_decode(v, usage_names, ELEMENTSOF(usage_names), p);
}

static int field_refused(struct json_object *v, void *p) {
        return u64_object_decode(v, refused_names, ELEMENTSOF(refused_names), p);
}

static int field_snapshots(struct json_object *v, void *p) {
        return u64_object_decode(v, snapshot_names, ELEMENTSOF(snapshot_names), p);
}

static int field_limits(struct json_object *v, void *p) {
        return u64_object_decode(v, limit_names, ELEMENTSOF(limit_names), p);
}

int proto_track_reply_decode(struct json_object *parameters, pid_t *ret_pid, uint64_t *ret_start_time,
                             const char **ret_field) {
        static const Field fields[] = {
                { "pid",        field_pid, offsetof(ProtoTrackRequest, pid),        true },
                { "start_time", field_u64, offsetof(ProtoTrackRequest, start_time), true },
        };
        ProtoTrackRequest t = {};
        int r;

        r = dispatch_reply_fields(parameters, fields, ELEMENTSOF(fields), &t, ret_field);
        if (r < 0)
                return r;

        *ret_pid = t.pid;
        *ret_start_time = t.start_time;
        return 0;
}

int proto_status_decode(struct json_object *parameters, ProtoStatus *ret, const char **ret_field) {
        static const char *const backends[] = { "ioctl", "text" };
        static const Field fields[] = {
                { "version",         field_string,       offsetof(ProtoStatus, version),             true },
                { "backend",         field_string,       offsetof(ProtoStatus, backend),             true },
                { "uptime_usec",     field_u64,          offsetof(ProtoStatus, uptime_usec),         true },
                { "connections",     field_u64,          offsetof(ProtoStatus, connections),         true },
                { "connections_max", field_u64,          offsetof(ProtoStatus, connections_max),     true },
                { "proc_cache",      field_cache_status, offsetof(ProtoStatus, proc_cache_size),     true },
                { "build_id_cache",  field_cache_status, offsetof(ProtoStatus, build_id_cache_size), true },
                { "requests",        field_u64,          offsetof(ProtoStatus, requests),            true },
                { "errors",          field_u64,          offsetof(ProtoStatus, errors),              true },
                { "denied",          field_u64,          offsetof(ProtoStatus, denied),              true },
                /* Newer: absent from an older daemon's reply. */
                { "connections_per_user_max", field_u64, offsetof(ProtoStatus, connections_per_user_max), false },
                { "workers",         field_usage,        offsetof(ProtoStatus, workers_used),        false },
                { "memory",          field_usage,        offsetof(ProtoStatus, memory_used),         false },
                { "refused",         field_refused,      offsetof(ProtoStatus, refused_connections), false },
                { "snapshots",       field_snapshots,    offsetof(ProtoStatus, snapshots_held),      false },
                { "limits",          field_limits,       offsetof(ProtoStatus, max_addresses),       false },
        };
        ProtoStatus s = {};
        int r;


        r = dispatch_reply_fields(parameters, fields, ELEMENTSOF(fields), &s, ret_field);
        if (r < 0)
                return r;

        s.backend = string_pick(s.backend, backends, ELEMENTSOF(backends));
        if (!s.backend) {
                set_field(ret_field, "backend");
                return -EBADMSG;
        }

        *ret = s;
        return 0;
}
