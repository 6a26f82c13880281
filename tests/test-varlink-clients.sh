#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The two standard Varlink clients against vmaqd: systemd's varlinkctl
# (sd-varlink) and python3-varlink. First the bytes each sends for what a
# user does with it (varlinkctl info, introspect, call, call --more, call
# --oneway; python's Client(...).open('io.vmaq') and its proxy calls, with
# _more and _oneway) are replayed on the daemon's socket, and every reply
# is checked as those clients check it: its keys, "continues" only while a
# "more" call streams and never on an error, nothing at all for a oneway
# call. The interface description must parse as sd-varlink's IDL parser
# and python-varlink's scanner parse it (the stricter of the two where they
# differ), and every reply must match the types it declares, with no field
# it leaves out: a typed client drops those. Then, where installed,
# varlinkctl and the varlink module themselves; SKIP lines otherwise.
#
# Needs python3; skipped (77) otherwise.

set -eu

: "${VMAQD:?}"

command -v python3 >/dev/null || { echo "SKIP: python3 is missing (Debian: python3)"; exit 77; }

work=$(mktemp -d)
daemon=""
target=""
cleanup() {
        set +e
        [ -z "$target" ] || { kill "$target"; wait "$target"; } 2>/dev/null
        [ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; } 2>/dev/null
        rm -rf "$work"
}
trap cleanup EXIT

# One build ID read per call: later modules then say build_id_skipped.
"$VMAQD" --socket "$work/vmaqd.sock" --group "" --max-build-id-reads 1 --log-level debug \
        >"$work/log" 2>&1 &
daemon=$!
i=0
until [ -S "$work/vmaqd.sock" ]; do
        i=$((i + 1))
        kill -0 "$daemon" 2>/dev/null || { cat "$work/log"; echo "FAIL: vmaqd exited"; exit 1; }
        [ $i -le 400 ] || { cat "$work/log"; echo "FAIL: vmaqd did not start"; exit 1; }
        sleep 0.05
done

# The process asked about: ours, so any client of ours may.
sleep 600 &
target=$!

status=0
python3 - "$work/vmaqd.sock" "$target" <<'END' || status=$?
import json
import os
import re
import shutil
import socket
import subprocess
import sys

SOCK, TARGET = sys.argv[1], int(sys.argv[2])


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


# --- the interface description, as sd-varlink and python-varlink parse it ---

NAME_RE = r"[A-Za-z](?:_?[A-Za-z0-9])*"     # fields, enum values: both clients
MEMBER_RE = r"[A-Z][A-Za-z0-9]*"
IFACE_RE = r"[a-z](?:-*[a-z0-9])*(?:\.[a-z0-9](?:-*[a-z0-9])*)+"


class Idl:
    """
    A small parser that refuses what either client refuses: a comment
    anywhere but before a member or a field (sd-varlink), a comma before
    ")" (sd-varlink), space after "?", "[]" or "[string]" (sd-varlink),
    "??" and a one-value enum (python), an empty () but as a method's or an
    error's (sd-varlink), a name used twice, a type that is not defined.
    """

    def __init__(self, text):
        self.s, self.i = text, 0
        self.members = {}
        self.skip(comments=True)
        self.word("interface")
        self.name = self.match(IFACE_RE, "interface name")
        while True:
            self.skip(comments=True)
            if self.i == len(self.s):
                break
            kind = self.match(r"type|method|error", "type, method or error")
            self.skip()
            name = self.match(MEMBER_RE, "member name")
            if name in self.members:
                self.error("%s defined twice" % name)
            if kind == "type":
                t = self.struct_or_enum(empty_ok=False)
            elif kind == "error":
                t = self.struct_or_enum(empty_ok=True)
                if t[0] != "struct":
                    self.error("error %s is an enum" % name)
            else:
                t_in = self.struct_or_enum(empty_ok=True)
                self.skip()
                self.word("->")
                t = (t_in, self.struct_or_enum(empty_ok=True))
                if t_in[0] != "struct" or t[1][0] != "struct":
                    self.error("method %s with an enum" % name)
            self.members[name] = (kind, t)
        for kind, t in self.members.values():
            for u in (t if kind == "method" else (t,)):
                self.resolve(u)

    def error(self, msg):
        line = self.s.count("\n", 0, self.i) + 1
        raise SyntaxError("line %d: %s" % (line, msg))

    def skip(self, comments=False):
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#" and comments:
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                break

    def match(self, regex, what):
        self.skip()
        m = re.compile(regex).match(self.s, self.i)
        if not m or (m.end() < len(self.s) and re.match(r"[A-Za-z0-9_]", self.s[m.end()])):
            self.error("expected %s" % what)
        self.i = m.end()
        return m.group(0)

    def word(self, w):
        self.skip()
        if not self.s.startswith(w, self.i):
            self.error("expected '%s'" % w)
        self.i += len(w)

    def struct_or_enum(self, empty_ok):
        self.word("(")
        fields, values = [], []
        self.skip(comments=True)
        if self.s.startswith(")", self.i):
            if not empty_ok:
                self.error("an empty () is neither a struct nor an enum")
            self.i += 1
            return ("struct", [])
        while True:
            self.skip(comments=True)
            name = self.match(NAME_RE, "field name")
            if name in [f for f, _ in fields] + values:
                self.error("field %s twice" % name)
            self.skip()
            if self.s.startswith(":", self.i):
                self.i += 1
                self.skip()
                fields.append((name, self.field_type()))
            else:
                values.append(name)
            if fields and values:
                self.error("struct and enum fields mixed")
            self.skip()
            if self.s.startswith(",", self.i):
                self.i += 1
                self.skip(comments=True)
                if self.s.startswith(")", self.i):
                    self.error("a comma before ')'")
                continue
            self.word(")")
            break
        if values and len(values) < 2:
            self.error("an enum of one value")
        return ("enum", values) if values else ("struct", fields)

    def field_type(self, maybe_ok=True):
        for mark, kind in (("?", "maybe"), ("[]", "array"), ("[string]", "map")):
            if self.s.startswith(mark, self.i):
                if kind == "maybe" and not maybe_ok:
                    self.error("'??'")
                self.i += len(mark)
                if self.s[self.i] in " \t\r\n":
                    self.error("space after '%s'" % mark)
                return (kind, self.field_type(maybe_ok=kind != "maybe"))
        if self.s.startswith("(", self.i):
            return self.struct_or_enum(empty_ok=False)
        m = re.compile(r"[A-Za-z0-9_]+").match(self.s, self.i)
        if not m:
            self.error("expected a type")
        self.i = m.end()
        t = m.group(0)
        if t in ("bool", "int", "float", "string", "object"):
            return (t,)
        if not re.fullmatch(MEMBER_RE, t):
            self.error("bad type name %s" % t)
        return ("named", t)

    def resolve(self, t):
        if t[0] == "named":
            if self.members.get(t[1], ("",))[0] != "type":
                raise SyntaxError("type %s is not defined" % t[1])
        elif t[0] in ("maybe", "array", "map"):
            self.resolve(t[1])
        elif t[0] == "struct":
            for _, u in t[1]:
                self.resolve(u)

    def check(self, t, v, path):
        """That @v is of type @t: each field declared, of its type."""
        k = t[0]
        if k == "maybe":
            if v is not None:
                self.check(t[1], v, path)
        elif k == "named":
            self.check(self.members[t[1]][1], v, path)
        elif k == "bool":
            ok(isinstance(v, bool), path, "bool", v)
        elif k == "int":
            ok(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64, path, "int", v)
        elif k == "float":
            ok(isinstance(v, (int, float)) and not isinstance(v, bool), path, "float", v)
        elif k == "string":
            ok(isinstance(v, str), path, "string", v)
        elif k == "object":
            ok(isinstance(v, dict), path, "object", v)
        elif k == "enum":
            ok(isinstance(v, str) and v in t[1], path, "one of " + "|".join(t[1]), v)
        elif k == "array":
            ok(isinstance(v, list), path, "array", v)
            for n, e in enumerate(v):
                self.check(t[1], e, "%s[%d]" % (path, n))
        elif k == "map":
            ok(isinstance(v, dict), path, "map", v)
            for key, e in v.items():
                self.check(t[1], e, "%s[%s]" % (path, key))
        else:
            ok(isinstance(v, dict), path, "struct", v)
            declared = dict(t[1])
            for key in v:
                if key not in declared:
                    fail("%s.%s is sent but not declared in the IDL: typed clients drop it" % (path, key))
            for key, u in t[1]:
                if key in v:
                    self.check(u, v[key], path + "." + key)
                elif u[0] != "maybe":
                    fail("%s.%s is declared %s but missing" % (path, key, u[0]))

    def check_in(self, method, params):
        self.check(self.members[method][1][0], params, method + "()")

    def check_out(self, method, params):
        self.check(self.members[method][1][1], params, method + "() reply")

    def check_error(self, qualified, params):
        name = qualified.rsplit(".", 1)[1]
        if self.members.get(name, ("",))[0] != "error":
            fail("error %s is not declared in %s" % (qualified, self.name))
        self.check(self.members[name][1], params, qualified)


def ok(cond, path, want, v):
    if not cond:
        fail("%s is not %s: %r" % (path, want, v))


# --- the wire ---------------------------------------------------------------

def strict_object(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        fail("a key twice in %r" % keys)
    return dict(pairs)


def reject_constant(c):
    fail("not JSON: %s" % c)


class Connection:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(SOCK)
        self.buf = b""

    def send(self, raw):
        assert raw.endswith(b"\0")
        self.s.sendall(raw)

    def receive(self):
        """One reply, checked as sd-varlink and python-varlink check one."""
        while b"\0" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                fail("the daemon closed the connection; it had sent %r" % self.buf[:200])
            self.buf += data
        raw, self.buf = self.buf.split(b"\0", 1)
        reply = json.loads(raw.decode("utf-8"), object_pairs_hook=strict_object,
                           parse_constant=reject_constant)
        if not isinstance(reply, dict):
            fail("a reply that is not an object: %r" % raw[:200])
        for key in reply:
            if key not in ("error", "parameters", "continues"):
                fail("reply key %r: sd-varlink drops the connection" % key)
        if "error" in reply and not isinstance(reply["error"], str):
            fail("error is not a string")
        if not isinstance(reply.get("parameters"), dict):
            fail("parameters is not an object: %r" % raw[:200])
        if "continues" in reply and reply["continues"] is not True:
            fail("continues is there but not true: %r" % reply["continues"])
        if "error" in reply and "continues" in reply:
            fail("an error with continues")
        return reply

    def nothing_pending(self):
        self.s.setblocking(False)
        try:
            data = self.s.recv(65536)
        except BlockingIOError:
            data = b""
        finally:
            self.s.settimeout(60)
        if self.buf or data:
            fail("unexpected bytes: %r" % (self.buf + data)[:200])

    def close(self):
        self.s.close()


def sd_format(message):
    """How sd_json_variant_format(m, 0) writes a message sd-varlink builds."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\0"


def py_format(message):
    """How python-varlink writes one: json.dumps() with its defaults."""
    return json.dumps(message).encode() + b"\0"


def sd_call(method, parameters=None, flag=None):
    """sd_varlink_call/observe/send: parameters left out when empty."""
    m = {"method": method}
    if parameters:
        m["parameters"] = parameters
    if flag:
        m[flag] = True
    return sd_format(m)


def single(conn, raw):
    conn.send(raw)
    reply = conn.receive()
    if "continues" in reply:
        fail("continues on the reply to a call without more: %r" % raw[:100])
    return reply


def stream(conn, raw):
    """A call with more: replies until one without continues."""
    conn.send(raw)
    replies = [conn.receive()]
    while replies[-1].get("continues"):
        replies.append(conn.receive())
    return replies


maps = [line.split() for line in open("/proc/%d/maps" % TARGET)]
exec_starts = [int(m[0].split("-")[0], 16) for m in maps if m[1].startswith("r-x")]
if len(exec_starts) < 2:
    fail("the target has fewer than two executable mappings")

# --- varlinkctl introspect and info: GetInfo, then each interface, one connection ---
c = Connection()
info = single(c, sd_call("org.varlink.service.GetInfo"))
ifaces = info["parameters"].get("interfaces")
ok(isinstance(ifaces, list) and all(isinstance(x, str) for x in ifaces), "interfaces", "[]string", ifaces)
if sorted(ifaces) != ["io.vmaq", "org.varlink.service"]:
    fail("interfaces: %r" % ifaces)
idl = {}
descriptions = []
for name in sorted(ifaces):
    r = single(c, sd_call("org.varlink.service.GetInterfaceDescription", {"interface": name}))
    if "error" in r:
        fail("GetInterfaceDescription(%s): %r" % (name, r))
    try:
        idl[name] = Idl(r["parameters"]["description"])
    except SyntaxError as e:
        fail("%s does not parse: %s" % (name, e))
    if idl[name].name != name:
        fail("the description of %s says interface %s" % (name, idl[name].name))
    descriptions.append(r["parameters"])
c.close()
svc, vmaq = idl["org.varlink.service"], idl["io.vmaq"]
svc.check_out("GetInfo", info["parameters"])
for d in descriptions:
    svc.check_out("GetInterfaceDescription", d)
print("introspect: GetInfo and both descriptions parse and match their types")

# --- varlinkctl call: one reply, without continues ---
def hexes(addrs):
    return ["0x%x" % a for a in addrs]


c = Connection()
params = {"pid": TARGET, "addresses": hexes(exec_starts) + ["16"]}
vmaq.check_in("Normalize", params)
r = single(c, sd_call("io.vmaq.Normalize", params))
if "error" in r:
    fail("Normalize: %r" % r)
vmaq.check_out("Normalize", r["parameters"])
res = r["parameters"]["results"]
if len(res) != len(exec_starts) + 1 or res[-1] != {"unknown": "unmapped"} or "module" not in res[0]:
    fail("Normalize results: %r" % res)
if not any(m.get("build_id_skipped") for m in r["parameters"]["modules"]):
    print("note: no module says build_id_skipped, its declaration is not checked")
# The same addresses as JSON integers, as libvmaq sends them: the same answer.
r2 = single(c, sd_call("io.vmaq.Normalize", {"pid": TARGET, "addresses": exec_starts + [16]}))
if [x.get("offset") for x in r2["parameters"]["results"]] != [x.get("offset") for x in res]:
    fail("strings and integers answered differently: %r %r" % (res, r2))
for method, p in (("GetStatus", None), ("Track", {"pid": TARGET}),
                  ("ListMappings", {"pid": TARGET, "exec_only": True})):
    r = single(c, sd_call("io.vmaq." + method, p))
    if "error" in r:
        fail("%s: %r" % (method, r))
    vmaq.check_out(method, r["parameters"])
r = single(c, sd_call("io.vmaq.Normalize", {"pid": TARGET, "addresses": ["0x"]}))
if r.get("error") != "org.varlink.service.InvalidParameter":
    fail("a bad address string: %r" % r)
svc.check_error(r["error"], r["parameters"])
c.close()
print("call: Normalize with string and integer addresses, GetStatus, Track, ListMappings match the IDL")

# --- varlinkctl call --more: parts with continues, the last without ---
def check_stream(replies, n_addresses, idl_, what):
    modules = 0
    results = 0
    for n, r in enumerate(replies):
        if "error" in r:
            fail("%s: %r" % (what, r))
        last = n == len(replies) - 1
        if last == ("continues" in r):
            fail("%s: reply %d of %d %s continues" % (what, n + 1, len(replies), "has" if last else "lacks"))
        idl_.check_out("Normalize", r["parameters"])
        modules += len(r["parameters"]["modules"])
        for x in r["parameters"]["results"]:
            if "module" in x and x["module"] >= modules:
                fail("%s: module %d of %d sent so far" % (what, x["module"], modules))
        results += len(r["parameters"]["results"])
    if results != n_addresses:
        fail("%s: %d results for %d addresses" % (what, results, n_addresses))


many = [a + (n * 16) % 4096 for n in range(5000) for a in exec_starts][:10000]
c = Connection()
replies = stream(c, sd_call("io.vmaq.Normalize", {"pid": TARGET, "addresses": hexes(many)}, "more"))
if len(replies) < 2:
    fail("10000 addresses with more came in %d reply" % len(replies))
check_stream(replies, len(many), vmaq, "--more")
n_parts = len(replies)
# One part, a method that does not stream, an error: each one reply, without continues.
for method, p in (("io.vmaq.Normalize", {"pid": TARGET, "addresses": hexes(exec_starts[:1])}),
                  ("io.vmaq.GetStatus", None), ("org.varlink.service.GetInfo", None)):
    replies = stream(c, sd_call(method, p, "more"))
    if len(replies) != 1 or "error" in replies[0]:
        fail("%s with more: %r" % (method, replies))
    (vmaq if method.startswith("io.") else svc).check_out(method.split(".")[-1], replies[0]["parameters"])
dead = subprocess.Popen(["true"])
dead.wait()
replies = stream(c, sd_call("io.vmaq.Normalize", {"pid": dead.pid, "addresses": ["0x1000"]}, "more"))
if len(replies) != 1 or replies[0].get("error") != "io.vmaq.NoSuchProcess":
    fail("more about a gone pid: %r" % replies)
vmaq.check_error(replies[0]["error"], replies[0]["parameters"])
c.close()
print("call --more: %d parts, continues on all but the last; single replies end without it" % n_parts)

# --- varlinkctl call --oneway: the call, then the connection closes; nothing comes back ---
c = Connection()
c.send(sd_call("io.vmaq.Track", {"pid": TARGET}, "oneway"))
c.send(sd_call("io.vmaq.Normalize", {"pid": dead.pid, "addresses": ["0x1000"]}, "oneway"))
r = single(c, sd_call("org.varlink.service.GetInfo"))
if "interfaces" not in r["parameters"]:
    fail("the first reply after two oneway calls is not GetInfo's: %r" % r)
c.nothing_pending()
c.close()
c = Connection()
c.send(sd_call("io.vmaq.Track", {"pid": TARGET}, "oneway"))
c.close()
print("call --oneway: no reply, not even to an error")

# --- python-varlink: Client(address=...).open('io.vmaq') and proxy calls ---
def py_params(method, kwargs):
    """filter_params(): the declared fields given, in the IDL's order."""
    return {f: kwargs[f] for f, _ in vmaq.members[method][1][0][1] if f in kwargs}


c = Connection()
r = single(c, py_format({"method": "org.varlink.service.GetInterfaceDescription",
                         "parameters": {"interface": "io.vmaq"}}))
try:
    pyidl = Idl(r["parameters"]["description"])
except SyntaxError as e:
    fail("io.vmaq does not parse: %s" % e)
p = py_params("Normalize", {"pid": TARGET, "addresses": hexes(exec_starts) + ["16"]})
r = single(c, py_format({"method": "io.vmaq.Normalize", "parameters": p}))
if "error" in r:
    fail("python Normalize: %r" % r)
pyidl.check_out("Normalize", r["parameters"])
r = single(c, py_format({"method": "io.vmaq.GetStatus"}))
pyidl.check_out("GetStatus", r["parameters"])
p = py_params("Normalize", {"pid": TARGET, "addresses": hexes(many), "build_ids": False})
replies = stream(c, py_format({"method": "io.vmaq.Normalize", "more": True, "parameters": p}))
check_stream(replies, len(many), pyidl, "python _more=True")
replies = stream(c, py_format({"method": "io.vmaq.GetStatus", "more": True, "parameters": {}}))
if len(replies) != 1:
    fail("python GetStatus(_more=True): %r" % replies)
c.send(py_format({"method": "io.vmaq.Track", "oneway": True, "parameters": {"pid": TARGET}}))
r = single(c, py_format({"method": "io.vmaq.ListMappings", "parameters": {"pid": TARGET}}))
pyidl.check_out("ListMappings", r["parameters"])
c.nothing_pending()
c.close()
print("python-varlink: open('io.vmaq'), calls, _more=True and _oneway=True as it sends them")

# --- the real clients, where installed ---
tool = shutil.which("varlinkctl")
version = None
if tool:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"systemd (\d+)", out)
    version = int(m.group(1)) if m else None
if not tool:
    print("SKIP: varlinkctl is not installed (systemd 255 or later)")
elif version is None or version < 255:
    print("SKIP: varlinkctl of systemd %s, not 255 or later" % version)
else:
    def vl(*args, stdin=None):
        p = subprocess.run([tool, "--no-pager"] + list(args), input=stdin, capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0 or "Failed" in p.stderr:
            fail("varlinkctl %s: exit %d\n%s%s" % (" ".join(args)[:200], p.returncode, p.stdout[:2000], p.stderr))
        return p.stdout
    vl("info", SOCK)
    if "method Normalize" not in vl("introspect", SOCK, "io.vmaq"):
        fail("varlinkctl introspect: no Normalize")
    one = json.dumps({"pid": TARGET, "addresses": hexes(exec_starts)})
    if json.loads(vl("call", "--json=short", SOCK, "io.vmaq.Normalize", one))["pid"] != TARGET:
        fail("varlinkctl call: not about the target")
    # Too long for an argument: the parameters on standard input.
    out = vl("call", "--more", "--json=short", SOCK, "io.vmaq.Normalize",
             stdin=json.dumps({"pid": TARGET, "addresses": hexes(many)}))
    parts = [json.loads(x) for x in out.replace("\x1e", "\n").splitlines() if x.strip()]
    if sum(len(x["results"]) for x in parts) != len(many):
        fail("varlinkctl call --more: %d parts with the wrong number of results" % len(parts))
    vl("call", "--oneway", SOCK, "io.vmaq.Track", json.dumps({"pid": TARGET}))
    print("varlinkctl (systemd %d): info, introspect, call, call --more, call --oneway" % version)

try:
    import varlink
except ImportError:
    print("SKIP: the python varlink module is not installed (python3-varlink)")
else:
    client = varlink.Client(address="unix:" + SOCK)
    with client.open("io.vmaq") as proxy:
        r = proxy.Normalize(pid=TARGET, addresses=hexes(exec_starts) + ["16"])
        if len(r["results"]) != len(exec_starts) + 1 or r["results"][-1] != {"unknown": "unmapped"}:
            fail("python-varlink Normalize: %r" % r)
        n = sum(len(x["results"]) for x in proxy.Normalize(pid=TARGET, addresses=hexes(many), _more=True))
        if n != len(many):
            fail("python-varlink Normalize(_more=True): %d results" % n)
        if proxy.GetStatus()["connections"] < 1:
            fail("python-varlink GetStatus")
        proxy.Track(pid=TARGET, _oneway=True)
        if not proxy.ListMappings(pid=TARGET, exec_only=True)["mappings"]:
            fail("python-varlink ListMappings")
    print("python-varlink%s: open('io.vmaq'), Normalize, _more=True, GetStatus, _oneway=True, ListMappings"
          % (" " + varlink.__version__ if hasattr(varlink, "__version__") else ""))
print("ok")
END

kill -0 "$daemon" || { cat "$work/log"; echo "FAIL: vmaqd died"; exit 1; }
if [ $status -ne 0 ]; then
        tail -n 50 "$work/log"
        exit 1
fi
echo "varlinkctl's and python-varlink's calls are answered as they expect"
