#!/usr/bin/env bash
# cosmount benchmarks over a local cos-local server (release build).
#
#   scripts/bench.sh read     sequential read of a 1 GiB object beside the raw ranged-GET ceiling,
#                             time to first byte, warm re-read, `ls -l` of 10 000 objects with its
#                             LIST/HEAD request counts, and cosmount's peak RSS.
#   scripts/bench.sh write    sequential write of 1 GiB through the mount beside a raw multipart
#                             upload of the same bytes (the ceiling), `cp -r` of 1000 files of
#                             4 KiB (files/s), cosmount's peak RSS and peak spool disk use.
#                             WRITE_MIB and SMALL_N change the sizes.
#
# Numbers vary with the machine and its load; nothing here is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
MODE=${1:-read}
BUCKET=bench-1250000000
export COS_SECRET_ID=AKIDBENCHEXAMPLE COS_SECRET_KEY=bench-secret-key
BIG_MIB=${BIG_MIB:-1024}
MANY=${MANY:-10000}

case "$MODE" in
  read | write) ;;
  *) echo "usage: scripts/bench.sh read|write" >&2; exit 2 ;;
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

if [ "$MODE" = read ]; then
  echo "==> seeding: one ${BIG_MIB} MiB object, one 64 MiB object, $MANY small objects"
  "$BIN/examples/bench_get" seed-big "$EP" "$BUCKET" big.bin "$BIG_MIB"
  "$BIN/examples/bench_get" seed-big "$EP" "$BUCKET" ttfb.bin 64
  "$BIN/examples/bench_get" seed-many "$EP" "$BUCKET" many/ "$MANY"
fi

mount_fg() {
  "$BIN/cosmount" "$BUCKET" "$MNT" --endpoint "$EP" -f -o "log_file=$WORK/cosmount.log" "$@" \
    2>>"$WORK/cosmount.err" &
  CM_PID=$!
  for _ in $(seq 300); do grep -qs " $MNT fuse" /proc/mounts && return 0; sleep 0.05; done
  echo "mount failed: $(cat "$WORK/cosmount.err")" >&2; exit 1
}
count() { # count METHOD-and-kind in the access log since line $1
  tail -n +"$(( $1 + 1 ))" "$WORK/access.log" | awk -v B="/$BUCKET/" '
    $2=="GET" && ($3==B || index($3, B "?")==1) {l++}
    $2=="HEAD" && $3!=B {h++}
    END {printf "%d %d", l, h}'
}
lines() { wc -l <"$WORK/access.log"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b/s/1e6}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b-a}'; }

# ---- write mode -------------------------------------------------------------------------------
# Sequential write of WRITE_MIB MiB through the mount beside a raw multipart upload of the same
# bytes to the same cos-local (the ceiling), then `cp -r` of SMALL_N files of 4 KiB; peak RSS of
# cosmount and peak disk use of its spool directory.
bench_write() {
  local WRITE_MIB=${WRITE_MIB:-1024} SMALL_N=${SMALL_N:-1000}
  local SRC=$WORK/src.bin SPOOL=$WORK/cache/spool BYTES=$(( ${WRITE_MIB:-1024} << 20 ))
  echo "==> preparing ${WRITE_MIB} MiB of random data and $SMALL_N files of 4 KiB"
  head -c "$BYTES" /dev/urandom >"$SRC"
  mkdir -p "$WORK/small"
  for i in $(seq -w 1 "$SMALL_N"); do head -c 4096 /dev/urandom >"$WORK/small/f$i"; done

  echo "==> raw multipart upload (the ceiling: same server, 8 MiB parts x 4 in flight, no FUSE)"
  RAW=$("$BIN/examples/bench_put" raw-multipart "$EP" "$BUCKET" raw.bin "$SRC" 8 4)

  echo "==> cosmount: sequential write (dd bs=1M; close waits for the upload)"
  mount_fg -o "cache_dir=$WORK/cache"
  mkdir "$MNT/w"
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
  local WRITE=$(mbps "$BYTES" "$(secs "$T0" "$T1")")
  local SPOOL_PEAK=$(awk '{printf "%.0f", $1/1048576}' "$PEAK_FILE")
  # Peak RSS of the write alone (the read-back below fills the read-side block cache).
  local WRITE_RSS=$(awk '/VmHWM/ {print $2, $3}' "/proc/$CM_PID/status")
  cmp -s "$SRC" "$MNT/w/big.bin" && local CHECK=identical || local CHECK=DIFFERENT

  echo "==> cosmount: cp -r of $SMALL_N files of 4 KiB"
  START=$(lines)
  T0=$(now); cp -r "$WORK/small" "$MNT/small"; T1=$(now)
  local CP_S=$(secs "$T0" "$T1")
  local CP_RATE=$(awk -v n="$SMALL_N" -v s="$CP_S" 'BEGIN {printf "%.0f", n/s}')
  local CP_REQ=$(tail -n +"$(( START + 1 ))" "$WORK/access.log" | wc -l)
  local CP_PUT=$(tail -n +"$(( START + 1 ))" "$WORK/access.log" | awk '$2=="PUT"' | wc -l)
  RSS=$(awk '/VmHWM/ {print $2, $3}' "/proc/$CM_PID/status")

  printf '\n%-56s %s\n' "measure" "result"
  printf '%-56s %s\n' "--------------------------------------------------------" "------------------------------"
  printf '%-56s %s MB/s (read back: %s)\n' "cosmount sequential write, ${WRITE_MIB} MiB (dd bs=1M)" "$WRITE" "$CHECK"
  printf '%-56s %s\n' "raw multipart upload, 8 MiB parts x 4 in flight" "$(sed 's/.*mbps=\([0-9]*\).*/\1/' <<<"$RAW") MB/s"
  printf '%-56s %s files/s (%s s, %s requests, %s PUT)\n' "cp -r of $SMALL_N x 4 KiB files" "$CP_RATE" "$CP_S" "$CP_REQ" "$CP_PUT"
  printf '%-56s %s MiB\n' "peak spool disk use during the big write" "$SPOOL_PEAK"
  printf '%-56s %s\n' "cosmount peak RSS after the big write (VmHWM)" "$WRITE_RSS"
  printf '%-56s %s\n' "cosmount peak RSS at the end (read-back included)" "$RSS"
}

if [ "$MODE" = write ]; then
  bench_write
  exit 0
fi

BYTES=$((BIG_MIB << 20))
echo "==> raw ranged GETs (the ceiling: same server, no FUSE)"
RAW8=$("$BIN/examples/bench_get" raw-get "$EP" "$BUCKET" big.bin 8 8)
RAW1=$("$BIN/examples/bench_get" raw-get "$EP" "$BUCKET" big.bin 1024 1)
URL=$("$BIN/cosmount" presign "$BUCKET" big.bin --endpoint "$EP" 2>/dev/null || true)
CURL=""
if [ -n "$URL" ] && command -v curl >/dev/null; then
  CURL=$(curl -s -o /dev/null -w '%{speed_download}' "$URL" | awk '{printf "%.0f", $1/1e6}')
fi

echo "==> cosmount: cold sequential read, time to first byte, warm re-read"
mount_fg
T0=$(now); head -c 4096 "$MNT/ttfb.bin" >/dev/null; T1=$(now)
TTFB_MS=$(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", (b-a)*1000}')
T0=$(now); dd if="$MNT/big.bin" of=/dev/null bs=1M status=none; T1=$(now)
COLD=$(mbps "$BYTES" "$(secs "$T0" "$T1")")
T0=$(now); dd if="$MNT/big.bin" of=/dev/null bs=1M status=none; T1=$(now)
WARM=$(mbps "$BYTES" "$(secs "$T0" "$T1")")

echo "==> ls -l of $MANY objects"
stat "$MNT/many" >/dev/null
START=$(lines)
T0=$(now); ls -l "$MNT/many" >/dev/null; T1=$(now)
LS_S=$(secs "$T0" "$T1")
read -r LS_LIST LS_HEAD <<<"$(count "$START")"
START=$(lines)
T0=$(now); ls -l "$MNT/many" >/dev/null; T1=$(now)
LS2_S=$(secs "$T0" "$T1")
read -r LS2_LIST LS2_HEAD <<<"$(count "$START")"
RSS=$(awk '/VmHWM/ {print $2, $3}' "/proc/$CM_PID/status")

printf '\n%-52s %s\n' "measure" "result"
printf '%-52s %s\n' "----------------------------------------------------" "------------------------------"
printf '%-52s %s MB/s\n' "cosmount sequential read, ${BIG_MIB} MiB, cold (dd bs=1M)" "$COLD"
printf '%-52s %s\n' "raw ranged GETs, 8 MiB parts x 8 in flight" "$(sed 's/.*mbps=\([0-9]*\).*/\1/' <<<"$RAW8") MB/s"
printf '%-52s %s\n' "raw single GET of the whole object (client)" "$(sed 's/.*mbps=\([0-9]*\).*/\1/' <<<"$RAW1") MB/s"
[ -n "$CURL" ] && printf '%-52s %s MB/s\n' "curl of a presigned URL (one stream)" "$CURL"
printf '%-52s %s MB/s\n' "cosmount warm re-read (page cache, KEEP_CACHE)" "$WARM"
printf '%-52s %s ms\n' "cosmount time to first byte (open + 4 KiB read)" "$TTFB_MS"
printf '%-52s %s ms\n' "raw time to first byte (4 KiB ranged GET)" "$(sed 's/.*ttfb_ms=\([0-9.]*\).*/\1/' <<<"$RAW8")"
printf '%-52s %s s, %s LIST, %s HEAD\n' "ls -l of $MANY objects (cold)" "$LS_S" "$LS_LIST" "$LS_HEAD"
printf '%-52s %s s, %s LIST, %s HEAD\n' "ls -l of $MANY objects (again, within stat_ttl)" "$LS2_S" "$LS2_LIST" "$LS2_HEAD"
printf '%-52s %s\n' "cosmount peak RSS (VmHWM)" "$RSS"
