/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The io.vmaq Varlink interface: its description, its methods, its errors,
 * and the conversion of each method's parameters and replies between JSON
 * and C structs. Knows nothing of sockets or processes.
 *
 * Addresses and offsets travel as JSON integers over the full unsigned
 * 64-bit range; addresses are also accepted as strings "0x<hex>" or
 * "<decimal>" (for clients whose JSON numbers are doubles).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "varlink.h"

struct json_object;

#define VMAQ_INTERFACE "io.vmaq"
#define VARLINK_SERVICE_INTERFACE "org.varlink.service"
#define VMAQ_BUILD_ID_MAX 64

/* The text of proto/io.vmaq.varlink, embedded by the build. */
extern const char proto_vmaq_interface_description[];

typedef enum ProtoMethod {
        PROTO_METHOD_GET_INFO,                  /* org.varlink.service.GetInfo */
        PROTO_METHOD_GET_INTERFACE_DESCRIPTION, /* org.varlink.service.GetInterfaceDescription */
        PROTO_METHOD_NORMALIZE,                 /* io.vmaq.Normalize */
        PROTO_METHOD_LIST_MAPPINGS,             /* io.vmaq.ListMappings */
        PROTO_METHOD_GET_STATUS,                /* io.vmaq.GetStatus */
        PROTO_METHOD_TRACK,                     /* io.vmaq.Track */
        _PROTO_METHOD_MAX,
        _PROTO_METHOD_INVALID = -EINVAL,
} ProtoMethod;

/*
 * Look up a fully qualified method name. Returns 0 and the method;
 * -EADDRNOTAVAIL if the interface is unknown (InterfaceNotFound);
 * -EOPNOTSUPP if the interface is known but the method is not (MethodNotFound);
 * -EINVAL if @name is not of the form "interface.Method".
 */
int proto_method_lookup(const char *name, ProtoMethod *ret);
const char *proto_method_to_string(ProtoMethod m);      /* fully qualified; NULL if out of range */
ProtoMethod proto_method_from_string(const char *name); /* fully qualified; -EINVAL if unknown */

/*
 * Every error vmaqd replies with, and the one table mapping each to its
 * Varlink name and to the errno the core and libvmaq use for it.
 */
typedef enum ProtoError {
        PROTO_ERROR_INTERFACE_NOT_FOUND,        /* org.varlink.service.InterfaceNotFound (interface) */
        PROTO_ERROR_METHOD_NOT_FOUND,           /* org.varlink.service.MethodNotFound (method) */
        PROTO_ERROR_METHOD_NOT_IMPLEMENTED,     /* org.varlink.service.MethodNotImplemented (method): never sent by vmaqd */
        PROTO_ERROR_INVALID_PARAMETER,          /* org.varlink.service.InvalidParameter (parameter) */
        PROTO_ERROR_INVALID_MESSAGE,            /* io.vmaq.InvalidMessage (reason): not JSON, not a call */
        PROTO_ERROR_REQUEST_TOO_LARGE,          /* io.vmaq.RequestTooLarge (parameter, limit) */
        PROTO_ERROR_REPLY_TOO_LARGE,            /* io.vmaq.ReplyTooLarge (limit): ask for less */
        PROTO_ERROR_NO_SUCH_PROCESS,            /* io.vmaq.NoSuchProcess (pid) */
        PROTO_ERROR_NO_ADDRESS_SPACE,           /* io.vmaq.NoAddressSpace (pid) */
        PROTO_ERROR_PERMISSION_DENIED,          /* io.vmaq.PermissionDenied (pid) */
        PROTO_ERROR_PROCESS_CHANGED,            /* io.vmaq.ProcessChanged (pid, start_time: the current one) */
        PROTO_ERROR_FOREIGN_PID_NAMESPACE,      /* io.vmaq.ForeignPidNamespace (): client's pid namespace unknown */
        PROTO_ERROR_INTERNAL,                   /* io.vmaq.InternalError (errno) */
        PROTO_ERROR_TOO_MANY_CONNECTIONS,       /* io.vmaq.TooManyConnections (reason, limit) */
        PROTO_ERROR_MEMORY_LIMIT,               /* io.vmaq.MemoryLimitReached (limit): try again later */
        PROTO_ERROR_TIMED_OUT,                  /* io.vmaq.TimedOut (limit: microseconds) */
        PROTO_ERROR_BAD_FILE_DESCRIPTOR,        /* io.vmaq.BadFileDescriptor (parameter, reason) */
        _PROTO_ERROR_MAX,
        _PROTO_ERROR_INVALID = -EINVAL,
} ProtoError;

const char *proto_error_to_string(ProtoError e);        /* the Varlink error name; NULL if out of range */
ProtoError proto_error_from_string(const char *name);   /* -EINVAL if unknown */

/*
 * errno <-> error, one table: EADDRNOTAVAIL (interface not found),
 * EOPNOTSUPP (method not found), ENOSYS (method not implemented), EINVAL,
 * EBADMSG (invalid message), E2BIG/EMSGSIZE, ENOBUFS (reply too large), ESRCH, ENXIO, EACCES/EPERM,
 * ESTALE, EXDEV (foreign pid namespace); anything else is INTERNAL. To
 * errno: the first of each (EIO for INTERNAL).
 */
ProtoError proto_error_from_errno(int error);           /* accepts -E... or E...; 0 is INTERNAL */
int proto_error_to_errno(ProtoError e);                 /* returns -E...; -EIO if out of range */

/*
 * What an error reply carries; only the fields the error's table row names
 * are sent (see the list above). A string the row names but that is NULL
 * is sent as "", except RequestTooLarge's "parameter", which is then left
 * out.
 */
typedef struct ProtoErrorDetails {
        const char *interface;
        const char *method;
        const char *parameter;
        const char *reason;
        pid_t pid;
        uint64_t start_time;
        uint64_t limit;
        int error;                              /* errno, for INTERNAL */
} ProtoErrorDetails;

/*
 * Format a complete error reply message (NUL included in *ret_size), as
 * varlink_error_format(). @details may be NULL.
 * Errors: -EINVAL @e out of range; -ENOMEM.
 */
int proto_error_format(ProtoError e, const ProtoErrorDetails *details, char **ret, size_t *ret_size);

/* --- requests ----------------------------------------------------------- */

/*
 * The limits to parse a request with (varlink_call_parse()) for a daemon
 * that takes up to @max_addresses (at least 1) addresses in one Normalize
 * call: what the largest valid request needs, so that the scan refuses
 * whatever json-c would build beyond it.
 *
 * Besides its addresses, no request has more than 10 values (the call,
 * "method", "parameters", "oneway", "more", and Normalize's five
 * parameters, the addresses array among them) nor more than 3 containers
 * (the call, "parameters", "addresses"). The limits leave room for more:
 * @max_addresses + 16 values, 16 containers, and @max_addresses elements
 * in any array. A Normalize call with more addresses than that is then
 * refused by the scan (-E2BIG), before proto_normalize_request_decode()
 * could name "addresses".
 */
void proto_request_limits(size_t max_addresses, VarlinkLimits *ret);

/*
 * Parse a request as varlink_call_parse() does, with Normalize's
 * "addresses" packed (varlink_call_parse_packed()): pass ->packed to
 * proto_normalize_request_decode().
 */
int proto_call_parse(const char *data, size_t size, const VarlinkLimits *limits, VarlinkCall *ret);

/* --- org.varlink.service ------------------------------------------------ */

typedef struct ProtoInfo {
        const char *vendor;
        const char *product;
        const char *version;
        const char *url;
} ProtoInfo;

/*
 * GetInfo reply parameters; "interfaces" lists org.varlink.service and io.vmaq.
 * Errors: -EINVAL a NULL string in @info; -ENOMEM.
 */
int proto_info_encode(const ProtoInfo *info, struct json_object **ret);

/*
 * GetInterfaceDescription: decode the "interface" parameter and encode the
 * reply {"description": ...} for org.varlink.service or io.vmaq.
 * Errors: -EINVAL (*ret_parameter names the missing or mistyped "interface",
 * or an unknown parameter), -EADDRNOTAVAIL unknown interface, -ENOMEM.
 */
int proto_interface_description_encode(struct json_object *parameters, struct json_object **ret,
                                       const char **ret_parameter);

/*
 * The decoders below share these rules. @parameters is the call's
 * parameters object (NULL: none). Parameters are checked in the order the
 * message has them, so the first bad one is named, then the first missing
 * one; *ret_parameter then points to a constant or into @parameters, and
 * is valid as long as @parameters is. *ret is written only on success.
 * Integers must be JSON integers (not floats, not strings, not negative);
 * they are expected from varlink_json_parse(), which turns integers beyond
 * 64 bits into floats, as json-c alone clamps them to 2^64-1. Booleans must
 * be JSON booleans.
 */

/*
 * Which process a call is about: a pid, or a file descriptor sent along
 * with the call (SCM_RIGHTS), by its index among those: a pidfd, or an open
 * /proc/PID/maps. proto/ only carries the index.
 */
typedef enum ProtoTarget {
        PROTO_TARGET_PID,                       /* "pid" */
        PROTO_TARGET_PIDFD,                     /* "pidfd" */
        PROTO_TARGET_MAPS_FD,                   /* "maps_fd" */
        _PROTO_TARGET_MAX,
} ProtoTarget;

/* The parameter that names @t: "pid", "pidfd", "maps_fd". */
const char *proto_target_to_string(ProtoTarget t);

/* --- io.vmaq.Normalize -------------------------------------------------- */

typedef struct ProtoNormalizeRequest {
        ProtoTarget target;                     /* default PROTO_TARGET_PID */
        pid_t pid;                              /* PROTO_TARGET_PID */
        unsigned fd_index;                      /* the others: of the fds sent with the call */
        uint64_t *addresses;                    /* owned */
        size_t n_addresses;
        bool build_ids;                         /* default true */
        bool map_files;                         /* default false */
        bool htlhash;                           /* default false */
        bool pin;                               /* start_time given */
        uint64_t start_time;
} ProtoNormalizeRequest;

/*
 * Decode Normalize parameters: one of "pid" (1..INT32_MAX), "pidfd" and
 * "maps_fd" (indexes of fds, 0..INT32_MAX), "addresses" (required array of
 * integers or address strings, 1..@max_addresses entries), "build_ids"
 * (bool), "map_files" (bool), "htlhash" (bool), "start_time" (integer; not with "maps_fd",
 * whose fd is bound to one address space already). With none of the three,
 * *ret_parameter is "pid"; with two, the second.
 * Unknown parameters are refused. With @packed (NULL: none) valid, an
 * empty "addresses" array stands for its values, which are taken.
 *
 * Errors: -EINVAL  *ret_parameter names the missing, mistyped or out of
 *                  range parameter ("addresses" also for an empty array or
 *                  a bad element)
 *         -E2BIG   more than @max_addresses addresses (*ret_parameter "addresses";
 *                  told before any bad element)
 *         -ENOMEM
 */
int proto_normalize_request_decode(struct json_object *parameters, VarlinkPacked *packed, size_t max_addresses,
                                   ProtoNormalizeRequest *ret, const char **ret_parameter);
void proto_normalize_request_done(ProtoNormalizeRequest *req);
/*
 * The client's side: the whole call message, NUL-terminated as on the
 * wire (*ret_size counts the NUL), with "build_ids" and "map_files"
 * always, "start_time" when @req->pin, and "more": true with @more.
 * Errors: -EINVAL, -ENOMEM.
 */
int proto_normalize_request_format(const ProtoNormalizeRequest *req, bool more, char **ret, size_t *ret_size);

/* The fields of a file's package note (systemd's .note.package), each NULL when absent. */
typedef struct ProtoPackage {
        const char *type;                       /* "deb", "rpm", ... */
        const char *name;
        const char *version;
        const char *architecture;
        const char *os;
        const char *os_version;                 /* "osVersion" */
        const char *debug_info_url;             /* "debugInfoUrl" */
} ProtoPackage;

#define PROTO_HTLHASH_SIZE 16U

typedef struct ProtoModule {
        const char *path;
        const char *map_files;                  /* NULL: not asked for, or the vDSO */
        const char *host_path;                  /* NULL: none, the daemon's path is the process's */
        const uint8_t *build_id;                /* NULL or build_id_len == 0: none */
        size_t build_id_len;
        bool build_id_skipped;                  /* not read: the call read as many files as it may */
        bool deleted;
        bool vdso;
        uint32_t dev_major;
        uint32_t dev_minor;
        uint64_t inode;
        /* What a symbolizer needs of an ELF file; all absent for other files, or when not asked for. */
        const char *elf_type;                   /* "exec", "dyn", "other"; NULL: not known */
        const char *go_build_id;                /* NULL: none */
        bool has_htlhash;
        uint8_t htlhash[PROTO_HTLHASH_SIZE];
        bool has_package;
        ProtoPackage package;
} ProtoModule;

typedef struct ProtoResult {
        const char *unknown;                    /* NULL: normalized; else "unmapped", "anonymous", "special", "exited" */
        uint32_t module;                        /* index into modules */
        uint64_t offset;
        /*
         * Of a normalized address in an ELF file, asked for: its ELF
         * virtual address, or why there is none ("not_elf",
         * "outside_load_segments", "unreadable"). Neither: not asked.
         */
        bool has_elf_address;
        uint64_t elf_address;
        const char *no_elf_address;
} ProtoResult;

typedef struct ProtoNormalizeReply {
        pid_t pid;
        uint64_t start_time;
        size_t n_modules;
        const ProtoModule *modules;
        size_t n_results;
        const ProtoResult *results;
        bool exited;                            /* answered from the snapshot of an exited process */
} ProtoNormalizeReply;

/*
 * Format a whole reply message {"parameters": {"pid", "start_time",
 * "modules": [{"path", "build_id": "hex" | null, "build_id_skipped"?,
 * "deleted", "vdso", "map_files"?, "host_path"?, "dev_major", "dev_minor", "inode"}],
 * "results": [{"module", "offset"} | {"unknown"}]}} (plus "continues":
 * true when @continues), NUL-terminated as on the wire: *ret_size counts
 * the NUL. "build_id_skipped": true is sent only when set, and so is
 * "exited": true, after "start_time", in every reply of a stream.
 *
 * A reply of a stream carries the modules its results introduce: its
 * modules continue the list of the @n_modules_before modules of the
 * replies before it, and a result's module indexes that whole list. A
 * single reply has @n_modules_before 0.
 *
 * Errors: -EINVAL a NULL path, a build ID longer than VMAQ_BUILD_ID_MAX, a
 * module index out of range, or "unknown" not one of "unmapped",
 * "anonymous", "special", "exited" (the enum in io.vmaq.varlink); -ENOMEM.
 */
int proto_normalize_reply_format(const ProtoNormalizeReply *reply, size_t n_modules_before, bool continues,
                                 char **ret, size_t *ret_size);

/*
 * An upper bound on the bytes of @reply encoded, as for
 * proto_mapping_size_max(): the reply around them, each result, and each
 * module, as the two below give.
 */
size_t proto_normalize_reply_size_max(const ProtoNormalizeReply *reply);
size_t proto_module_size_max(const ProtoModule *m);
size_t proto_result_size_max(void);

/* --- io.vmaq.ListMappings ----------------------------------------------- */

typedef struct ProtoListMappingsRequest {
        ProtoTarget target;                     /* as for Normalize */
        pid_t pid;
        unsigned fd_index;
        bool exec_only;                         /* default false */
        bool build_ids;                         /* default true */
        bool pin;
        uint64_t start_time;
        uint64_t start;                         /* the first address of interest; default 0 */
} ProtoListMappingsRequest;

/*
 * "pid", "pidfd" or "maps_fd" as for Normalize, "exec_only", "build_ids",
 * "start_time", "start" (an address: an integer or a "0x..." string);
 * errors as for Normalize.
 */
int proto_list_mappings_request_decode(struct json_object *parameters, ProtoListMappingsRequest *ret,
                                       const char **ret_parameter);

typedef struct ProtoMapping {
        uint64_t start;
        uint64_t end;
        uint64_t offset;
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        const char *perms;                      /* "r-xp" */
        const char *path;                       /* NULL: no name */
        const char *host_path;                  /* as for ProtoModule */
        const char *kind;                       /* "file", "anonymous", "special", "vdso" */
        bool deleted;
        const uint8_t *build_id;
        size_t build_id_len;
        bool build_id_skipped;                  /* as for ProtoModule */
        const char *elf_type;                   /* as for ProtoModule */
} ProtoMapping;

/*
 * Format a whole reply message, as proto_normalize_reply_format(), of
 * {"pid", "start_time", "mappings": [{"start", "end", "perms", "offset",
 * "dev_major", "dev_minor", "inode", "path"?, "host_path"?, "kind", "deleted",
 * "build_id": "hex" | null, "build_id_skipped"?, "elf_type"?}], "next"?}. With
 * @has_next, "next" is where the mappings left out of this reply begin:
 * the client asks again from there.
 * Errors: -EINVAL a NULL perms, a build ID too long, or "kind" not one of
 * "file", "anonymous", "special", "vdso"; -ENOMEM.
 */
int proto_list_mappings_reply_format(pid_t pid, uint64_t start_time, const ProtoMapping *mappings, size_t n,
                                     bool has_next, uint64_t next, char **ret, size_t *ret_size);

/*
 * Upper bounds on the bytes of encoded replies, whatever their strings
 * hold (each byte may become a six-byte escape): one mapping whose path has
 * @path_len bytes (0: none), and a ListMappings reply without its mappings.
 */
/* With @host_path, room for a "host_path" of "/proc/PID/root" and the path. */
size_t proto_mapping_size_max(size_t path_len, bool host_path);
size_t proto_list_mappings_reply_size_max(void);

/* --- io.vmaq.GetStatus -------------------------------------------------- */

typedef struct ProtoStatus {
        const char *version;
        const char *backend;                    /* "ioctl" or "text" */
        uint64_t uptime_usec;
        uint64_t connections;
        uint64_t connections_max;
        uint64_t connections_per_user_max;
        /* Each group below is one object on the wire, its members in this order. */
        uint64_t proc_cache_size, proc_cache_max, proc_cache_hits, proc_cache_misses;
        uint64_t build_id_cache_size, build_id_cache_max, build_id_cache_hits, build_id_cache_misses;
        uint64_t workers_used, workers_max;     /* threads running a request, and their limit */
        uint64_t memory_used, memory_max;       /* bytes held for clients, and the budget */
        /*
         * Refused: connections over the total limit, over a user's; requests
         * over the memory budget, past their deadline; connections closed for
         * making no progress.
         */
        uint64_t refused_connections, refused_user_connections, refused_memory, refused_timeouts, refused_idle;
        uint64_t requests;
        uint64_t errors;
        uint64_t denied;
        /*
         * Snapshots of processes' executable mappings: of cached and of
         * exited processes, of exited ones alone, the bytes all of them
         * hold and their limit. One object on the wire, in this order.
         */
        uint64_t snapshots_held, snapshots_exited, snapshot_memory_used, snapshot_memory_max;
        /* What one call may hold: "limits": {"max_addresses", "max_message_size", "max_reply_size"}. */
        uint64_t max_addresses, max_message_size, max_reply_size;
} ProtoStatus;

/* GetStatus and GetInfo take no parameters: -EINVAL with *ret_parameter for any it is given. */
int proto_empty_request_decode(struct json_object *parameters, const char **ret_parameter);

/*
 * {"version", "backend", "uptime_usec", "connections", "connections_max",
 * "connections_per_user_max", "proc_cache": {"size", "max", "hits",
 * "misses"}, "build_id_cache": {...}, "workers": {"used", "max"},
 * "memory": {"used", "max"}, "refused": {"connections", "user_connections",
 * "memory", "timeouts", "idle"}, "requests", "errors", "denied",
 * "snapshots": {"held", "exited", "memory_used", "memory_max"}, "limits":
 * {"max_addresses", "max_message_size", "max_reply_size"}}.
 * Errors: -EINVAL a NULL version, or backend not "ioctl" or "text"; -ENOMEM.
 */
int proto_status_encode(const ProtoStatus *status, struct json_object **ret);

/* --- io.vmaq.Track ------------------------------------------------------ */

typedef struct ProtoTrackRequest {
        pid_t pid;
        bool pin;                               /* start_time given */
        uint64_t start_time;
} ProtoTrackRequest;

/* "pid" (required), "start_time"; errors as for Normalize. */
int proto_track_request_decode(struct json_object *parameters, ProtoTrackRequest *ret, const char **ret_parameter);
/* The client's side: "pid", and "start_time" when @req->pin. */
int proto_track_request_encode(const ProtoTrackRequest *req, struct json_object **ret);

/* The reply {"pid", "start_time"}: the process tracked. -ENOMEM. */
int proto_track_reply_encode(pid_t pid, uint64_t start_time, struct json_object **ret);
/* Both required, checked as for Normalize. -EBADMSG (*ret_field). */
int proto_track_reply_decode(struct json_object *parameters, pid_t *ret_pid, uint64_t *ret_start_time,
                             const char **ret_field);

/* --- the client's side: calls and replies ------------------------------------ */

/*
 * Format a call {"method": <m>, "parameters": @parameters} into a newly
 * allocated buffer, NUL-terminated as on the wire: *ret_size counts the
 * NUL. Takes ownership of @parameters (NULL means {}), also on failure.
 * Errors: -EINVAL @m out of range or @parameters not an object; -ENOMEM.
 */
int proto_call_format(ProtoMethod m, struct json_object *parameters, char **ret, size_t *ret_size);

/*
 * The ListMappings parameters: "pid", "exec_only", "build_ids" always,
 * "start_time" when @req->pin, "start" when not 0.
 */
int proto_list_mappings_request_encode(const ProtoListMappingsRequest *req, struct json_object **ret);

/*
 * The reply decoders below take what varlink_json_parse() returned and
 * share these rules. Types and ranges are checked as for requests
 * (integers exactly over 0..2^64-1, never floats, strings or negative;
 * pids 1..INT32_MAX; dev_major/dev_minor and module indexes 32 bits);
 * required fields must be present. Fields the daemon may add in a later
 * version are ignored: Varlink lets a service extend its replies. Strings
 * are referenced, not copied: they point into the JSON, which must outlive
 * the decoded struct. On failure *ret_field (may be NULL) names the bad or
 * missing field, a constant string. *ret is written only on success.
 */

/*
 * Split a whole reply message: an object with "parameters" (object,
 * optional), "error" (an "interface.Name" string, optional) and
 * "continues" (a boolean), and no other key. "continues": true is taken
 * only with @ret_continues (a call that asked for "more"), and never with
 * an error, which ends a stream. *ret_error is the error name or NULL for
 * a reply; *ret_parameters is borrowed from @message, NULL when absent
 * (= {}).
 * Errors: -EBADMSG.
 */
int proto_reply_split(struct json_object *message, const char **ret_error, struct json_object **ret_parameters,
                      bool *ret_continues, const char **ret_field);

typedef struct ProtoErrorReply {
        const char *name;                       /* the Varlink error name, as received */
        ProtoError error;                       /* _PROTO_ERROR_INVALID: not one of the table */
        int error_errno;                        /* -E...: proto_error_to_errno(), -EPROTO if unknown */
        ProtoErrorDetails details;              /* the fields the table names for the error */
        char message[256];                      /* e.g. "permission denied: pid 1 (io.vmaq.PermissionDenied)" */
} ProtoErrorReply;

/*
 * Decode the error reply @name with @parameters (NULL: {}): the fields the
 * error's row in the table names are required, typed and range-checked.
 * An error name not in the table is not a failure: ->error is then
 * _PROTO_ERROR_INVALID and ->error_errno -EPROTO. ->message is always
 * filled on success, and self-contained; the other strings point into
 * @name and @parameters.
 * Errors: -EBADMSG a missing or bad field (*ret_field), or @name not of the
 * form "interface.Name".
 */
int proto_error_reply_decode(const char *name, struct json_object *parameters, ProtoErrorReply *ret,
                             const char **ret_field);

/*
 * The results of a Normalize reply, read from its text by the parser
 * rather than built by json-c (see proto_reply_parse()): valid when they
 * were, and the tree's "results" is then empty.
 */
typedef struct ProtoResults {
        ProtoResult *results;
        size_t n;
        bool valid;
} ProtoResults;

/*
 * Parse the reply message of @size bytes at @text (the NUL not included)
 * as varlink_json_parse() does, without limits (the daemon is trusted that
 * far), reading a "results" array in its parameters into *ret_results
 * when it is written as the daemon writes it. Errors as varlink_json_parse().
 */
int proto_reply_parse(const char *text, size_t size, struct json_object **ret, ProtoResults *ret_results);
void proto_results_done(ProtoResults *r);

/*
 * Decode Normalize reply parameters (see proto_normalize_reply_format()).
 * Each module index must be below the number of modules, those of the
 * @n_modules_before of earlier replies of a stream included, "unknown" one
 * of "unmapped", "anonymous", "special", "exited", a build ID an even number (2 to
 * 2 * VMAQ_BUILD_ID_MAX) of lowercase hex digits or null. With @read
 * (NULL: none) valid, from proto_reply_parse() of the same message, its
 * results are taken from it. ->modules and ->results are allocated, and
 * the build ID bytes with the modules: free them with
 * proto_normalize_reply_done(). Strings point into @parameters (->unknown
 * to constants).
 * Errors: -EBADMSG (*ret_field names the field); -ENOMEM.
 */
int proto_normalize_reply_decode(struct json_object *parameters, ProtoResults *read, size_t n_modules_before,
                                 ProtoNormalizeReply *ret, const char **ret_field);
void proto_normalize_reply_done(ProtoNormalizeReply *reply);

typedef struct ProtoListMappingsReply {
        pid_t pid;
        uint64_t start_time;
        size_t n_mappings;
        const ProtoMapping *mappings;
        bool has_next;                          /* more mappings follow, from address next */
        uint64_t next;
} ProtoListMappingsReply;

/*
 * Decode ListMappings reply parameters (see proto_list_mappings_reply_encode()).
 * "perms" must be 4 characters as in /proc/PID/maps ([r-][w-][x-][ps]),
 * "kind" one of "file", "anonymous", "special", "vdso", build IDs as for
 * Normalize. ->mappings is allocated with the build ID bytes: free it with
 * proto_list_mappings_reply_done(). Strings point into @parameters.
 * Errors: -EBADMSG (*ret_field); -ENOMEM.
 */
int proto_list_mappings_reply_decode(struct json_object *parameters, ProtoListMappingsReply *ret,
                                     const char **ret_field);
void proto_list_mappings_reply_done(ProtoListMappingsReply *reply);

/*
 * Decode GetStatus reply parameters (see proto_status_encode()): every
 * field is required, "backend" is "ioctl" or "text". Strings point into
 * @parameters; nothing to free.
 * Errors: -EBADMSG (*ret_field).
 */
int proto_status_decode(struct json_object *parameters, ProtoStatus *ret, const char **ret_field);
