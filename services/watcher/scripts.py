"""The programs the watcher sends to a device, as ``sh -c`` and ``python3 -c`` arguments (see
``remote`` for their output formats). Nothing is installed or left on the device."""

# Runs "$@" with stdin from /dev/null and stops it when our stdin (the SSH channel) closes:
# without a pty, sshd leaves a command running after its channel is gone.
KEEPALIVE_SH = r"""exec 3<&0 0</dev/null
"$@" 3<&- & p=$!
{ cat <&3 >/dev/null 2>&1; kill "$p" 2>/dev/null; } &
w=$!
exec 3<&-
wait "$p"; s=$?
kill "$w" 2>/dev/null
exit "$s"
"""

# Shared by the python3 programs below: a file's owner name, and its digest and bytes read
# (with its content when it is at most ``limit`` bytes).
FILES_PY = r"""
users = {}
def owner(uid):
    if uid not in users:
        try:
            users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            users[uid] = str(uid)
    return users[uid]
def content(fd, size, limit):
    h, n, keep = hashlib.sha256(), 0, ([] if 0 <= size <= limit else None)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        if keep is not None:
            keep.append(b)
            if n > limit:
                keep = None
    return h.hexdigest(), n, None if keep is None else b"".join(keep)
"""

# The python3 watch loop: argv[1] is a JSON request (see watch_argv); the rest is either pairs
# "-r|-n" DIR (its own ctypes inotify) or an inotifywait command whose output it reads (as its
# child, stopped with it). After each batch of events it reads every matching file they name and
# sends it at once, so a change needs no other command. Output: see the module docstring.
INOTIFY_PY = r"""
import base64, ctypes, ctypes.util, hashlib, json, os, pwd, re, signal, stat, struct, subprocess, sys
q = json.loads(sys.argv[1])
fre = re.compile(q["files"])
ign = re.compile(q["ignore"]) if q["ignore"] else None
limit = q["limit"]
out = sys.stdout.buffer
libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
""" + FILES_PY + r"""
def probe(p):
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return [b"P", p, b"", b"", b"-"]
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return [b"P", p, b"", b"", b"-"]
        digest, n, data = content(fd, st.st_size, limit)
        ns = st.st_mtime_ns
        meta = "%d %d.%09d %s %o" % (n, ns // 10**9, ns % 10**9, owner(st.st_uid), stat.S_IMODE(st.st_mode))
        return [b"P", p, meta.encode(), digest.encode(), b"-" if data is None else base64.b64encode(data)]
    except OSError:
        return [b"P", p, b"", b"", b"-"]
    finally:
        os.close(fd)
def emit(events):
    toks, files = [], {}
    for p, names in events:
        toks += [b"E", p, names]
        if p and b"ISDIR" not in names and b"Q_OVERFLOW" not in names:
            s = os.fsdecode(p.rstrip(b"/"))
            if fre.fullmatch(s) and not (ign and ign.search(s)):
                files[p.rstrip(b"/")] = 1
    for p in files:
        toks += probe(p)
    out.write(b"".join(t + b"\0" for t in toks))
    out.flush()
args = sys.argv[2:]
if args[0] not in ("-r", "-n"):
    def orphaned():
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the child ends with this process
    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=orphaned)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rest = b""
    try:
        while True:
            data = os.read(child.stdout.fileno(), 1 << 16)
            if not data:
                break
            toks = (rest + data).split(b"\0")
            n = (len(toks) - 1) // 2 * 2
            rest = b"\0".join(toks[n:])
            emit([(toks[i], toks[i + 1]) for i in range(0, n, 2)])
    finally:
        child.terminate()
    sys.exit(child.wait())
NAMES = {0x4: "ATTRIB", 0x8: "CLOSE_WRITE", 0x40: "MOVED_FROM", 0x80: "MOVED_TO", 0x100: "CREATE",
         0x200: "DELETE", 0x400: "DELETE_SELF", 0x800: "MOVE_SELF", 0x4000: "Q_OVERFLOW", 0x40000000: "ISDIR"}
MASK = 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
fd = libc.inotify_init1(0o2000000)
if fd < 0:
    sys.exit("inotify_init1: " + os.strerror(ctypes.get_errno()))
wds = {}
def add(path, rec):
    wd = libc.inotify_add_watch(fd, path, MASK)
    if wd < 0:
        sys.stderr.write("cannot watch %r: %s\n" % (path, os.strerror(ctypes.get_errno())))
        return
    wds[wd] = (path, rec)
    if rec:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                add(e.path, True)
for i in range(0, len(args) - 1, 2):
    add(os.fsencode(args[i + 1]), args[i] == "-r")
sys.stderr.write("Watches established.\n")
sys.stderr.flush()
while True:
    data = os.read(fd, 1 << 16)
    i, events = 0, []
    while i + 16 <= len(data):
        wd, m, _, n = struct.unpack_from("iIII", data, i)
        name = data[i + 16:i + 16 + n].rstrip(b"\0")
        i += 16 + n
        if m & 0x4000:
            events.append((b"", b"Q_OVERFLOW"))
            continue
        w = wds.get(wd)
        if w is None:
            continue
        if m & 0x8000:
            del wds[wd]
            continue
        p = os.path.join(w[0], name) if name else w[0]
        if w[1] and m & 0x40000000 and m & 0x180:
            add(p, True)
        events.append((p, ",".join(v for k, v in NAMES.items() if m & k).encode()))
    emit(events)
"""

# Without python3, inotifywait's output goes through xargs: one short sh per event (args:
# FILE_REGEX LIMIT PATH EVENTS) prints the event, then the file's record when it matches.
EVENT_SH = r"""fre=$1 l=$2 f=$3 e=$4
printf 'E\0%s\0%s\0' "$f" "$e"
case ",$e," in *,ISDIR,*|*,CREATE,*|*,Q_OVERFLOW,*) exit 0;; esac
case $f in *'
'*) exit 0;; esac
printf '%s\n' "$f" | grep -Eqx -e "$fre" || exit 0
if [ -f "$f" ] && m=$(stat -L -c '%s %.9Y %U %a' -- "$f" 2>/dev/null); then
  if [ "${m%% *}" -le "$l" ]; then
    if c=$(base64 -w0 < "$f" 2>/dev/null); then printf 'P\0%s\0%s\0\0%s\0' "$f" "$m" "$c"; exit 0; fi
  elif h=$(sha256sum < "$f" 2>/dev/null); then printf 'P\0%s\0%s\0%s\0-\0' "$f" "$m" "${h%% *}"; exit 0; fi
fi
printf 'P\0%s\0\0\0-\0' "$f"
"""

# args: EVENT_SH FILE_REGEX LIMIT INOTIFYWAIT-COMMAND... The pipeline runs in the background so
# that TERM (from KEEPALIVE_SH) interrupts `wait`; the trap then stops the whole process group,
# which is this channel's own (sshd and the local transport start each command in a new session).
PIPE_SH = r"""s=$1 fre=$2 l=$3; shift 3
trap 'trap - TERM; kill 0' TERM
"$@" | xargs -0 -r -n 2 sh -c "$s" sh "$fre" "$l" &
wait $!
"""

# Scanner and prober with python3: argv[1] is a JSON request (see scan_argv / probe_argv).
SCAN_PY = r"""
import base64, hashlib, json, os, pwd, re, stat, sys
q = json.loads(sys.argv[1])
out = sys.stdout.buffer
""" + FILES_PY + r"""
def put(*fields):
    out.write(b"".join((f if isinstance(f, bytes) else os.fsencode(f)) + b"\0" for f in fields))
def record(p, limit, hashed):
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        put("G", p)
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            put("G", p)
            return
        digest, data = "", None
        if hashed or 0 <= st.st_size <= limit:
            digest, _, data = content(fd, st.st_size, limit)
        ns = st.st_mtime_ns
        meta = "%d %d.%09d %s %o" % (st.st_size, ns // 10**9, ns % 10**9, owner(st.st_uid), stat.S_IMODE(st.st_mode))
        put("F", p, meta, digest)
        if data is not None:
            put("C", base64.b64encode(data))
    except OSError:
        put("G", p)
    finally:
        os.close(fd)
if q["mode"] == "probe":
    for p in q["paths"]:
        record(p, q["limit"], True)
else:
    fre, dre = re.compile(q["files"]), re.compile(q["dirs"])
    for d in q["exists"]:
        if os.path.isdir(d):
            put("D", d)
    for base, depth in q["bases"]:
        if not os.path.isdir(base):
            continue
        for root, dirs, files in os.walk(base):
            rel = root[len(base):].strip("/")
            level = rel.count("/") + 1 if rel else 0
            if level + 1 < depth:
                for d in dirs:
                    p = os.path.join(root, d)
                    if dre.fullmatch(p):
                        put("D", p)
            else:
                dirs[:] = []
            for f in files:
                p = os.path.join(root, f)
                if fre.fullmatch(p):
                    record(p, -1, True)
    out.flush()
"""

# The same with GNU find and coreutils, for devices without python3:
# args: FILE_REGEX DIR_REGEX DIR... -- DEPTH BASE [DEPTH BASE ...]
SCAN_SH = r"""fre=$1 dre=$2; shift 2
while [ $# -gt 0 ] && [ "$1" != -- ]; do [ -d "$1" ] && printf 'D\0%s\0' "$1"; shift; done
[ $# -gt 0 ] && shift
while [ $# -ge 2 ]; do
  depth=$1 base=$2; shift 2
  [ -d "$base" ] || continue
  find "$base" -mindepth 1 -maxdepth "$((depth - 1))" -regextype posix-extended -type d -regex "$dre" \
    -printf 'D\0%p\0' 2>/dev/null
  find "$base" -mindepth 1 -maxdepth "$depth" -regextype posix-extended -regex "$fre" -xtype f -exec sh -c '
    for f do
      m=$(stat -L -c "%s %.9Y %U %a" -- "$f" 2>/dev/null) || continue
      h=$(sha256sum < "$f" 2>/dev/null) || continue
      printf "F\0%s\0%s\0%s\0" "$f" "$m" "${h%% *}"
    done' sh {} + 2>/dev/null
done
exit 0
"""

# args: LIMIT PATH...
PROBE_SH = r"""l=$1; shift
for f do
  if [ -f "$f" ] && m=$(stat -L -c '%s %.9Y %U %a' -- "$f" 2>/dev/null); then
    if [ "${m%% *}" -le "$l" ]; then
      if c=$(base64 -w0 < "$f" 2>/dev/null); then printf 'F\0%s\0%s\0\0C\0%s\0' "$f" "$m" "$c"
      else printf 'G\0%s\0' "$f"; fi
    elif h=$(sha256sum < "$f" 2>/dev/null); then printf 'F\0%s\0%s\0%s\0' "$f" "$m" "${h%% *}"
    else printf 'G\0%s\0' "$f"; fi
  else printf 'G\0%s\0' "$f"; fi
done
exit 0
"""
