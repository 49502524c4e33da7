#!/usr/bin/env bash
# cosmount benchmarks over a local cos-local server (release build). One run prints one table,
# each figure beside the raw HTTP figure of the same server (the ceiling).
#
#   scripts/bench.sh          everything below
#   scripts/bench.sh read     cold sequential read of a 1 GiB object beside curl (one stream) and
#                             8 parallel ranged GETs of our client; the CPU each process spent per
#                             GB; time to first byte beside one raw ranged GET; warm re-read;
#                             `ls -l` of 10 000 objects with its LIST/HEAD counts; peak RSS of 1,
#                             8 and 48 parallel readers beside the memory budget.
#   scripts/bench.sh write    sequential write of 1 GiB beside a raw multipart upload of the same
#                             bytes, `cp -r` of 1000 files of 4 KiB, peak RSS of 1 and 8 writers
#                             beside the memory budget, peak spool disk use.
#
# Sizes: BIG_MIB (1024), MANY (10000), PAR8_MIB (256), PAR48_MIB (16), WRITE_MIB (1024),
# WRITERS_MIB (64), SMALL_N (1000); MEMORY_LIMIT (64M, the default) is passed to every mount.
# Numbers vary with the machine and its load (printed with each table); nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
MODE=${1:-all}
BUCKET=bench-1250000000
export COS_SECRET_ID=AKIDBENCHEXAMPLE COS_SECRET_KEY=bench-secret-key
BIG_MIB=${BIG_MIB:-1024}
MANY=${MANY:-10000}
PAR8_MIB=${PAR8_MIB:-256}
PAR48_MIB=${PAR48_MIB:-16}
MEMORY_LIMIT=${MEMORY_LIMIT:-64M}

case "$MODE" in
  all | read | write) ;;
  *) echo "usage: scripts/bench.sh [all|read|write]" >&2; exit 2 ;;
esac
missing=()
command -v cargo >/dev/null || missing+=("cargo")
[ -c /dev/fuse ] || missing+=("/dev/fuse")
command -v fusermount3 >/dev/null || missing+=("fusermount3 (apt-get install fuse3)")
[ "$(id -u)" = 0 ] || missing+=("root (mount and the bdi readahead knob)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'scripts/bench.sh: missing: %s\n' "${missing[*]}" >&2
  exit 2
fi

echo "==> building (release)"
cargo build --release --quiet -p cos-local -p cosmount --bins --example bench_get --example bench_put
BIN=$ROOT/target/release

WORK=$(mktemp -d /tmp/cosmount-bench.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
CL_PID=""
CM_PID=""
cleanup() {
  fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  [ -n "$CM_PID" ] && kill "$CM_PID" 2>/dev/null || true
  [ -n "$CL_PID" ] && kill "$CL_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/cos-local" --data-dir "$WORK/data" --listen 127.0.0.1:0 --bucket "$BUCKET" \
  --credentials "$COS_SECRET_ID:$COS_SECRET_KEY" --access-log "$WORK/access.log" \
  >"$WORK/cl.out" 2>"$WORK/cl.err" &
CL_PID=$!
EP=""
for _ in $(seq 100); do
  EP=$(sed -n 's/^cos-local listening on //p' "$WORK/cl.out"); [ -n "$EP" ] && break; sleep 0.1
done
[ -n "$EP" ] || { echo "cos-local did not start" >&2; exit 1; }

# ---- helpers -----------------------------------------------------------------------------------
# Mount in the foreground (as a child, so its PID is ours), with the memory budget and any extra
# -o options; wait for the mount to appear.
mount_fg() {
  "$BIN/cosmount" "$BUCKET" "$MNT" --endpoint "$EP" -f \
    -o "log_file=$WORK/cosmount.log,cache_dir=$WORK/cache,memory_limit=$MEMORY_LIMIT" "$@" \
    2>>"$WORK/cosmount.err" &
  CM_PID=$!
  for _ in $(seq 300); do grep -qs " $MNT fuse" /proc/mounts && return 0; sleep 0.05; done
  echo "mount failed: $(cat "$WORK/cosmount.err")" >&2; exit 1
}
unmount_fg() {
  fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
  wait "$CM_PID" 2>/dev/null || true
  CM_PID=""
}
count() { # LIST and HEAD requests in the access log since line $1
  tail -n +"$(( $1 + 1 ))" "$WORK/access.log" | awk -v B="/$BUCKET/" '
    $2=="GET" && ($3==B || index($3, B "?")==1) {l++}
    $2=="HEAD" && $3!=B {h++}
    END {printf "%d %d", l, h}'
}
lines() { wc -l <"$WORK/access.log"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b/s/1e6}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b-a}'; }
peak_rss() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$CM_PID/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# CPU of the kernel's reclaim threads (kswapd; kdamond, where a DAMON pageout scheme runs, as on
# this project's VMs): it competes with the benchmark for the same cores.
reclaim_ticks() {
  local t=0 p
  for p in $(pgrep '^(kswapd|kdamond)' || true); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done
  echo "$t"
}
TICK=$(getconf CLK_TCK)
per_gb() { awk -v t="$1" -v hz="$TICK" -v b="$2" 'BEGIN {printf "%.2f", t/hz/(b/1e9)}'; }
# Run "$@" in parallel over the files given after --; prints aggregate MB/s of $BYTES_EACH each.
parallel_read() {
  local each=$1; shift
  local T0 T1 n=0 pids=()
  T0=$(now)
  for f in "$@"; do dd if="$f" of=/dev/null bs=1M status=none & pids+=($!); n=$((n + 1)); done
  for p in "${pids[@]}"; do wait "$p"; done
  T1=$(now)
  mbps "$((each * n))" "$(secs "$T0" "$T1")"
}
ROWS=()
row() { ROWS+=("$(printf '%-58s %s' "$1" "$2")"); }
print_rows() {
  printf '\n%-58s %s\n' "measure ($1)" "result"
  printf '%-58s %s\n' "----------------------------------------------------------" "--------------------------------"
  printf '%s\n' "${ROWS[@]}"
  ROWS=()
}
load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- read --------------------------------------------------------------------------------------
bench_read() {
  local BYTES=$((BIG_MIB << 20)) T0 T1
  echo "==> seeding: ${BIG_MIB} MiB, 8 x ${PAR8_MIB} MiB, 48 x ${PAR48_MIB} MiB, 20 x 1 MiB, $MANY small objects"
  "$BIN/examples/bench_get" seed-big "$EP" "$BUCKET" big.bin "$BIG_MIB"
  "$BIN/examples/bench_get" seed-n "$EP" "$BUCKET" par8/f 8 "$PAR8_MIB"
  "$BIN/examples/bench_get" seed-n "$EP" "$BUCKET" par48/f 48 "$PAR48_MIB"
  "$BIN/examples/bench_get" seed-n "$EP" "$BUCKET" ttfb/f 20 1
  "$BIN/examples/bench_get" seed-many "$EP" "$BUCKET" many/ "$MANY"

  # cos-local writes objects with O_DIRECT, so a fresh object is on disk only: read every data
  # file once, so that each figure below (curl's too) is the server's page cache, not the disk.
  find "$WORK/data" -type f -exec cat {} + >/dev/null
  echo "==> the ceiling: raw HTTP from the same server, no FUSE"
  local URL CURL="" CURL_CPU=""
  URL=$("$BIN/cosmount" presign "$BUCKET" big.bin --endpoint "$EP" 2>/dev/null || true)
  if [ -n "$URL" ] && command -v curl >/dev/null; then
    local s0; s0=$(cpu_ticks "$CL_PID")
    CURL=$(curl -s -o /dev/null -w '%{speed_download}' "$URL" | awk '{printf "%.0f", $1/1e6}')
    CURL_CPU=$(per_gb "$(( $(cpu_ticks "$CL_PID") - s0 ))" "$BYTES")
  fi
  local RAW8 RAW_TTFB
  RAW8=$("$BIN/examples/bench_get" raw-get "$EP" "$BUCKET" big.bin 8 8 | sed 's/.*mbps=\([0-9]*\).*/\1/')
  RAW_TTFB=$("$BIN/examples/bench_get" ttfb "$EP" "$BUCKET" ttfb/f 20 | sed 's/median_ms=//')

  echo "==> cosmount: cold sequential read (fresh mount), CPU per GB of each process"
  mount_fg
  stat "$MNT/big.bin" >/dev/null
  local c0 s0 k0 c1 s1 k1
  c0=$(cpu_ticks "$CM_PID"); s0=$(cpu_ticks "$CL_PID"); k0=$(reclaim_ticks)
  T0=$(now)
  /usr/bin/time -f "%U %S" -o "$WORK/dd.time" dd if="$MNT/big.bin" of=/dev/null bs=1M status=none
  T1=$(now)
  c1=$(cpu_ticks "$CM_PID"); s1=$(cpu_ticks "$CL_PID"); k1=$(reclaim_ticks)
  local COLD DD_CPU RSS1
  COLD=$(mbps "$BYTES" "$(secs "$T0" "$T1")")
  DD_CPU=$(awk -v b="$BYTES" '{printf "%.2f", ($1+$2)/(b/1e9)}' "$WORK/dd.time")
  RSS1=$(peak_rss)
  T0=$(now); dd if="$MNT/big.bin" of=/dev/null bs=1M status=none; T1=$(now)
  local WARM; WARM=$(mbps "$BYTES" "$(secs "$T0" "$T1")")

  echo "==> time to first byte: open + 4 KiB read of 20 files each looked up before (median)"
  local TTFB
  TTFB=$(python3 - "$MNT/ttfb" <<'PY'
import os, sys, time
d = sys.argv[1]
names = sorted(os.listdir(d))
opened, whole = [], []
for n in names:
    p = os.path.join(d, n)
    t0 = time.perf_counter(); os.stat(p); t1 = time.perf_counter()
    fd = os.open(p, os.O_RDONLY); os.read(fd, 4096); t2 = time.perf_counter(); os.close(fd)
    opened.append((t2 - t1) * 1e3); whole.append((t2 - t0) * 1e3)
opened.sort(); whole.sort()
print(f"{opened[len(opened)//2]:.2f} {whole[len(whole)//2]:.2f}")
PY
)
  local TTFB_OPEN=${TTFB% *} TTFB_ALL=${TTFB#* }

  echo "==> ls -l of $MANY objects"
  stat "$MNT/many" >/dev/null
  local START LS_S LS_LIST LS_HEAD LS2_S LS2_LIST LS2_HEAD
  START=$(lines)
  T0=$(now); ls -l "$MNT/many" >/dev/null; T1=$(now)
  LS_S=$(secs "$T0" "$T1")
  read -r LS_LIST LS_HEAD <<<"$(count "$START")"
  START=$(lines)
  T0=$(now); ls -l "$MNT/many" >/dev/null; T1=$(now)
  LS2_S=$(secs "$T0" "$T1")
  read -r LS2_LIST LS2_HEAD <<<"$(count "$START")"
  unmount_fg

  echo "==> 8 parallel readers of ${PAR8_MIB} MiB (fresh mount)"
  mount_fg
  local P8 RSS8 P48 RSS48
  P8=$(parallel_read $((PAR8_MIB << 20)) "$MNT"/par8/f*)
  RSS8=$(peak_rss)
  unmount_fg
  echo "==> 48 parallel readers of ${PAR48_MIB} MiB, cache_size=0 (fresh mount)"
  mount_fg -o cache_size=0
  P48=$(parallel_read $((PAR48_MIB << 20)) "$MNT"/par48/f*)
  RSS48=$(peak_rss)
  unmount_fg

  row "cosmount sequential read, ${BIG_MIB} MiB, cold (dd bs=1M)" "$COLD MB/s"
  [ -n "$CURL" ] && row "  ceiling: curl of a presigned URL (one stream)" "$CURL MB/s"
  row "  ceiling: our client, 8 ranged GETs of 8 MiB in flight" "$RAW8 MB/s"
  row "  CPU per GB: cosmount / cos-local / dd" "$(per_gb $((c1 - c0)) "$BYTES") / $(per_gb $((s1 - s0)) "$BYTES") / $DD_CPU s"
  [ -n "$CURL_CPU" ] && row "  CPU per GB of cos-local serving curl" "$CURL_CPU s"
  row "  kernel reclaim (kswapd, kdamond) CPU during the read" "$(awk -v t=$((k1 - k0)) -v hz="$TICK" 'BEGIN {printf "%.2f", t/hz}') s"
  row "cosmount warm re-read (page cache, KEEP_CACHE)" "$WARM MB/s"
  row "time to first byte: open + 4 KiB read (median of 20)" "$TTFB_OPEN ms"
  row "  with the lookup (stat) before it" "$TTFB_ALL ms"
  row "  ceiling: one 4 KiB ranged GET, our client (median)" "$RAW_TTFB ms"
  row "ls -l of $MANY objects (cold)" "$LS_S s, $LS_LIST LIST, $LS_HEAD HEAD"
  row "ls -l of $MANY objects (again, within stat_ttl)" "$LS2_S s, $LS2_LIST LIST, $LS2_HEAD HEAD"
  row "peak RSS, 1 reader (memory_limit=$MEMORY_LIMIT)" "$RSS1"
  row "8 readers x ${PAR8_MIB} MiB: aggregate, peak RSS" "$P8 MB/s, $RSS8"
  row "48 readers x ${PAR48_MIB} MiB, cache_size=0: aggregate, peak RSS" "$P48 MB/s, $RSS48"
  print_rows "read; load $(load)"
}

# ---- write -------------------------------------------------------------------------------------
bench_write() {
  local WRITE_MIB=${WRITE_MIB:-1024} SMALL_N=${SMALL_N:-1000} WRITERS_MIB=${WRITERS_MIB:-64}
  local SRC=$WORK/src.bin SPOOL=$WORK/cache/spool BYTES=$(( ${WRITE_MIB:-1024} << 20 )) T0 T1
  echo "==> preparing ${WRITE_MIB} MiB of random data and $SMALL_N files of 4 KiB"
  head -c "$BYTES" /dev/urandom >"$SRC"
  mkdir -p "$WORK/small"
  for i in $(seq -w 1 "$SMALL_N"); do head -c 4096 /dev/urandom >"$WORK/small/f$i"; done

  echo "==> the ceiling: raw multipart upload (same server, 8 MiB parts x 4 in flight, no FUSE)"
  local RAW
  RAW=$("$BIN/examples/bench_put" raw-multipart "$EP" "$BUCKET" raw.bin "$SRC" 8 4 | sed 's/.*mbps=\([0-9]*\).*/\1/')

  echo "==> cosmount: sequential write (dd bs=1M; close waits for the upload)"
  mount_fg
  mkdir -p "$MNT/w"
  local PEAK_FILE=$WORK/spool.peak
  echo 0 >"$PEAK_FILE"
  ( peak=0; while :; do
      cur=$(du -sb "$SPOOL" 2>/dev/null | cut -f1); cur=${cur:-0}
      [ "$cur" -gt "$peak" ] && { peak=$cur; echo "$peak" >"$PEAK_FILE"; }
      sleep 0.2
    done ) &
  local DU_PID=$!
  T0=$(now); dd if="$SRC" of="$MNT/w/big.bin" bs=1M status=none; T1=$(now)
  kill "$DU_PID" 2>/dev/null; wait "$DU_PID" 2>/dev/null || true
  local WRITE SPOOL_PEAK WRITE_RSS CHECK
  WRITE=$(mbps "$BYTES" "$(secs "$T0" "$T1")")
  SPOOL_PEAK=$(awk '{printf "%.0f", $1/1048576}' "$PEAK_FILE")
  WRITE_RSS=$(peak_rss)
  cmp -s "$SRC" "$MNT/w/big.bin" && CHECK=identical || CHECK=DIFFERENT

  echo "==> cosmount: cp -r of $SMALL_N files of 4 KiB"
  local START CP_S CP_RATE CP_REQ CP_PUT
  START=$(lines)
  T0=$(now); cp -r "$WORK/small" "$MNT/small"; T1=$(now)
  CP_S=$(secs "$T0" "$T1")
  CP_RATE=$(awk -v n="$SMALL_N" -v s="$CP_S" 'BEGIN {printf "%.0f", n/s}')
  CP_REQ=$(tail -n +"$(( START + 1 ))" "$WORK/access.log" | wc -l)
  CP_PUT=$(tail -n +"$(( START + 1 ))" "$WORK/access.log" | awk '$2=="PUT"' | wc -l)
  unmount_fg

  echo "==> 8 parallel writers of ${WRITERS_MIB} MiB (fresh mount)"
  mount_fg
  mkdir -p "$MNT/w8"
  local pids=() W8 RSS_W8
  T0=$(now)
  for i in 1 2 3 4 5 6 7 8; do
    dd if="$SRC" of="$MNT/w8/f$i" bs=1M count="$WRITERS_MIB" status=none & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  T1=$(now)
  W8=$(mbps "$(( 8 * (WRITERS_MIB << 20) ))" "$(secs "$T0" "$T1")")
  RSS_W8=$(peak_rss)
  unmount_fg

  row "cosmount sequential write, ${WRITE_MIB} MiB (dd bs=1M)" "$WRITE MB/s (read back: $CHECK)"
  row "  ceiling: raw multipart upload, 8 MiB parts x 4 in flight" "$RAW MB/s"
  row "cp -r of $SMALL_N x 4 KiB files" "$CP_RATE files/s ($CP_S s, $CP_REQ requests, $CP_PUT PUT)"
  row "peak spool disk use during the big write" "$SPOOL_PEAK MiB"
  row "peak RSS, 1 writer (memory_limit=$MEMORY_LIMIT)" "$WRITE_RSS"
  row "8 writers x ${WRITERS_MIB} MiB: aggregate, peak RSS" "$W8 MB/s, $RSS_W8"
  print_rows "write; load $(load)"
}

case "$MODE" in
  read) bench_read ;;
  write) bench_write ;;
  all) bench_read; bench_write ;;
esac
