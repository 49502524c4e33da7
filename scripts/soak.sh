#!/usr/bin/env bash
# Fault soak: many files written through a cosmount mount while cos-local injects faults, then
# every object checked through an independent client (the official COS Python SDK).
#
#   scripts/soak.sh [RATE...]      default: 0.1 0.3
#
# Per rate: a fresh cos-local (temp data dir) and a fresh mount. Files that get an "old version"
# are first written with faults off; then faults are switched on at runtime
# (PUT /_cos-local/faults), 4 writers write their share of the files (open, write, close; every
# third file also fsync) and record whether any call reported an error; faults off again; then
# every key is read with cos-python-sdk-v5 and compared with the expected bytes (SHA-256):
#   correct          writer saw success and the object holds the new bytes
#   error-reported   writer saw an error; the object may be absent, the old version or the new one
#                    ("damaged" counts those holding anything else: a failed write that still
#                    replaced the object)
#   silently wrong   writer saw success but the object is missing or differs: must be 0
# Then a sample is re-read through the mount after dropping the kernel's dentry/inode caches.
#
# Environment:
#   SOAK_FILES (500), SOAK_SEED (1), SOAK_WRITERS (4), SOAK_MAX_MIB (40): what is written.
#   SOAK_KINDS (slowdown,reset,latency,drop-answer): fault kinds. `stall` on
#     CompleteMultipartUpload blocks close() for 20 min (the documented wait for COS's merge),
#     so it is not in the default; SOAK_OPS limits faults to some operations, e.g.
#     SOAK_KINDS=stall SOAK_OPS=PutObject,UploadPart,HeadObject,GetBucket.
#   SOAK_MOUNT_OPTS: extra -o options, e.g. retry_budget=2 so that failures reach the writers.
#   SOAK_HANG_SECS (300): a file operation that takes longer is reported; a writer still
#     blocked 3x that plus 10 min after the start is a hang.
#   SOAK_KEEP=1 keeps the temp dir. Evidence of a failed run (logs, tables) is copied to
#     target/soak/ before the temp dir goes.
# Exit status: 0 if nothing was silently wrong and nothing hung, 1 otherwise, 2 on setup errors.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(0.1 0.3)
FILES=${SOAK_FILES:-500}
SEED=${SOAK_SEED:-1}
WRITERS=${SOAK_WRITERS:-4}
MAX_MIB=${SOAK_MAX_MIB:-40}
KINDS=${SOAK_KINDS:-slowdown,reset,latency,drop-answer}
OPS=${SOAK_OPS:-}
HANG_SECS=${SOAK_HANG_SECS:-300}
MOUNT_OPTS=${SOAK_MOUNT_OPTS:-}
BUCKET=soak-1250000000
export COS_SECRET_ID=AKIDSOAKEXAMPLE COS_SECRET_KEY=soak-secret-key

missing=()
command -v cargo >/dev/null || missing+=("cargo")
command -v curl >/dev/null || missing+=("curl")
[ -c /dev/fuse ] || missing+=("/dev/fuse")
command -v fusermount3 >/dev/null || missing+=("fusermount3 (apt-get install fuse3)")
[ "$(id -u)" = 0 ] || missing+=("root (drop_caches)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'scripts/soak.sh: missing: %s\n' "${missing[*]}" >&2
  exit 2
fi

# shellcheck source=scripts/venv.sh
. scripts/venv.sh
python_venv "qcloud_cos" cos-python-sdk-v5
PY=$venv/bin/python

echo "==> building (release)"
cargo build --release --quiet -p cos-local -p cosmount --bins
BIN=$ROOT/target/release

WORK=$(mktemp -d /tmp/cosmount-soak.XXXXXX)
CL_PID=""
CM_PID=""
MNT=""
WRITER_PIDS=()
cleanup() {
  local pid
  for pid in "${WRITER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$MNT" ] && grep -qs " $MNT fuse" /proc/mounts; then
    fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  # cosmount waits (bounded) for open files at SIGTERM; after 30 s it is killed.
  if [ -n "$CM_PID" ]; then
    kill "$CM_PID" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$CM_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$CM_PID" 2>/dev/null || true
    wait "$CM_PID" 2>/dev/null || true
  fi
  if [ -n "$CL_PID" ]; then kill "$CL_PID" 2>/dev/null || true; wait "$CL_PID" 2>/dev/null || true; fi
  CM_PID="" CL_PID="" MNT="" WRITER_PIDS=()
}
finish() {
  cleanup
  if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- the Python side: plan, writers, SDK check, re-read ----------------------------------------
cat >"$WORK/soak.py" <<'PY'
import hashlib, math, os, random, sys, threading, time

MIB = 1 << 20
HEADER = 64  # every file starts with its own tag so two files never hold the same bytes

def plan(n, seed, max_mib):
    """(index, key, size, old_size or -1): a fixed set of edge sizes, the rest log-uniform."""
    rng = random.Random(seed)
    top = max_mib * MIB
    fixed = [0] * 5 + [top] * 5 + [1, 63, 64, 65, 4095, 4096, MIB - 1, MIB, MIB + 1,
                                   8 * MIB - 1, 8 * MIB, 8 * MIB + 1, 16 * MIB + 1, 32 * MIB]
    sizes = [s for s in fixed if s <= top][:n]
    while len(sizes) < n:
        sizes.append(min(top, int(math.exp(rng.uniform(0, math.log(top))))))
    rng.shuffle(sizes)
    rows = []
    for i, s in enumerate(sizes):
        # One file in five already exists (an overwrite: a failure must leave the old version).
        old = min(top, int(math.exp(rng.uniform(0, math.log(top))))) if i % 5 == 1 else -1
        rows.append((i, "soak/d%d/f%04d.bin" % (i % 8, i), s, old))
    return rows

def read_plan(path):
    with open(path) as f:
        return [(int(a), b, int(c), int(d)) for a, b, c, d in (l.split("\t") for l in f)]

class Pool:
    """Seeded bytes; file i version v is a tag plus a window of the pool."""
    def __init__(self, seed, max_mib):
        self.buf = memoryview(random.Random(seed * 7919 + 17).randbytes(max_mib * MIB + MIB))

    def chunks(self, seed, i, ver, size, chunk=MIB):
        tag = ("soak seed=%d file=%d version=%d " % (seed, i, ver)).encode().ljust(HEADER, b".")
        off = (i * 2654435761 + ver * 40503) % MIB
        head = tag[:size]
        if head:
            yield head
        pos, end = off, off + size - len(head)
        while pos < end:
            n = min(chunk, end - pos)
            yield self.buf[pos:pos + n]
            pos += n

    def sha(self, seed, i, ver, size):
        h = hashlib.sha256()
        for c in self.chunks(seed, i, ver, size):
            h.update(c)
        return h.hexdigest()

def write_file(path, pool, seed, i, ver, size, fsync):
    """Returns '' or the first error seen (open, write, fsync or close)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        return "open: %s" % e.strerror
    err = ""
    try:
        # Odd chunk sizes: writes that do not line up with pages or parts.
        for c in pool.chunks(seed, i, ver, size, chunk=(1 << 20) - 4096 * (i % 3) + (i % 7)):
            while c:
                n = os.write(fd, c)
                c = c[n:]
        if fsync:
            os.fsync(fd)
    except OSError as e:
        err = "write/fsync: %s" % e.strerror
    try:
        os.close(fd)
    except OSError as e:
        err = err or "close: %s" % e.strerror
    return err

def cmd_plan(n, seed, max_mib):
    for row in plan(int(n), int(seed), int(max_mib)):
        print("\t".join(map(str, row)))

def cmd_write(mnt, plan_path, seed, max_mib, shard, of, ver, out, hang_secs):
    seed, shard, of, ver, hang_secs = int(seed), int(shard), int(of), int(ver), float(hang_secs)
    pool = Pool(seed, int(max_mib))
    current = [None, 0.0]
    def watchdog():
        # A hang is a finding: say which file and since when, while the writer stays blocked.
        warned = None
        while True:
            time.sleep(5)
            name, since = current
            if name is not None and time.time() - since > hang_secs and warned != name:
                sys.stderr.write("SLOW writer %d: %s blocked for %.0f s\n" % (shard, name, time.time() - since))
                sys.stderr.flush()
                warned = name
    threading.Thread(target=watchdog, daemon=True).start()
    with open(out, "w") as f:
        for i, key, size, old in read_plan(plan_path):
            if i % of != shard:
                continue
            if ver == 0:
                if old < 0:
                    continue
                size = old
            current[:] = [key, time.time()]
            t0 = time.time()
            err = write_file(os.path.join(mnt, key), pool, seed, i, ver, size, fsync=(i % 3 == 0))
            current[0] = None
            f.write("%d\t%s\t%s\t%.2f\n" % (i, "err" if err else "ok", err or "-", time.time() - t0))
            f.flush()

def sdk_client(port):
    from qcloud_cos import CosConfig, CosS3Client
    cfg = CosConfig(Region="ap-guangzhou", SecretId=os.environ["COS_SECRET_ID"],
                    SecretKey=os.environ["COS_SECRET_KEY"], Scheme="http", IP="127.0.0.1",
                    Port=int(port))
    return CosS3Client(cfg)

def sdk_object(client, bucket, key):
    """(sha256, size) of the object, or None if absent."""
    from qcloud_cos import CosServiceError
    try:
        resp = client.get_object(Bucket=bucket, Key=key)
    except CosServiceError as e:
        if e.get_status_code() == 404:
            return None
        raise
    return sha_of(resp["Body"].get_raw_stream())

def sha_of(stream):
    """(sha256, size) of what `stream` reads to its end."""
    h, n = hashlib.sha256(), 0
    while True:
        c = stream.read(MIB)
        if not c:
            break
        h.update(c)
        n += len(c)
    return h.hexdigest(), n

def cmd_check(port, bucket, plan_path, results, seed, max_mib, out):
    """Classify every planned key from the SDK's view; one line per key in `out`, totals on stdout."""
    seed = int(seed)
    client = sdk_client(port)
    pool = Pool(seed, int(max_mib))
    status = {}
    for path in results.split(","):
        with open(path) as f:
            for line in f:
                i, st, err, secs = line.rstrip("\n").split("\t")
                status[int(i)] = (st, err)
    listed, marker = set(), ""
    while True:
        page = client.list_objects(Bucket=bucket, Marker=marker, MaxKeys=1000)
        for c in page.get("Contents", []):
            listed.add(c["Key"])
        if page.get("IsTruncated") != "true":
            break
        marker = page.get("NextMarker") or page["Contents"][-1]["Key"]
    counts = dict.fromkeys(["files", "correct", "err", "err_absent", "err_old", "err_new",
                            "damaged", "silent", "not_run"], 0)
    planned = set()
    with open(out, "w") as f:
        for i, key, size, old in read_plan(plan_path):
            planned.add(key)
            counts["files"] += 1
            got = sdk_object(client, bucket, key)
            new_sha = pool.sha(seed, i, 1, size)
            old_sha = pool.sha(seed, i, 0, old) if old >= 0 else None
            state = ("absent" if got is None else "new" if got[0] == new_sha
                     else "old" if got[0] == old_sha else "other")
            st, err = status.get(i, ("none", "writer never reached this file"))
            if st == "ok":
                verdict = "correct" if state == "new" else "silent"
            elif st == "err":
                counts["err"] += 1
                verdict = {"absent": "err_absent", "old": "err_old", "new": "err_new"}.get(state, "damaged")
            else:
                verdict = "not_run"
            counts[verdict] += 1
            if (key in listed) != (got is not None):
                verdict += ",listing-disagrees"
            f.write("\t".join(map(str, (i, key, size, old, st, state, got[1] if got else -1,
                                        got[0] if got else "-", verdict, err))) + "\n")
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Upload", [])
    if isinstance(uploads, dict):
        uploads = [uploads]
    counts["stray_keys"] = len([k for k in listed - planned if not k.endswith("/")])
    counts["open_uploads"] = len(uploads)
    print(" ".join("%s=%d" % kv for kv in counts.items()))

def cmd_reread(mnt, check_path, every):
    """Re-read through the mount: every writer-ok file whose index is a multiple of `every` and
    every error-reported file; the mount must show what the bucket holds."""
    every = int(every)
    n = bad = 0
    for line in open(check_path):
        i, key, size, old, st, state, osize, osha = line.rstrip("\n").split("\t")[:8]
        if not (st == "err" or int(i) % every == 0):
            continue
        n += 1
        path = os.path.join(mnt, key)
        try:
            with open(path, "rb") as f:
                seen = sha_of(f)
        except FileNotFoundError:
            seen = None
        except OSError as e:
            seen = "error " + e.strerror
        ok = seen is None if state == "absent" else seen == (osha, int(osize))
        if not ok:
            bad += 1
            sys.stderr.write("mount disagrees with bucket: %s bucket=%s/%s mount=%s\n" % (key, state, osize, seen))
    print("reread=%d reread_bad=%d" % (n, bad))

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"plan": cmd_plan, "write": cmd_write, "check": cmd_check, "reread": cmd_reread}[cmd](*args)
PY

# ---- one soak run -------------------------------------------------------------------------------
kv() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$2"; }  # value of NAME=N in a line
ROWS=()
FAILED=0

start_server() {
  "$BIN/cos-local" --data-dir "$D/data" --listen 127.0.0.1:0 --bucket "$BUCKET" \
    --credentials "$COS_SECRET_ID:$COS_SECRET_KEY" --access-log "$D/access.log" \
    >"$D/cl.out" 2>"$D/cl.err" &
  CL_PID=$!
  EP=""
  for _ in $(seq 100); do
    EP=$(sed -n 's/^cos-local listening on //p' "$D/cl.out"); [ -n "$EP" ] && return 0; sleep 0.1
  done
  echo "cos-local did not start: $(cat "$D/cl.err")" >&2; exit 2
}

mount_fg() {
  MNT=$D/mnt
  mkdir -p "$MNT"
  NO_COLOR=1 "$BIN/cosmount" "$BUCKET" "$MNT" --endpoint "$EP" -f -o "cache_dir=$D/cache${MOUNT_OPTS:+,$MOUNT_OPTS}" \
    >"$D/cosmount.log" 2>&1 &
  CM_PID=$!
  for _ in $(seq 300); do grep -qs " $MNT fuse" /proc/mounts && return 0; sleep 0.05; done
  echo "mount failed: $(cat "$D/cosmount.log")" >&2; exit 2
}

# Run $WRITERS writers of version $1 into results $D/w$1-K.tsv; returns 1 on a hang.
run_writers() {
  local ver=$1 k pid hung=0 deadline
  WRITER_PIDS=()
  for k in $(seq 0 $(( WRITERS - 1 ))); do
    "$PY" "$WORK/soak.py" write "$MNT" "$D/plan.tsv" "$SEED" "$MAX_MIB" "$k" "$WRITERS" "$ver" \
      "$D/w$ver-$k.tsv" "$HANG_SECS" 2>>"$D/writers.err" &
    WRITER_PIDS+=($!)
  done
  # Bounded wait: a writer blocked for good is a hang, reported, not waited on forever.
  deadline=$(( $(date +%s) + 3 * HANG_SECS + 600 ))
  for pid in "${WRITER_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$(date +%s)" -gt "$deadline" ]; then hung=1; break 2; fi
      sleep 1
    done
    wait "$pid" || { echo "writer $pid failed: $(tail -3 "$D/writers.err")" >&2; exit 2; }
  done
  if [ "$hung" = 1 ]; then
    for pid in "${WRITER_PIDS[@]}"; do
      [ -r "/proc/$pid/stack" ] && { echo "writer $pid:"; cat "/proc/$pid/stack"; } >>"$D/hang.txt" 2>/dev/null || true
    done
    return 1
  fi
  WRITER_PIDS=()
}

faults() { curl -fsS -X "$1" "$EP/_cos-local/faults${2:-}" >/dev/null; }

soak_one() {
  local rate=$1 pct t0 t1 lines0 lines1 check reread hung=0 summary
  pct=$(awk -v r="$rate" 'BEGIN {printf "%g", r*100}')
  D=$WORK/rate-$pct
  mkdir -p "$D"
  echo "==> rate $rate: cos-local, mount, $FILES files planned (seed $SEED)"
  start_server
  mount_fg
  "$PY" "$WORK/soak.py" plan "$FILES" "$SEED" "$MAX_MIB" >"$D/plan.tsv"
  for d in $(seq 0 7); do mkdir -p "$MNT/soak/d$d"; done
  echo "    seeding old versions of $(awk '$4>=0' "$D/plan.tsv" | wc -l) files (faults off)"
  run_writers 0 || { echo "hang while seeding (faults off)" >&2; exit 1; }
  if grep -qv $'\tok\t' "$D"/w0-*.tsv; then echo "seeding failed with faults off:" >&2; grep -v $'\tok\t' "$D"/w0-*.tsv >&2; exit 1; fi

  echo "    writing $FILES files with $WRITERS writers, faults rate=$rate kinds=$KINDS${OPS:+ ops=$OPS}"
  lines0=$(wc -l <"$D/access.log")
  faults PUT "?rate=$rate&kinds=$KINDS${OPS:+&ops=$OPS}"
  t0=$(date +%s.%N)
  run_writers 1 || hung=1
  t1=$(date +%s.%N)
  faults DELETE
  lines1=$(wc -l <"$D/access.log")
  if [ "$hung" = 1 ]; then
    echo "    HANG: see below" >&2
    cat "$D/writers.err" "$D/hang.txt" >&2 2>/dev/null || true
    FAILED=1
    keep_evidence "$pct"
    # Abort this mount's FUSE connection so the blocked writers return and cleanup can finish.
    # (The connection's directory is named by the minor number of the mount's st_dev.)
    local dev; dev=$(timeout 5 stat -c %d "$MNT" 2>/dev/null || true)
    if [ -n "$dev" ]; then
      echo 1 >"/sys/fs/fuse/connections/$(( (dev & 0xff) | ((dev >> 12) & 0xfff00) ))/abort" 2>/dev/null || true
    fi
    cleanup
    ROWS+=("$(printf '%-5s %5s  %s' "$pct%" "$FILES" "HANG (writers blocked; evidence in target/soak/rate-$pct)")")
    return 0
  fi
  local slow; slow=$(grep -c '^SLOW' "$D/writers.err" 2>/dev/null || true)
  [ "${slow:-0}" = 0 ] || { echo "    $slow file operations blocked longer than $HANG_SECS s:" >&2; grep '^SLOW' "$D/writers.err" >&2; }
  local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b-a}')
  local window; window=$(sed -n "$(( lines0 + 1 )),${lines1}p" "$D/access.log")
  local reqs faults_n kinds_n
  reqs=$(grep -vc ' Admin$' <<<"$window" || true)
  faults_n=$(grep -c ' fault=' <<<"$window" || true)
  kinds_n=$(grep -o ' fault=[a-z-]*' <<<"$window" | sort | uniq -c | awk '{sub(" fault=","",$2); sub("fault=","",$2); printf "%s%s %s", sep, $2, $1; sep=", "}')

  echo "    checking every object with cos-python-sdk-v5 (faults off)"
  check=$("$PY" "$WORK/soak.py" check "${EP##*:}" "$BUCKET" "$D/plan.tsv" \
    "$(ls "$D"/w1-*.tsv | paste -sd,)" "$SEED" "$MAX_MIB" "$D/check.tsv")
  echo "    $check"
  # The mount's metadata cache (stat_ttl 10 s) has expired by now; drop the kernel's too.
  sync
  echo 2 >/proc/sys/vm/drop_caches
  local g0; g0=$(wc -l <"$D/access.log")
  reread=$("$PY" "$WORK/soak.py" reread "$MNT" "$D/check.tsv" 10 2>>"$D/reread.err")
  local gets; gets=$(tail -n +"$(( g0 + 1 ))" "$D/access.log" | grep -c ' GetObject$' || true)
  echo "    $reread (GET requests: $gets)"
  [ -s "$D/reread.err" ] && sed 's/^/    /' "$D/reread.err"

  # Unmount cleanly: the daemon must exit by itself (no hang at unmount), then read its summary.
  fusermount3 -u "$MNT"
  local waited=0
  while kill -0 "$CM_PID" 2>/dev/null && [ $waited -lt 120 ]; do sleep 1; waited=$(( waited + 1 )); done
  if kill -0 "$CM_PID" 2>/dev/null; then echo "    cosmount did not exit 120 s after unmount" >&2; FAILED=1; fi
  wait "$CM_PID" 2>/dev/null || true
  CM_PID="" MNT=""
  summary=$(grep -o 'COS requests [0-9]* ([0-9]* failed, [0-9]* retried)' "$D/cosmount.log" | tail -1 || true)
  # Learned metadata (meta-*.txt) belongs there; anything else is a left-over spool or journal.
  local spool; spool=$(find "$D/cache" -type f ! -name 'meta-*' 2>/dev/null | wc -l)
  echo "    cosmount: ${summary:-no summary}; files left in cache_dir: $spool"

  local silent damaged
  silent=$(kv silent "$check"); damaged=$(kv damaged "$check")
  if [ "$silent" != 0 ] || [ "$(kv reread_bad "$reread")" != 0 ] || [ "$(kv not_run "$check")" != 0 ]; then
    FAILED=1
    echo "    SILENTLY WRONG or mount disagreement:" >&2
    awk -F'\t' '$9 ~ /silent/' "$D/check.tsv" | head -20 | sed 's/^/      /' >&2
    keep_evidence "$pct"
  fi
  ROWS+=("$(printf '%-5s %5s %7s %6s (%s absent, %s old, %s new, %s damaged) %7s %6s s %8s %7s  %s' \
    "$pct%" "$(kv files "$check")" "$(kv correct "$check")" "$(kv err "$check")" \
    "$(kv err_absent "$check")" "$(kv err_old "$check")" "$(kv err_new "$check")" "$damaged" \
    "$silent" "$wall" "$reqs" "$faults_n" "$kinds_n")")
  ROWS+=("$(printf '      reread through the mount: %s; stray keys %s, open multipart uploads %s, cache_dir files %s; cosmount: %s' \
    "$reread" "$(kv stray_keys "$check")" "$(kv open_uploads "$check")" "$spool" "${summary:-?}")")
  kill "$CL_PID" 2>/dev/null || true; wait "$CL_PID" 2>/dev/null || true; CL_PID=""
  [ "${SOAK_KEEP:-0}" = 1 ] || rm -rf "$D/data"
}

keep_evidence() {
  local dst=$ROOT/target/soak/rate-$1
  mkdir -p "$dst"
  cp "$D"/*.tsv "$D"/*.log "$D"/*.err "$D"/*.txt "$dst"/ 2>/dev/null || true
  echo "    evidence copied to $dst" >&2
}

T_ALL=$(date +%s)
for rate in "${RATES[@]}"; do soak_one "$rate"; done

echo
echo "Fault soak: $FILES files (0 B..$MAX_MIB MiB; seed $SEED), $WRITERS writers, kinds $KINDS${OPS:+ on $OPS}${MOUNT_OPTS:+, -o $MOUNT_OPTS}"
printf '%-5s %5s %7s %s %7s %8s %8s %7s  %s\n' rate files correct "error-reported" silent "write-wall" requests faults "by kind"
for r in "${ROWS[@]}"; do echo "$r"; done
echo "total $(( $(date +%s) - T_ALL )) s"
exit "$FAILED"
