/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmaqctl: ask vmaqd from the command line. It uses libvmaq and nothing
 * else of vmaqd, so that everything it does proves the public API is
 * enough. See vmaqctl(1).
 *
 * Exit codes: 0 success, 1 the daemon answered with an error, 2 usage
 * error, 3 the daemon could not be reached or the connection failed.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "vmaq.h"

/* Not argv[0]: in the build tree that is libtool's "lt-vmaqctl". */
#define PROGRAM_NAME "vmaqctl"

/*
 * What vmaqctl exits with. A function that reports a failure returns the
 * status it calls for (EXIT_OK when there was none): it is a type of its
 * own so that it cannot be mistaken for an errno.
 */
typedef enum ExitStatus {
        EXIT_OK = 0,
        EXIT_DAEMON_ERROR = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
} ExitStatus;

static const char *arg_socket = NULL;
typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
        _JSON_MODE_MAX,
        _JSON_MODE_INVALID = -EINVAL,
} JsonMode;

static JsonMode arg_json = JSON_OFF;
static bool arg_legend = true;
static bool arg_quiet = false;
static bool arg_decimal = false;
static uint64_t arg_timeout_usec = VMAQ_DEFAULT_TIMEOUT_USEC;

DEFINE_CLEANUP(struct vmaq_client *, vmaq_close);
DEFINE_CLEANUP(struct vmaq_normalization *, vmaq_normalization_free);
DEFINE_CLEANUP(struct vmaq_mappings *, vmaq_mappings_free);
DEFINE_CLEANUP(struct vmaq_status *, vmaq_status_free);

static void help(void) {
        printf("%1$s [OPTIONS...] COMMAND ...\n\n"
               "Ask vmaqd to normalize the addresses of a process to file offsets and build IDs.\n\n"
               "Commands:\n"
               "  normalize [--no-build-ids] [--map-files] [--start-time T] [--pidfd|--maps-fd]\n"
               "            [--format=text|json|build-id|addr2line] [--decimal]\n"
               "            PID ADDR...\n"
               "                          Normalize addresses of PID; ADDR is hex, with or\n"
               "                          without 0x (as perf script prints it), decimal with\n"
               "                          --decimal; \"-\" reads addresses from standard input,\n"
               "                          one per line. --pidfd sends a pidfd of PID instead of\n"
               "                          its number, --maps-fd its /proc/PID/maps as opened\n"
               "                          here, with our own access\n"
               "  normalize --pid-column [--no-build-ids] [--map-files] [--format=text|json]\n"
               "            [--decimal] [-]\n"
               "                          Read \"PID ADDR\" lines from standard input, as\n"
               "                          perf script -F pid,ip prints them; one call per pid,\n"
               "                          answers in input order, each with its pid (text:\n"
               "                          \"PID \" before the line; JSON: \"pid\" in each result)\n"
               "  maps [--exec-only] [--no-build-ids] [--start-time T] PID\n"
               "                          List the mappings of PID, only if it is still the\n"
               "                          process started at T when given\n"
               "  status                  Show the daemon's state\n"
               "  track [--start-time T] PID\n"
               "                          Have the daemon keep a snapshot of PID's executable\n"
               "                          mappings now, to answer for them after it exits\n\n"
               "Options:\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --socket=PATH        Connect to PATH (default: $VMAQ_SOCKET, else %2$s)\n"
               "     --json[=MODE]        Print one JSON document: short (the default, on one\n"
               "                          line), pretty (indented) or off; errors then also go\n"
               "                          to standard output as {\"error\": ..., \"message\": ...}\n"
               "     --no-legend          Do not print the header line of tables\n"
               "     --no-pager           Accepted, as by systemd's tools; vmaqctl never pages\n"
               "  -q --quiet              Print nothing on success, only the exit status tells\n"
               "     --timeout=SEC        Give up when the daemon does not take the connection,\n"
               "                          or does not answer, within SEC seconds; 0 waits\n"
               "                          forever (default: %3$" PRIu64 ")\n\n"
               "Exit status: 0 success, 1 the daemon answered with an error (or the process\n"
               "could not be opened for --pidfd or --maps-fd), 2 usage error,\n"
               "3 the daemon could not be reached (no socket, refused, timeout, connection lost).\n",
               PROGRAM_NAME, VMAQ_DEFAULT_SOCKET,
               VMAQ_DEFAULT_TIMEOUT_USEC / UINT64_C(1000000));
}

static ExitStatus usage_error(const char *fmt, ...) __attribute__((__format__(__printf__, 1, 2)));
static ExitStatus usage_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", PROGRAM_NAME);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nSee '%s --help'.\n", PROGRAM_NAME);
        return EXIT_USAGE;
}

/* --- output -------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 if there is none. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
        uint32_t cp;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                len = 2;
                cp = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        /* Overlong forms, surrogates and code points above U+10FFFF are not UTF-8. */
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* A JSON string (RFC 8259); bytes that are not UTF-8 become U+FFFD. */
static void json_print_string(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strlen(s);

        putchar('"');
        while (n > 0) {
                size_t len;

                if (*p == '"' || *p == '\\') {
                        putchar('\\');
                        putchar(*p);
                        p++, n--;
                        continue;
                }
                if (*p < 0x20 || *p == 0x7f) {
                        printf("\\u%04x", *p);
                        p++, n--;
                        continue;
                }
                len = utf8_valid_len(p, n);
                if (len == 0) {
                        fputs("\\ufffd", stdout);
                        p++, n--;
                        continue;
                }
                fwrite(p, 1, len, stdout);
                p += len, n -= len;
        }
        putchar('"');
}

static void json_print_string_or_null(const char *s) {
        if (s)
                json_print_string(s);
        else
                fputs("null", stdout);
}

static void print_hex(const uint8_t *data, size_t n) {
        for (size_t i = 0; i < n; i++)
                printf("%02x", data[i]);
}

static void json_print_build_id(const uint8_t *id, size_t n) {
        if (n == 0) {
                fputs("null", stdout);
                return;
        }
        putchar('"');
        print_hex(id, n);
        putchar('"');
}

/*
 * --json=pretty: the JSON printers write the one-line form; for pretty it is
 * collected and indented here, one member or element a line, two spaces a
 * level, as json-c's JSON_C_TO_STRING_PRETTY does. stdout is swapped for a
 * memory stream meanwhile (glibc's stdout is a plain variable), so that the
 * printers need not know.
 */
static FILE *saved_stdout = NULL;
static char *pretty_buf = NULL;
static size_t pretty_size = 0;

static void json_begin(void) {
        FILE *f;

        if (arg_json != JSON_PRETTY || saved_stdout)
                return;
        (void) fflush(stdout);
        f = open_memstream(&pretty_buf, &pretty_size);
        if (!f)
                return;         /* printed as it comes, on one line */
        saved_stdout = stdout;
        stdout = f;
}

static void print_indent(unsigned level) {
        putchar('\n');
        for (unsigned i = 0; i < level; i++)
                fputs("  ", stdout);
}

static void json_reindent(const char *s) {
        unsigned level = 0;
        bool in_string = false;

        for (const char *p = s; *p; p++) {
                if (in_string) {
                        putchar(*p);
                        if (*p == '\\' && p[1])
                                putchar(*++p);
                        else if (*p == '"')
                                in_string = false;
                        continue;
                }
                switch (*p) {
                case '"':
                        in_string = true;
                        putchar('"');
                        break;
                case '{':
                case '[': {
                        const char *q = p + 1;

                        while (*q == ' ')
                                q++;
                        if (*q == (*p == '{' ? '}' : ']')) {
                                putchar(*p);
                                putchar(*q);
                                p = q;
                                break;
                        }
                        putchar(*p);
                        print_indent(++level);
                        break;
                }
                case '}':
                case ']':
                        print_indent(level > 0 ? --level : 0);
                        putchar(*p);
                        break;
                case ',':
                        putchar(',');
                        print_indent(level);
                        break;
                case ':':
                        fputs(": ", stdout);
                        break;
                case ' ':
                        break;
                default:
                        putchar(*p);
                }
        }
}

static void json_end(void) {
        if (!saved_stdout)
                return;
        (void) fclose(stdout);
        stdout = TAKE_PTR(saved_stdout);
        if (pretty_buf)
                json_reindent(pretty_buf);
        pretty_buf = mfree(pretty_buf);
        pretty_size = 0;
}

/* A path for people: control characters would break the line, so they are shown as \xNN. */
static void human_print_path(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f || *p == '\\')
                        printf("\\x%02x", *p);
                else
                        putchar(*p);
}

static const char *unknown_to_string(enum vmaq_unknown u) {
        switch (u) {
        case VMAQ_UNKNOWN_UNMAPPED:
                return "unmapped";
        case VMAQ_UNKNOWN_ANONYMOUS:
                return "anonymous";
        case VMAQ_UNKNOWN_SPECIAL:
                return "special";
        case VMAQ_UNKNOWN_EXITED:
                return "exited";
        default:
                return "other";
        }
}

/* stdout could not be written: report it once, at the end. */
static ExitStatus finish_output(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "%s: failed to write the output: %m\n", PROGRAM_NAME);
                return EXIT_DAEMON_ERROR;
        }
        return EXIT_OK;
}

/* --- errors -------------------------------------------------------------------- */

static const char *socket_display(void) {
        const char *e;

        if (arg_socket)
                return arg_socket;
        e = secure_getenv("VMAQ_SOCKET");
        return e && e[0] ? e : VMAQ_DEFAULT_SOCKET;
}

/*
 * Report a failure: the message on stderr, and with --json also as
 * {"error": NAME, "message": "..."} on stdout, as varlinkctl does. NAME is
 * the Varlink error name the daemon sent, else the errno name of @r.
 */
static void report_error(int r, const char *varlink_name, const char *fmt, ...)
        __attribute__((__format__(__printf__, 3, 4)));

/* The Varlink error name at the end of a libvmaq message, "... (io.vmaq.Foo)", or NULL. */
static const char *errmsg_varlink_name(const char *detail, char *buf, size_t size) {
        size_t n = strlen(detail);
        const char *open;

        if (n < 3 || detail[n - 1] != ')')
                return NULL;
        open = strrchr(detail, '(');
        if (!open || !memchr(open, '.', (size_t) (detail + n - open)) ||
            (size_t) (detail + n - 1 - (open + 1)) >= size)
                return NULL;
        for (const char *p = open + 1; p < detail + n - 1; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", *p))
                        return NULL;
        memcpy(buf, open + 1, (size_t) (detail + n - 1 - (open + 1)));
        buf[detail + n - 1 - (open + 1)] = '\0';
        return buf;
}

static void report_error(int r, const char *varlink_name, const char *fmt, ...) {
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        fprintf(stderr, "%s: %s\n", PROGRAM_NAME, msg);
        if (arg_json == JSON_OFF)
                return;
        json_begin();
        fputs("{\"error\": ", stdout);
        json_print_string(varlink_name ?: strerrorname_np(-r) ?: "EIO");
        fputs(", \"message\": ", stdout);
        json_print_string(msg);
        fputs("}\n", stdout);
        json_end();
        (void) fflush(stdout);
}

/* Connect, with the timeout for the connect and the call; a failure is reported. */
static ExitStatus connect_daemon(struct vmaq_client **ret) {
        int r;

        r = vmaq_connect_timeout(ret, arg_socket, arg_timeout_usec);
        if (r < 0) {
                const char *hint = "";

                /* Not there or not listening: the socket unit starts it. Not ours to open: the group. */
                if (IN_SET(-r, ENOENT, ECONNREFUSED))
                        hint = " (is vmaqd running? systemctl start vmaqd.socket)";
                else if (IN_SET(-r, EACCES, EPERM))
                        hint = " (ask an administrator to add you to the 'vmaq' group)";
                report_error(r, NULL, "cannot connect to vmaqd at '%s': %s%s", socket_display(), strerror(-r),
                             hint);
                return EXIT_UNREACHABLE;
        }
        return EXIT_OK;
}

/* We could not open what --pidfd or --maps-fd send: the process is gone, or not ours to open. */
static ExitStatus open_error(const char *what, pid_t pid) {
        int r = errno;

        report_error(-r, NULL, "cannot open %s pid %d: %s", what, (int) pid,
                     r == ENOENT || r == ESRCH ? "no such process" : strerror(r));
        /* As the daemon would have answered about the pid itself. */
        return EXIT_DAEMON_ERROR;
}

/* @detail without a leading @prefix: the message already says so. */
static const char *strip_prefix(const char *detail, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(detail, prefix, n) == 0 ? detail + n : detail;
}

/*
 * Report the failure @r of a call about @pid (0: not about a process) and
 * return the exit status: a broken connection is "unreachable", anything
 * else is an answer of the daemon.
 */
static ExitStatus call_error(struct vmaq_client *c, int r, pid_t pid, uint64_t start_time) {
        const char *detail = vmaq_errmsg(c);
        const char *sep;
        char name_buf[256];
        const char *name;

        if (!detail)
                detail = "";
        name = errmsg_varlink_name(detail, name_buf, sizeof(name_buf));
        sep = detail[0] ? ": " : "";

        switch (-r) {
        case ETIMEDOUT:
                report_error(r, name, "vmaqd at '%s' did not answer in time", socket_display());
                return EXIT_UNREACHABLE;
        case ECONNRESET:
        case EPIPE:
        case ENOTCONN:
                report_error(r, name, "lost the connection to vmaqd at '%s'%s%s", socket_display(), sep, detail);
                return EXIT_UNREACHABLE;
        case EPROTO:
                report_error(r, name, "vmaqd at '%s' sent an invalid reply%s%s", socket_display(), sep, detail);
                return EXIT_UNREACHABLE;
        case ESRCH:
                report_error(r, name, "no such process: pid %d", (int) pid);
                break;
        case ENXIO:
                report_error(r, name, "no address space: pid %d is a kernel thread or a zombie", (int) pid);
                break;
        case EACCES:
        case EPERM:
                report_error(r, name, "permission denied: pid %d belongs to another user or is not dumpable "
                             "(ask an administrator to add you to the 'vmaq' group)", (int) pid);
                break;
        case ESTALE:
                /* The daemon's message starts with "process changed" too: said once. */
                detail = strip_prefix(detail, "process changed: ");
                report_error(r, name, "process changed: pid %d is no longer the process started at %" PRIu64
                             "%s%s", (int) pid, start_time, sep, detail);
                break;
        case E2BIG:
                report_error(r, name, "request too large for vmaqd%s%s", sep, detail);
                break;
        case ENOBUFS:
                report_error(r, name, "the reply would be too large for vmaqd, ask about fewer addresses%s%s",
                             sep, detail);
                break;
        case EINVAL:
                report_error(r, name, "vmaqd refused a parameter%s%s", sep, detail);
                break;
        case EXDEV:
                report_error(r, name, "foreign pid namespace: vmaqd cannot tell which pid namespace this client "
                             "is in (it needs SO_PEERPIDFD, Linux 6.5) and cannot answer about pid %d", (int) pid);
                break;
        case EOPNOTSUPP:
        case EADDRNOTAVAIL:
                report_error(r, name, "vmaqd does not know this call%s%s", sep, detail);
                break;
        case EIO:
                report_error(r, name, "vmaqd failed internally%s%s", sep, detail);
                break;
        default:
                report_error(r, name, "%s%s%s", strerror(-r), sep, detail);
                break;
        }
        return EXIT_DAEMON_ERROR;
}

/* --- arguments ------------------------------------------------------------------- */

enum {
        ARG_VERSION = 0x100,
        ARG_SOCKET,
        ARG_JSON,
        ARG_TIMEOUT,
        ARG_NO_BUILD_IDS,
        ARG_MAP_FILES,
        ARG_START_TIME,
        ARG_EXEC_ONLY,
        ARG_PIDFD,
        ARG_MAPS_FD,
        ARG_FORMAT,
        ARG_DECIMAL,
        ARG_NO_LEGEND,
        ARG_NO_PAGER,
        ARG_PID_COLUMN,
};

#define COMMON_OPTIONS                                                  \
        { "help",    no_argument,       NULL, 'h' },                    \
        { "version", no_argument,       NULL, ARG_VERSION },            \
        { "socket",  required_argument, NULL, ARG_SOCKET },             \
        { "json",      optional_argument, NULL, ARG_JSON },           \
        { "timeout",   required_argument, NULL, ARG_TIMEOUT },        \
        { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },      \
        { "no-pager",  no_argument,       NULL, ARG_NO_PAGER },       \
        { "quiet",     no_argument,       NULL, 'q' }

/*
 * The options every command takes, wherever they appear; anything else
 * reaching here is not an option of the command and is reported. Returns 1
 * if handled, 0 for --help/--version (done), -EINVAL for a usage error
 * (reported).
 */
static int parse_common_option(int c, const char *optarg_, char *argv[]) {
        uint64_t sec;

        switch (c) {
        case 'h':
                help();
                return 0;
        case ARG_VERSION:
                printf("%s %s\n", PROGRAM_NAME, PACKAGE_VERSION);
                return 0;
        case ARG_SOCKET:
                if (optarg_[0] == '\0') {
                        (void) usage_error("--socket needs a path");
                        return -EINVAL;
                }
                arg_socket = optarg_;
                return 1;
        case ARG_JSON:
                /* Plain --json is the one-line form it always was. */
                if (!optarg_ || strcmp(optarg_, "short") == 0)
                        arg_json = JSON_SHORT;
                else if (strcmp(optarg_, "pretty") == 0)
                        arg_json = JSON_PRETTY;
                else if (strcmp(optarg_, "off") == 0)
                        arg_json = JSON_OFF;
                else {
                        (void) usage_error("invalid --json '%s': pretty, short or off", optarg_);
                        return -EINVAL;
                }
                return 1;
        case ARG_NO_LEGEND:
                arg_legend = false;
                return 1;
        case ARG_NO_PAGER:
                /* vmaqctl never pages; accepted as systemd's tools accept it. */
                return 1;
        case 'q':
                arg_quiet = true;
                return 1;
        case ARG_TIMEOUT:
                if (parse_u64(optarg_, 10, &sec) < 0 || sec > UINT64_MAX / 1000000) {
                        (void) usage_error("invalid --timeout '%s': seconds, 0 for none", optarg_);
                        return -EINVAL;
                }
                arg_timeout_usec = sec * 1000000;
                return 1;
        default:
                /* opterr is 0: getopt() printed nothing, and optind is past the culprit. */
                if (optind > 0 && argv[optind - 1] && argv[optind - 1][0] == '-')
                        (void) usage_error("unknown option, or option without its argument: '%s'",
                                           argv[optind - 1]);
                else
                        (void) usage_error("invalid option");
                return -EINVAL;
        }
}

/* What the command exits with when parse_common_option() returned @r <= 0. */
static ExitStatus common_option_exit(int r) {
        return r < 0 ? EXIT_USAGE : finish_output();
}

static ExitStatus parse_pid_arg(const char *s, pid_t *ret) {
        if (parse_pid(s, ret) < 0)
                return usage_error("invalid PID '%s': a number from 1 to 2147483647", s);
        return EXIT_OK;
}

/*
 * An address as vmaqctl takes it: hex, with or without "0x", as perf
 * script -F ip prints it; decimal only with --decimal.
 */
static int parse_input_address(const char *s, uint64_t *ret) {
        if (arg_decimal)
                return parse_u64(s, 10, ret);
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                s += 2;
        return parse_u64(s, 16, ret);
}

static const char *address_syntax(void) {
        return arg_decimal ? "decimal" : "hex, with or without 0x";
}

typedef struct Addresses {
        uint64_t *v;
        size_t n, allocated;
} Addresses;

static void addresses_done(Addresses *a) {
        free(a->v);
}

static int addresses_add(Addresses *a, uint64_t addr) {
        if (a->n == a->allocated) {
                size_t m = a->allocated ? a->allocated * 2 : 64;
                uint64_t *v;

                if (m < a->allocated || m > SIZE_MAX / sizeof(uint64_t))
                        return -ENOMEM;
                v = realloc(a->v, m * sizeof(uint64_t));
                if (!v)
                        return -ENOMEM;
                a->v = v;
                a->allocated = m;
        }
        a->v[a->n++] = addr;
        return 0;
}

static ExitStatus out_of_memory(void) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM_NAME);
        return EXIT_DAEMON_ERROR;
}

/* One address per line; blank lines are skipped, spaces around an address ignored. */
static ExitStatus read_addresses(FILE *f, Addresses *a) {
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        unsigned long lineno = 0;
        ssize_t n;

        while ((n = getline(&line, &allocated, f)) >= 0) {
                char *s = line, *e = line + n;
                uint64_t addr;

                lineno++;
                while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                while (s < e && (*s == ' ' || *s == '\t'))
                        s++;
                if (s == e)
                        continue;
                if (memchr(s, '\0', (size_t) (e - s)))
                        return usage_error("invalid address on line %lu of standard input: contains a NUL byte",
                                           lineno);
                *e = '\0';
                if (parse_input_address(s, &addr) < 0) {
                        fprintf(stderr, "%s: invalid address '", PROGRAM_NAME);
                        /* Quoted as given, but without control characters. */
                        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                                fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
                        fprintf(stderr, "' on line %lu of standard input: %s\n"
                                "See '%s --help'.\n", lineno, address_syntax(), PROGRAM_NAME);
                        return EXIT_USAGE;
                }
                if (addresses_add(a, addr) < 0)
                        return out_of_memory();
        }
        if (ferror(f)) {
                fprintf(stderr, "%s: failed to read standard input: %m\n", PROGRAM_NAME);
                return EXIT_USAGE;
        }
        return EXIT_OK;
}

/* "PID ADDR" lines, as perf script -F pid,ip prints them: @pids and @a grow in step. */
typedef struct PidAddresses {
        pid_t *pids;
        size_t allocated;
        Addresses addrs;
} PidAddresses;

static void pid_addresses_done(PidAddresses *p) {
        free(p->pids);
        addresses_done(&p->addrs);
}

static int pid_addresses_add(PidAddresses *p, pid_t pid, uint64_t addr) {
        if (p->addrs.n == p->allocated) {
                size_t m = p->allocated ? p->allocated * 2 : 64;
                pid_t *v;

                if (m < p->allocated || m > SIZE_MAX / sizeof(pid_t))
                        return -ENOMEM;
                v = realloc(p->pids, m * sizeof(pid_t));
                if (!v)
                        return -ENOMEM;
                p->pids = v;
                p->allocated = m;
        }
        if (addresses_add(&p->addrs, addr) < 0)
                return -ENOMEM;
        p->pids[p->addrs.n - 1] = pid;
        return 0;
}

static ExitStatus bad_line(const char *what, const char *s, unsigned long lineno) {
        fprintf(stderr, "%s: invalid %s '", PROGRAM_NAME, what);
        for (const unsigned char *q = (const unsigned char *) s; *q; q++)
                fputc(*q < 0x20 || *q == 0x7f ? '?' : *q, stderr);
        fprintf(stderr, "' on line %lu of standard input: \"PID ADDR\" expected, ADDR %s\n"
                "See '%s --help'.\n", lineno, address_syntax(), PROGRAM_NAME);
        return EXIT_USAGE;
}

/* Lines "PID ADDR", separated by spaces or tabs; blank lines are skipped. */
static ExitStatus read_pid_addresses(FILE *f, PidAddresses *p) {
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        unsigned long lineno = 0;
        ssize_t n;

        while ((n = getline(&line, &allocated, f)) >= 0) {
                char *s = line, *e = line + n, *sep;
                uint64_t addr;
                pid_t pid;

                lineno++;
                while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                while (s < e && (*s == ' ' || *s == '\t'))
                        s++;
                if (s == e)
                        continue;
                if (memchr(s, '\0', (size_t) (e - s)))
                        return usage_error("invalid line %lu of standard input: contains a NUL byte", lineno);
                *e = '\0';
                sep = s + strcspn(s, " \t");
                if (*sep == '\0')
                        return bad_line("line", s, lineno);
                *sep++ = '\0';
                while (*sep == ' ' || *sep == '\t')
                        sep++;
                if (parse_pid(s, &pid) < 0)
                        return bad_line("PID", s, lineno);
                if (parse_input_address(sep, &addr) < 0)
                        return bad_line("ADDR", sep, lineno);
                if (pid_addresses_add(p, pid, addr) < 0)
                        return out_of_memory();
        }
        if (ferror(f)) {
                fprintf(stderr, "%s: failed to read standard input: %m\n", PROGRAM_NAME);
                return EXIT_USAGE;
        }
        return EXIT_OK;
}

/* --- normalize ------------------------------------------------------------------- */

/* Result @i of @n as a JSON object; with @with_pid, the process's pid and start time first. */
static void print_result_json(const struct vmaq_normalization *n, size_t i, bool map_files, bool with_pid) {
        const struct vmaq_result *res = vmaq_result_get(n, i);

        putchar('{');
        if (with_pid)
                printf("\"pid\": %d, \"start_time\": %" PRIu64 ", ", (int) n->pid, n->start_time);
        printf("\"address\": %" PRIu64 ", ", res->address);
        if (res->unknown == VMAQ_NORMALIZED && res->module < n->n_modules) {
                const struct vmaq_module *m = vmaq_module_get(n, res->module);

                fputs("\"path\": ", stdout);
                json_print_string(m->path ?: "");
                printf(", \"offset\": %" PRIu64 ", \"build_id\": ", res->offset);
                json_print_build_id(m->build_id, m->build_id_len);
                printf(", \"deleted\": %s, \"vdso\": %s, \"dev_major\": %" PRIu32
                       ", \"dev_minor\": %" PRIu32 ", \"inode\": %" PRIu64,
                       m->deleted ? "true" : "false", m->vdso ? "true" : "false", m->dev_major,
                       m->dev_minor, m->inode);
                {
                        static const char *const types[] = {
                                [VMAQ_ELF_EXEC] = "exec", [VMAQ_ELF_DYN] = "dyn", [VMAQ_ELF_OTHER] = "other",
                        };
                        enum vmaq_elf_type t = vmaq_module_elf_type(n, res->module);
                        const char *go = vmaq_module_go_build_id(n, res->module);
                        uint64_t a;

                        if (vmaq_result_elf_address(n, i, &a) >= 0)
                                printf(", \"elf_address\": %" PRIu64, a);
                        if (t > VMAQ_ELF_UNKNOWN && t <= VMAQ_ELF_OTHER)
                                printf(", \"elf_type\": \"%s\"", types[t]);
                        if (go) {
                                fputs(", \"go_build_id\": ", stdout);
                                json_print_string(go);
                        }
                }
                if (map_files) {
                        fputs(", \"map_files\": ", stdout);
                        json_print_string_or_null(m->map_files);
                }
                putchar('}');
        } else
                printf("\"unknown\": \"%s\"}", unknown_to_string(res->unknown));
}

static void print_normalization_json(const struct vmaq_normalization *n, bool map_files) {
        printf("{\"pid\": %d, \"start_time\": %" PRIu64 ", \"results\": [", (int) n->pid, n->start_time);
        for (size_t i = 0; i < n->n_results; i++) {
                if (i > 0)
                        fputs(", ", stdout);
                print_result_json(n, i, map_files, false);
        }
        fputs("]}\n", stdout);
}

/* What normalize --format= takes. */
static const char *const output_formats[] = { "text", "json", "build-id", "addr2line", NULL };

static bool strv_contains(const char *const *strv, const char *s) {
        for (; *strv; strv++)
                if (strcmp(*strv, s) == 0)
                        return true;
        return false;
}

/* The path a symbolizer on this side opens: the host path of a file in another mount namespace. */
static const char *module_open_path(const struct vmaq_normalization *n, size_t module) {
        return vmaq_module_host_path(n, module) ?: vmaq_module_get(n, module)->path ?: "";
}

/* @s with each blank, quote and backslash escaped by a backslash, as xargs(1) reads its arguments. */
static void print_xargs_word(const char *s) {
        for (; *s; s++) {
                if (strchr(" \t\n\v\f\r'\"\\", *s))
                        putchar('\\');
                putchar(*s);
        }
}

/*
 * One line per address, in input order: "BUILD_ID ELF_ADDRESS PATH", what
 * debuginfod-based symbolizers need; "-" for what the address has not (a
 * file without build ID or ELF address), and "- - [REASON]" for an address
 * in no file.
 */
static void print_normalization_build_id(const struct vmaq_normalization *n) {
        for (size_t i = 0; i < n->n_results; i++) {
                const struct vmaq_result *res = vmaq_result_get(n, i);
                const struct vmaq_module *m;
                uint64_t a;

                if (res->unknown != VMAQ_NORMALIZED || res->module >= n->n_modules) {
                        printf("- - [%s]\n", unknown_to_string(res->unknown));
                        continue;
                }
                m = vmaq_module_get(n, res->module);
                if (m->build_id_len > 0)
                        print_hex(m->build_id, m->build_id_len);
                else
                        putchar('-');
                if (vmaq_result_elf_address(n, i, &a) >= 0)
                        printf(" 0x%" PRIx64 " ", a);
                else
                        fputs(" - ", stdout);
                human_print_path(module_open_path(n, res->module));
                putchar('\n');
        }
}

/* Addresses on one addr2line line at most, so that the lines stay short for xargs(1). */
#define ADDR2LINE_BATCH 256U

/*
 * Per file, lines "-e PATH ADDR...": the ELF addresses of the addresses in
 * it, as addr2line(1) takes them, for "xargs -L1 addr2line -f". Addresses
 * without an ELF address are left out.
 */
static int print_normalization_addr2line(const struct vmaq_normalization *n) {
        /* The results by module, each module's in input order: a counting sort. */
        _cleanup_free_ size_t *first = calloc(n->n_modules + 1, sizeof(size_t));
        _cleanup_free_ size_t *by_module = calloc(MAX(n->n_results, (size_t) 1), sizeof(size_t));

        if (!first || !by_module)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_results; i++) {
                const struct vmaq_result *res = vmaq_result_get(n, i);

                if (res->unknown == VMAQ_NORMALIZED && res->module < n->n_modules)
                        first[res->module + 1]++;
        }
        for (size_t m = 0; m < n->n_modules; m++)
                first[m + 1] += first[m];
        for (size_t i = 0, *next = first; i < n->n_results; i++) {
                const struct vmaq_result *res = vmaq_result_get(n, i);

                if (res->unknown == VMAQ_NORMALIZED && res->module < n->n_modules)
                        by_module[next[res->module]++] = i;
        }
        /* Filling moved each module's start to the next's: module m's results now end at first[m]. */
        for (size_t m = 0, begin = 0; m < n->n_modules; begin = first[m], m++) {
                size_t on_line = 0;

                for (size_t k = begin; k < first[m]; k++) {
                        uint64_t a;

                        if (vmaq_result_elf_address(n, by_module[k], &a) < 0)
                                continue;
                        if (on_line == 0) {
                                fputs("-e ", stdout);
                                print_xargs_word(module_open_path(n, m));
                        }
                        printf(" 0x%" PRIx64, a);
                        if (++on_line == ADDR2LINE_BATCH) {
                                putchar('\n');
                                on_line = 0;
                        }
                }
                if (on_line > 0)
                        putchar('\n');
        }
        return 0;
}

/* The line of result @i of @n. */
static void print_result_human(const struct vmaq_normalization *n, size_t i, bool map_files) {
        const struct vmaq_result *res = vmaq_result_get(n, i);

        printf("0x%012" PRIx64 ": ", res->address);
        if (res->unknown == VMAQ_NORMALIZED && res->module < n->n_modules) {
                const struct vmaq_module *m = vmaq_module_get(n, res->module);

                printf("file offset 0x%" PRIx64 " in ", res->offset);
                human_print_path(m->path ?: "");
                if (m->deleted)
                        fputs(" (deleted)", stdout);
                if (m->build_id_len > 0) {
                        fputs(" (build ID ", stdout);
                        print_hex(m->build_id, m->build_id_len);
                        putchar(')');
                }
                if (map_files && m->map_files) {
                        fputs(" (map file ", stdout);
                        human_print_path(m->map_files);
                        putchar(')');
                }
                putchar('\n');
        } else
                printf("unknown (%s)\n", unknown_to_string(res->unknown));
}

static void print_normalization_human(const struct vmaq_normalization *n, bool map_files) {
        for (size_t i = 0; i < n->n_results; i++)
                print_result_human(n, i, map_files);
}

/* One normalization per pid, freed together. */
typedef struct Normalizations {
        struct vmaq_normalization **v;
        size_t n;
} Normalizations;

static void normalizations_done(Normalizations *n) {
        for (size_t i = 0; i < n->n; i++)
                vmaq_normalization_free(n->v[i]);
        free(n->v);
}

typedef struct PidLine {
        pid_t pid;
        size_t line;
} PidLine;

static int pid_line_compare(const void *x, const void *y) {
        const PidLine *a = x, *b = y;

        if (a->pid != b->pid)
                return a->pid < b->pid ? -1 : 1;
        return (a->line > b->line) - (a->line < b->line);
}

/*
 * A failure of a call that concerns only the process asked about: the
 * Varlink error name and the reason, or NULL for any other failure.
 */
static const char *process_error(int r, const char **ret_reason) {
        switch (-r) {
        case ESRCH:
                *ret_reason = "no such process";
                return "io.vmaq.NoSuchProcess";
        case ENXIO:
                *ret_reason = "no address space";
                return "io.vmaq.NoAddressSpace";
        case EACCES:
                *ret_reason = "permission denied";
                return "io.vmaq.PermissionDenied";
        default:
                return NULL;
        }
}

/*
 * --pid-column: one call per pid, in pid order, with that pid's addresses
 * in input order; then every answer in input order,
 * each line (text) or object (JSON) with its pid. A trace has processes
 * that exited since, or that the caller may not ask about: their addresses
 * are answered with the error, the others as usual, and the exit status
 * says that some failed. Any other failure ends the command, as a single
 * call's would.
 */
static ExitStatus normalize_by_pid(const PidAddresses *in, unsigned flags, bool json) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(normalizations_done) Normalizations norms = {};
        size_t n = in->addrs.n, n_groups = 0, n_failed = 0;
        _cleanup_free_ size_t *group = calloc(n, sizeof(size_t)), *index = calloc(n, sizeof(size_t));
        _cleanup_free_ uint64_t *batch = calloc(n, sizeof(uint64_t));
        _cleanup_free_ int *failure = calloc(n, sizeof(int));
        _cleanup_free_ PidLine *order = calloc(n, sizeof(PidLine));
        ExitStatus e;
        int r;

        norms.v = calloc(n, sizeof(*norms.v));
        if (!norms.v || !group || !index || !batch || !failure || !order)
                return out_of_memory();

        /* The lines in pid order, each pid's in input order: a group of lines per pid. */
        for (size_t i = 0; i < n; i++)
                order[i] = (PidLine) { .pid = in->pids[i], .line = i };
        qsort(order, n, sizeof(PidLine), pid_line_compare);

        e = connect_daemon(&c);
        if (e != EXIT_OK)
                return e;

        for (size_t first = 0, end; first < n; first = end) {
                pid_t pid = order[first].pid;
                size_t g = n_groups++;

                for (end = first; end < n && order[end].pid == pid; end++) {
                        group[order[end].line] = g;
                        index[order[end].line] = end - first;
                        batch[end - first] = in->addrs.v[order[end].line];
                }
                r = vmaq_normalize(c, pid, batch, end - first, flags, 0, &norms.v[g]);
                norms.n = g + 1;
                if (r < 0) {
                        const char *reason = NULL;

                        if (!process_error(r, &reason))
                                return call_error(c, r, pid, 0);
                        fprintf(stderr, "%s: no answers for pid %d: %s\n", PROGRAM_NAME, (int) pid, reason);
                        failure[g] = r;
                        n_failed++;
                }
        }

        if (arg_quiet)
                return n_failed > 0 ? EXIT_DAEMON_ERROR : finish_output();
        if (json) {
                json_begin();
                fputs("{\"results\": [", stdout);
        }
        for (size_t i = 0; i < n; i++) {
                const struct vmaq_normalization *nm = norms.v[group[i]];

                if (json && i > 0)
                        fputs(", ", stdout);
                if (failure[group[i]] < 0) {
                        const char *reason = NULL, *name = process_error(failure[group[i]], &reason);

                        if (json)
                                printf("{\"pid\": %d, \"address\": %" PRIu64 ", \"error\": \"%s\"}",
                                       (int) in->pids[i], in->addrs.v[i], name);
                        else
                                printf("%d 0x%012" PRIx64 ": error (%s)\n", (int) in->pids[i], in->addrs.v[i],
                                       reason);
                } else if (json)
                        print_result_json(nm, index[i], flags & VMAQ_NORMALIZE_MAP_FILES, true);
                else {
                        printf("%d ", (int) nm->pid);
                        print_result_human(nm, index[i], flags & VMAQ_NORMALIZE_MAP_FILES);
                }
        }
        if (json) {
                fputs("]}\n", stdout);
                json_end();
        }
        e = finish_output();
        if (e == EXIT_OK && n_failed > 0)
                return EXIT_DAEMON_ERROR;
        return e;
}

static ExitStatus verb_normalize(int argc, char *argv[]) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "no-build-ids", no_argument,       NULL, ARG_NO_BUILD_IDS },
                { "map-files",    no_argument,       NULL, ARG_MAP_FILES },
                { "start-time",   required_argument, NULL, ARG_START_TIME },
                { "pidfd",        no_argument,       NULL, ARG_PIDFD },
                { "maps-fd",      no_argument,       NULL, ARG_MAPS_FD },
                { "format",       required_argument, NULL, ARG_FORMAT },
                { "decimal",      no_argument,       NULL, ARG_DECIMAL },
                { "pid-column",   no_argument,       NULL, ARG_PID_COLUMN },
                {}
        };
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        const char *format = NULL;
        _cleanup_(addresses_done) Addresses addrs = {};
        _cleanup_close_ int fd = -EBADF;
        bool by_pidfd = false, by_maps_fd = false, pid_column = false;
        uint64_t start_time = 0;
        unsigned flags = 0;
        ExitStatus e;
        pid_t pid;
        int o, r;

        optind = 0;
        while ((o = getopt_long(argc, argv, "hq", options, NULL)) >= 0)
                switch (o) {
                case ARG_NO_BUILD_IDS:
                        flags |= VMAQ_NORMALIZE_NO_BUILD_IDS;
                        break;
                case ARG_MAP_FILES:
                        flags |= VMAQ_NORMALIZE_MAP_FILES;
                        break;
                case ARG_START_TIME:
                        if (parse_u64(optarg, 10, &start_time) < 0)
                                return usage_error("invalid --start-time '%s': a decimal number", optarg);
                        flags |= VMAQ_NORMALIZE_PIN;
                        break;
                case ARG_PIDFD:
                        by_pidfd = true;
                        break;
                case ARG_MAPS_FD:
                        by_maps_fd = true;
                        break;
                case ARG_DECIMAL:
                        arg_decimal = true;
                        break;
                case ARG_PID_COLUMN:
                        pid_column = true;
                        break;
                case ARG_FORMAT:
                        if (!strv_contains(output_formats, optarg))
                                return usage_error("invalid --format '%s': text, json, build-id or addr2line",
                                                   optarg);
                        format = optarg;
                        break;
                default:
                        r = parse_common_option(o, optarg, argv);
                        if (r <= 0)
                                return common_option_exit(r);
                }

        if (format && arg_json && strcmp(format, "json") != 0)
                return usage_error("--json and --format=%s exclude each other", format);
        if (by_pidfd && by_maps_fd)
                return usage_error("--pidfd and --maps-fd exclude each other");
        if ((by_pidfd || by_maps_fd) && (flags & VMAQ_NORMALIZE_PIN))
                return usage_error("--start-time needs the PID itself, not --pidfd or --maps-fd");
        if (pid_column) {
                _cleanup_(pid_addresses_done) PidAddresses in = {};

                if (by_pidfd || by_maps_fd || (flags & VMAQ_NORMALIZE_PIN))
                        return usage_error("--pid-column excludes --pidfd, --maps-fd and --start-time");
                if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
                        return usage_error("--pid-column prints text or json, not --format=%s", format);
                if (optind < argc && !(optind + 1 == argc && strcmp(argv[optind], "-") == 0))
                        return usage_error("--pid-column reads \"PID ADDR\" lines from standard input only, "
                                           "unexpected '%s'", argv[optind]);
                e = read_pid_addresses(stdin, &in);
                if (e != EXIT_OK)
                        return e;
                if (in.addrs.n == 0)
                        return usage_error("no addresses given");
                return normalize_by_pid(&in, flags, format ? strcmp(format, "json") == 0 : arg_json != JSON_OFF);
        }
        if (optind >= argc)
                return usage_error("normalize needs a PID and at least one ADDR");
        e = parse_pid_arg(argv[optind], &pid);
        if (e != EXIT_OK)
                return e;
        if (optind + 1 >= argc)
                return usage_error("normalize needs at least one ADDR after the PID");

        for (int i = optind + 1; i < argc; i++) {
                uint64_t addr;

                if (strcmp(argv[i], "-") == 0) {
                        e = read_addresses(stdin, &addrs);
                        if (e != EXIT_OK)
                                return e;
                        continue;
                }
                if (parse_input_address(argv[i], &addr) < 0)
                        return usage_error("invalid ADDR '%s': %s, up to 2^64-1", argv[i], address_syntax());
                if (addresses_add(&addrs, addr) < 0)
                        return out_of_memory();
        }
        if (addrs.n == 0)
                return usage_error("no addresses given");

        /* Opened here, before connecting, with our own access: the daemon takes the fd as it is. */
        if (by_pidfd) {
                fd = (int) syscall(SYS_pidfd_open, pid, 0);
                if (fd < 0)
                        return open_error("a pidfd of", pid);
        } else if (by_maps_fd) {
                char path[sizeof("/proc//maps") + 3 * sizeof(pid_t)];

                snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return open_error("/proc/PID/maps of", pid);
        }

        e = connect_daemon(&c);
        if (e != EXIT_OK)
                return e;
        if (by_pidfd)
                r = vmaq_normalize_pidfd(c, fd, addrs.v, addrs.n, flags, &n);
        else if (by_maps_fd)
                r = vmaq_normalize_maps_fd(c, fd, addrs.v, addrs.n, flags, &n);
        else
                r = vmaq_normalize(c, pid, addrs.v, addrs.n, flags, start_time, &n);
        if (r < 0)
                return call_error(c, r, pid, start_time);

        if (arg_quiet)
                return finish_output();
        if (format ? strcmp(format, "json") == 0 : arg_json != JSON_OFF) {
                json_begin();
                print_normalization_json(n, flags & VMAQ_NORMALIZE_MAP_FILES);
                json_end();
        } else if (format && strcmp(format, "build-id") == 0)
                print_normalization_build_id(n);
        else if (format && strcmp(format, "addr2line") == 0) {
                if (print_normalization_addr2line(n) < 0)
                        return out_of_memory();
        } else
                print_normalization_human(n, flags & VMAQ_NORMALIZE_MAP_FILES);
        return finish_output();
}

/* --- maps ------------------------------------------------------------------------ */

static void print_mappings_json(const struct vmaq_mappings *m) {
        printf("{\"pid\": %d, \"start_time\": %" PRIu64 ", \"mappings\": [", (int) m->pid, m->start_time);
        for (size_t i = 0; i < m->n_mappings; i++) {
                const struct vmaq_mapping *v = vmaq_mapping_get(m, i);
                char perms[sizeof(v->perms)];

                memcpy(perms, v->perms, sizeof(perms));
                perms[sizeof(perms) - 1] = '\0';

                if (i > 0)
                        fputs(", ", stdout);
                printf("{\"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"perms\": ", v->start, v->end);
                json_print_string(perms);
                printf(", \"offset\": %" PRIu64 ", \"dev_major\": %" PRIu32 ", \"dev_minor\": %" PRIu32
                       ", \"inode\": %" PRIu64 ", \"path\": ", v->offset, v->dev_major, v->dev_minor, v->inode);
                json_print_string_or_null(v->path);
                fputs(", \"kind\": ", stdout);
                json_print_string_or_null(v->kind);
                printf(", \"deleted\": %s, \"build_id\": ", v->deleted ? "true" : "false");
                json_print_build_id(v->build_id, v->build_id_len);
                putchar('}');
        }
        fputs("]}\n", stdout);
}

static int hex_width(uint64_t v, int min) {
        int w = 1;

        while (v >= 16) {
                v /= 16;
                w++;
        }
        return w > min ? w : min;
}

static int dec_width(uint64_t v, int min) {
        int w = 1;

        while (v >= 10) {
                v /= 10;
                w++;
        }
        return w > min ? w : min;
}

/*
 * A table like /proc/PID/maps, with a header (unless --no-legend) and each
 * column as wide as its widest cell, start and end as separate columns.
 */
static void print_mappings_human(const struct vmaq_mappings *m) {
        int w_start = (int) strlen("START"), w_end = (int) strlen("END"), w_off = (int) strlen("OFFSET");
        int w_dev = (int) strlen("DEV"), w_inode = (int) strlen("INODE");

        for (size_t i = 0; i < m->n_mappings; i++) {
                const struct vmaq_mapping *v = vmaq_mapping_get(m, i);
                int d = hex_width(v->dev_major, 2) + 1 + hex_width(v->dev_minor, 2);

                w_start = hex_width(v->start, w_start > 8 ? w_start : 8);
                w_end = hex_width(v->end, w_end > 8 ? w_end : 8);
                w_off = hex_width(v->offset, w_off > 8 ? w_off : 8);
                w_dev = d > w_dev ? d : w_dev;
                w_inode = dec_width(v->inode, w_inode);
        }

        if (arg_legend)
                printf("%-*s %-*s %-5s %-*s %-*s %-*s PATH\n", w_start, "START", w_end, "END", "PERMS", w_off,
                       "OFFSET", w_dev, "DEV", w_inode, "INODE");

        for (size_t i = 0; i < m->n_mappings; i++) {
                const struct vmaq_mapping *v = vmaq_mapping_get(m, i);
                char start[17], end[17], off[17], dev[2 * 16 + 2];

                /* Each cell as /proc/PID/maps writes it, padded with blanks to the column. */
                snprintf(start, sizeof(start), "%08" PRIx64, v->start);
                snprintf(end, sizeof(end), "%08" PRIx64, v->end);
                snprintf(off, sizeof(off), "%08" PRIx64, v->offset);
                snprintf(dev, sizeof(dev), "%02" PRIx32 ":%02" PRIx32, v->dev_major, v->dev_minor);
                /* No padding after the last cell of a line: no trailing blanks. */
                printf("%-*s %-*s %-5.4s %-*s %-*s %" PRIu64,
                       w_start, start, w_end, end, v->perms, w_off, off, w_dev, dev, v->inode);
                if (v->path) {
                        printf("%*s ", w_inode - dec_width(v->inode, 1), "");
                        human_print_path(v->path);
                }
                if (v->deleted)
                        fputs(" (deleted)", stdout);
                if (v->build_id_len > 0) {
                        fputs(" (build ID ", stdout);
                        print_hex(v->build_id, v->build_id_len);
                        putchar(')');
                }
                putchar('\n');
        }
}

/* The one argument after the options of @verb: a PID. */
static ExitStatus parse_only_pid(int argc, char *argv[], const char *verb, pid_t *ret) {
        if (optind >= argc)
                return usage_error("%s needs a PID", verb);
        if (optind + 1 < argc)
                return usage_error("unexpected argument '%s' after the PID", argv[optind + 1]);
        return parse_pid_arg(argv[optind], ret);
}

/* --start-time=T of maps and track: clock ticks, and never 0, which means no pin. */
static ExitStatus parse_start_time_arg(const char *arg, uint64_t *ret) {
        if (parse_u64(arg, 10, ret) < 0 || *ret == 0)
                return usage_error("invalid --start-time '%s': a positive decimal number", arg);
        return EXIT_OK;
}

static ExitStatus verb_maps(int argc, char *argv[]) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "exec-only",    no_argument, NULL, ARG_EXEC_ONLY },
                { "no-build-ids", no_argument, NULL, ARG_NO_BUILD_IDS },
                { "start-time",   required_argument, NULL, ARG_START_TIME },
                {}
        };
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *m = NULL;
        uint64_t start_time = 0;
        unsigned flags = 0;
        ExitStatus e;
        pid_t pid;
        int o, r;

        optind = 0;
        while ((o = getopt_long(argc, argv, "hq", options, NULL)) >= 0)
                switch (o) {
                case ARG_EXEC_ONLY:
                        flags |= VMAQ_LIST_EXEC_ONLY;
                        break;
                case ARG_NO_BUILD_IDS:
                        flags |= VMAQ_LIST_NO_BUILD_IDS;
                        break;
                case ARG_START_TIME:
                        e = parse_start_time_arg(optarg, &start_time);
                        if (e != EXIT_OK)
                                return e;
                        break;
                default:
                        r = parse_common_option(o, optarg, argv);
                        if (r <= 0)
                                return common_option_exit(r);
                }

        e = parse_only_pid(argc, argv, "maps", &pid);
        if (e != EXIT_OK)
                return e;

        e = connect_daemon(&c);
        if (e != EXIT_OK)
                return e;
        if (start_time != 0)
                r = vmaq_list_mappings_pinned(c, pid, flags, start_time, &m);
        else
                r = vmaq_list_mappings(c, pid, flags, &m);
        if (r < 0)
                return call_error(c, r, pid, start_time);

        if (arg_quiet)
                return finish_output();
        if (arg_json != JSON_OFF) {
                json_begin();
                print_mappings_json(m);
                json_end();
        } else
                print_mappings_human(m);
        return finish_output();
}

/* --- status ---------------------------------------------------------------------- */

static void print_status_json(const struct vmaq_status *s) {
        fputs("{\"version\": ", stdout);
        json_print_string_or_null(s->version);
        fputs(", \"backend\": ", stdout);
        json_print_string_or_null(s->backend);
        printf(", \"uptime_usec\": %" PRIu64 ", \"connections\": %" PRIu64 ", \"connections_max\": %" PRIu64
               ", \"connections_per_user_max\": %" PRIu64
               ", \"proc_cache\": {\"size\": %" PRIu64 ", \"max\": %" PRIu64 ", \"hits\": %" PRIu64
               ", \"misses\": %" PRIu64 "}, \"build_id_cache\": {\"size\": %" PRIu64 ", \"max\": %" PRIu64
               ", \"hits\": %" PRIu64 ", \"misses\": %" PRIu64 "}"
               ", \"workers\": {\"used\": %" PRIu64 ", \"max\": %" PRIu64 "}"
               ", \"memory\": {\"used\": %" PRIu64 ", \"max\": %" PRIu64 "}"
               ", \"refused\": {\"connections\": %" PRIu64 ", \"user_connections\": %" PRIu64
               ", \"memory\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"idle\": %" PRIu64 "}"
               ", \"requests\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"denied\": %" PRIu64,
               s->uptime_usec, s->connections, s->connections_max, s->connections_per_user_max,
               s->proc_cache_size, s->proc_cache_max, s->proc_cache_hits, s->proc_cache_misses,
               s->build_id_cache_size, s->build_id_cache_max, s->build_id_cache_hits,
               s->build_id_cache_misses, s->workers_used, s->workers_max, s->memory_used, s->memory_max,
               s->refused_connections, s->refused_user_connections, s->refused_memory,
               s->refused_timeouts, s->refused_idle, s->requests, s->errors, s->denied);

        /* A daemon too old to tell says 0: then leave them out. */
        if (s->max_addresses > 0)
                printf(", \"limits\": {\"max_addresses\": %" PRIu64 ", \"max_message_size\": %" PRIu64
                       ", \"max_reply_size\": %" PRIu64 "}", s->max_addresses, s->max_message_size, s->max_reply_size);
        if (s->snapshot_memory_max > 0)
                printf(", \"snapshots\": {\"held\": %" PRIu64 ", \"exited\": %" PRIu64 ", \"memory_used\": %" PRIu64
                       ", \"memory_max\": %" PRIu64 "}", s->snapshots_held, s->snapshots_exited,
                       s->snapshot_memory_used, s->snapshot_memory_max);
        puts("}");
}

/* A duration as systemctl shows it: "1h 2min 3s", whole seconds; "250ms" under one. */
static void format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t sec;
        } units[] = {
                { "w",   7 * 24 * 3600 },
                { "d",   24 * 3600 },
                { "h",   3600 },
                { "min", 60 },
                { "s",   1 },
        };
        uint64_t sec = usec / 1000000;
        size_t n = 0;

        if (sec == 0) {
                snprintf(buf, size, "%" PRIu64 "ms", usec / 1000);
                return;
        }
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(units) && n < size; i++) {
                uint64_t k = sec / units[i].sec;
                int w;

                if (k == 0)
                        continue;
                sec %= units[i].sec;
                w = snprintf(buf + n, size - n, "%s%" PRIu64 "%s", n > 0 ? " " : "", k, units[i].suffix);
                if (w < 0)
                        break;
                n += (size_t) w;
        }
}

/* A size as systemctl shows it: "512B", else one decimal (truncated) of K, M, G, ... of 1024. */
static void format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";
        uint64_t factor = 1024;
        size_t i = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", bytes);
                return;
        }
        while (i + 1 < strlen(suffixes) && bytes / factor >= 1024) {
                factor *= 1024;
                i++;
        }
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%c", bytes / factor, (bytes % factor) * 10 / factor,
                 suffixes[i]);
}

static void print_status_human(const struct vmaq_status *s) {
        char uptime[128], mem_used[32], mem_max[32];

        format_timespan(uptime, sizeof(uptime), s->uptime_usec);
        format_bytes(mem_used, sizeof(mem_used), s->memory_used);
        format_bytes(mem_max, sizeof(mem_max), s->memory_max);

        fputs("version: ", stdout);
        human_print_path(s->version ?: "");
        fputs("\nbackend: ", stdout);
        human_print_path(s->backend ?: "");
        printf("\nuptime: %s\n"
               "connections: %" PRIu64 "\n"
               "connections_max: %" PRIu64 "\n"
               "connections_per_user_max: %" PRIu64 "\n"
               "proc_cache_size: %" PRIu64 "\n"
               "proc_cache_max: %" PRIu64 "\n"
               "proc_cache_hits: %" PRIu64 "\n"
               "proc_cache_misses: %" PRIu64 "\n"
               "build_id_cache_size: %" PRIu64 "\n"
               "build_id_cache_max: %" PRIu64 "\n"
               "build_id_cache_hits: %" PRIu64 "\n"
               "build_id_cache_misses: %" PRIu64 "\n"
               "workers_used: %" PRIu64 "\n"
               "workers_max: %" PRIu64 "\n"
               "memory_used: %s\n"
               "memory_max: %s\n"
               "refused_connections: %" PRIu64 "\n"
               "refused_user_connections: %" PRIu64 "\n"
               "refused_memory: %" PRIu64 "\n"
               "refused_timeouts: %" PRIu64 "\n"
               "refused_idle: %" PRIu64 "\n"
               "requests: %" PRIu64 "\n"
               "errors: %" PRIu64 "\n"
               "denied: %" PRIu64 "\n",
               uptime, s->connections, s->connections_max, s->connections_per_user_max,
               s->proc_cache_size, s->proc_cache_max, s->proc_cache_hits, s->proc_cache_misses,
               s->build_id_cache_size, s->build_id_cache_max, s->build_id_cache_hits,
               s->build_id_cache_misses, s->workers_used, s->workers_max, mem_used, mem_max,
               s->refused_connections, s->refused_user_connections, s->refused_memory,
               s->refused_timeouts, s->refused_idle, s->requests, s->errors, s->denied);

        /* A daemon too old to tell says 0: then leave them out. */
        if (s->max_addresses > 0) {
                char message[32], reply[32];

                format_bytes(message, sizeof(message), s->max_message_size);
                format_bytes(reply, sizeof(reply), s->max_reply_size);
                printf("max_addresses: %" PRIu64 "\n"
                       "max_message_size: %s\n"
                       "max_reply_size: %s\n", s->max_addresses, message, reply);
        }
        if (s->snapshot_memory_max > 0) {
                char used[32], max[32];

                format_bytes(used, sizeof(used), s->snapshot_memory_used);
                format_bytes(max, sizeof(max), s->snapshot_memory_max);
                printf("snapshots_held: %" PRIu64 "\n"
                       "snapshots_exited: %" PRIu64 "\n"
                       "snapshot_memory_used: %s\n"
                       "snapshot_memory_max: %s\n", s->snapshots_held, s->snapshots_exited, used, max);
        }
}

static ExitStatus verb_status(int argc, char *argv[]) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                {}
        };
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        ExitStatus e;
        int o, r;

        optind = 0;
        while ((o = getopt_long(argc, argv, "hq", options, NULL)) >= 0) {
                r = parse_common_option(o, optarg, argv);
                if (r <= 0)
                        return common_option_exit(r);
        }
        if (optind < argc)
                return usage_error("unexpected argument '%s' to status", argv[optind]);

        e = connect_daemon(&c);
        if (e != EXIT_OK)
                return e;
        r = vmaq_get_status(c, &s);
        if (r < 0)
                return call_error(c, r, 0, 0);

        if (arg_quiet)
                return finish_output();
        if (arg_json != JSON_OFF) {
                json_begin();
                print_status_json(s);
                json_end();
        } else
                print_status_human(s);
        return finish_output();
}

/* --- track ------------------------------------------------------------------------ */

static ExitStatus verb_track(int argc, char *argv[]) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "start-time", required_argument, NULL, ARG_START_TIME },
                {}
        };
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        uint64_t start_time = 0, got = 0;
        ExitStatus e;
        pid_t pid;
        int o, r;

        optind = 0;
        while ((o = getopt_long(argc, argv, "hq", options, NULL)) >= 0)
                switch (o) {
                case ARG_START_TIME:
                        e = parse_start_time_arg(optarg, &start_time);
                        if (e != EXIT_OK)
                                return e;
                        break;
                default:
                        r = parse_common_option(o, optarg, argv);
                        if (r <= 0)
                                return common_option_exit(r);
                }
        e = parse_only_pid(argc, argv, "track", &pid);
        if (e != EXIT_OK)
                return e;

        e = connect_daemon(&c);
        if (e != EXIT_OK)
                return e;
        r = vmaq_track(c, pid, start_time, &got);
        if (r < 0)
                return call_error(c, r, pid, start_time);

        if (arg_quiet)
                return finish_output();
        if (arg_json != JSON_OFF) {
                json_begin();
                printf("{\"pid\": %d, \"start_time\": %" PRIu64 "}\n", (int) pid, got);
                json_end();
        } else
                printf("pid %d, start time %" PRIu64 ": snapshot kept\n", (int) pid, got);
        return finish_output();
}

/* --- main ------------------------------------------------------------------------ */

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                {}
        };
        static const struct {
                const char *name;
                ExitStatus (*fn)(int argc, char *argv[]);
        } verbs[] = {
                { "normalize", verb_normalize },
                { "maps",      verb_maps },
                { "status",    verb_status },
                { "track",     verb_track },
        };
        int o, r;

        opterr = 0;

        /* "+": the first non-option is the command; its options are parsed by the command. */
        while ((o = getopt_long(argc, argv, "+hq", options, NULL)) >= 0) {
                r = parse_common_option(o, optarg, argv);
                if (r <= 0)
                        return common_option_exit(r);
        }

        if (optind >= argc)
                return usage_error("missing command: normalize, maps or status");

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[optind], verbs[i].name) == 0)
                        return verbs[i].fn(argc - optind, argv + optind);

        return usage_error("unknown command '%s': normalize, maps or status", argv[optind]);
}
