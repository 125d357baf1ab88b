//! Python clients of the suite, run with the system Python (`python3-psycopg2`). Each prints
//! one JSON object on its last line. None is given a password.

/// psycopg2: masked rows (client-side parameters, simple protocol), then a `pg_sleep(30)`
/// cancelled from another thread with `conn.cancel()` once a second session sees it running,
/// then the connection is used again. Args: port.
pub const PSYCOPG: &str = r#"
import json, os, sys, threading, time
import psycopg2
port = int(sys.argv[1])
out = {"pid": os.getpid()}
def connect():
    return psycopg2.connect(host="127.0.0.1", port=port, dbname="orders", user="scram_user",
                            sslmode="disable")
conn = connect()
cur = conn.cursor()
cur.execute("select id, name, email, card_number, notes from customers where id <= %s order by id",
            (6,))
out["rows"] = [list(r) for r in cur.fetchall()]
conn.rollback()

cancelled = []
def cancel():
    # Only once the server runs the statement: a CancelRequest that arrives before it is
    # ignored, and a fixed delay can be too short on a loaded machine.
    try:
        watch = connect()
        watch.autocommit = True
        wcur = watch.cursor()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            wcur.execute("select count(*) from pg_catalog.pg_stat_activity where state = 'active' "
                         "and pid <> pg_backend_pid() and strpos(query, 'pg_sleep(30)') > 0")
            if wcur.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            out["watch_error"] = "pg_sleep(30) not seen running"
        watch.close()
    except psycopg2.Error as e:
        out["watch_error"] = str(e)
    cancelled.append(time.monotonic())
    conn.cancel()

t = threading.Thread(target=cancel)
t.start()
start = time.monotonic()
try:
    cur.execute("select pg_sleep(30)")
    out["sleep"] = "completed"
except psycopg2.Error as e:
    out["sleep"] = e.pgcode
    out["sleep_error"] = str(e)
end = time.monotonic()
out["sleep_s"] = end - start
out["cancel_s"] = end - cancelled[0] if cancelled else None
t.join()
conn.rollback()
cur.execute("select count(*) from customers")
out["after"] = cur.fetchone()[0]
conn.close()
print(json.dumps(out))
"#;

/// Raw protocol client. Opens a psycopg2 session (kept open), then raw sessions that send a
/// startup packet without any password, read up to ReadyForQuery, send `argv[2]` (hex) as a
/// malformed message and read until the connection ends; then uses the first session again and
/// opens a new one. Everything received on the raw sockets is returned (base64).
/// Args: port, hex bytes of the malformed message (may be empty: just a `select 1`).
pub const RAW: &str = r#"
import base64, json, os, socket, struct, sys
import psycopg2
port = int(sys.argv[1])
garbage = bytes.fromhex(sys.argv[2])
out = {"pid": os.getpid()}

def session():
    c = psycopg2.connect(host="127.0.0.1", port=port, dbname="orders", user="scram_user",
                         sslmode="disable")
    c.autocommit = True
    return c

def count(c):
    cur = c.cursor()
    cur.execute("select count(*) from accounts")
    return cur.fetchone()[0]

def fields(body):
    f = {}
    for part in body.split(b"\0"):
        if part:
            f[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return f

def read(s, buf, stop):
    msgs = []
    while True:
        while len(buf) >= 5:
            n = struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + n:
                break
            kind, body, buf = chr(buf[0]), buf[5:1 + n], buf[1 + n:]
            msgs.append((kind, body))
            if kind in stop:
                return msgs, buf, "stop"
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return msgs, buf, "timeout"
        except OSError as e:
            return msgs, buf, type(e).__name__
        if not chunk:
            return msgs, buf, "eof"
        received.append(chunk)
        buf += chunk

received = []
other = session()
out["before"] = count(other)

s = socket.create_connection(("127.0.0.1", port), timeout=10)
params = b"user\0scram_user\0database\0orders\0application_name\0raw\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
msgs, buf, how = read(s, b"", "ZE")
out["startup"] = [k for k, _ in msgs]
out["auth"] = [struct.unpack("!i", b[:4])[0] for k, b in msgs if k == "R"]
out["startup_errors"] = [fields(b) for k, b in msgs if k == "E"]
if garbage:
    s.sendall(garbage)
else:
    q = b"select 1\0"
    s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
msgs, buf, how = read(s, buf, "Z" if not garbage else "")
out["reply"] = [k for k, _ in msgs]
out["reply_errors"] = [fields(b) for k, b in msgs if k == "E"]
out["end"] = how
s.close()
out["received"] = base64.b64encode(b"".join(received)).decode()

out["other_after"] = count(other)
other.close()
out["new_after"] = count(session())
print(json.dumps(out))
"#;

/// Raw protocol client driven by a script: sends a startup packet (scram_user, database
/// `argv[3]` or orders, the parameters of the JSON object `argv[4]` if given, no password),
/// reads up to ReadyForQuery, then runs the steps of `argv[2]` (JSON):
/// - `{"send": [[type, field…], …]}`: the messages concatenated and sent at once (pipelined):
///   `["P", name, sql]` (no parameter types), `["B", portal, statement]` (no parameters, text
///   results), `["D", "P" or "S", name]`, `["E", portal]` (all rows), `["Q", sql]`,
///   `["d", text]`, `["f", reason]`, `["F", oid]` (FunctionCall without arguments),
///   `["C", "P" or "S", name]` (Close), `["S"]`,
///   `["H"]`, `["c"]`, `["X"]`; with `"repeat": n`, the messages `n` times, `{i}` in their
///   strings replaced by 0, 1, …;
/// - `{"until": types}`: reads messages until one of `types` arrives (`"count"` of them, if
///   given; 5 s at most, or `"within"` seconds);
/// - `{"signal": path, "wait": path}`: creates the first file, then waits for the second
///   (30 s at most), so a test can act at that point of the script;
/// - `{"drain": seconds}`: reads whatever arrives within that time (less if the connection
///   ends);
/// - `{"sleep": seconds}`.
///
/// Prints `pid`, `startup` (types), per step its `got` (types), `errors` (`C` and `M` of each
/// ErrorResponse), `rows` (DataRow values) and `how` (`stop`, `quiet`, `timeout`, `eof`,
/// `reset`), and `end`: `open`, `eof`, `reset` or `timeout` (the steps after an end are not
/// run). Args: port, steps.
pub const SCRIPT: &str = r#"
import json, os, socket, struct, sys, time
port, steps = int(sys.argv[1]), json.loads(sys.argv[2])

z = lambda s: s.encode() + b"\0"
h = lambda n: struct.pack("!h", n)
ENCODE = {
    "P": lambda name, sql: z(name) + z(sql) + h(0),
    "B": lambda portal, stmt: z(portal) + z(stmt) + h(0) + h(0) + h(0),
    "D": lambda kind, name: kind.encode() + z(name),
    "E": lambda portal: z(portal) + struct.pack("!i", 0),
    "Q": lambda sql: z(sql),
    "d": lambda text: text.encode(),
    "f": lambda reason: z(reason),
    "C": lambda kind, name: kind.encode() + z(name),
    # FunctionCall of function `oid` without arguments, text result.
    "F": lambda oid: struct.pack("!Ihhh", oid, 0, 0, 0),
    "S": lambda: b"", "H": lambda: b"", "c": lambda: b"", "X": lambda: b"",
}

def message(kind, *fields):
    body = ENCODE[kind](*fields)
    return kind.encode() + struct.pack("!i", 4 + len(body)) + body

def error_fields(body):
    f = {chr(p[0]): p[1:].decode("utf-8", "replace") for p in body.split(b"\0") if p}
    return {"C": f.get("C"), "M": f.get("M")}

def data_row(body):
    values, at = [], 2
    for _ in range(struct.unpack("!h", body[:2])[0]):
        n = struct.unpack("!i", body[at:at + 4])[0]
        at += 4
        values.append(None if n < 0 else body[at:at + n].decode("utf-8", "replace"))
        at += max(n, 0)
    return values

buf = b""
def read(stop, seconds, count=1):
    """Reads messages until `count` of the types in `stop` came, for `seconds` at most."""
    global buf
    got = {"got": [], "errors": [], "rows": []}
    seen = 0
    deadline = time.monotonic() + seconds
    while True:
        while len(buf) >= 5:
            n = 1 + struct.unpack("!i", buf[1:5])[0]
            if len(buf) < n:
                break
            kind, body, buf = chr(buf[0]), buf[5:n], buf[n:]
            got["got"].append(kind)
            if kind == "E":
                got["errors"].append(error_fields(body))
            if kind == "D":
                got["rows"].append(data_row(body))
            if kind in stop:
                seen += 1
                if seen >= count:
                    got["how"] = "stop"
                    return got
        left = deadline - time.monotonic()
        if left <= 0:
            got["how"] = "timeout" if stop else "quiet"
            return got
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = None
        if not chunk:
            got["how"] = "eof" if chunk == b"" else "reset"
            return got
        buf += chunk

out = {"pid": os.getpid(), "steps": [], "end": "open"}
s = socket.create_connection(("127.0.0.1", port), timeout=5)
database = sys.argv[3].encode() if len(sys.argv) > 3 else b"orders"
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
params = b"user\0scram_user\0database\0" + database + b"\0application_name\0raw-script\0"
params += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in extra.items()) + b"\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
start = read("ZE", 5)
out["startup"] = start["got"]
out["startup_errors"] = start["errors"]
if start["got"][-1:] != ["Z"]:
    out["end"] = start["how"]
    steps = []
for step in steps:
    if "send" in step:
        n = step.get("repeat", 1)
        at = lambda f, i: f.replace("{i}", str(i)) if isinstance(f, str) else f
        batch = [[at(f, i) for f in m] for i in range(n) for m in step["send"]]
        try:
            s.sendall(b"".join(message(*m) for m in batch))
            done = {"sent": len(batch)}
        except (BrokenPipeError, ConnectionResetError) as e:
            done = {"how": "eof" if isinstance(e, BrokenPipeError) else "reset"}
    elif "until" in step:
        done = read(step["until"], step.get("within", 5), step.get("count", 1))
    elif "signal" in step:
        open(step["signal"], "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(step["wait"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        done = {} if os.path.exists(step["wait"]) else {"how": "timeout"}
    elif "drain" in step:
        done = read("", step["drain"])
    else:
        time.sleep(step["sleep"])
        done = {}
    out["steps"].append(done)
    if done.get("how") in ("eof", "reset", "timeout"):
        out["end"] = done["how"]
        break
s.close()
print(json.dumps(out))
"#;
