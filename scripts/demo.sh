#!/usr/bin/env bash
# cosmount demo: a local COS server (cos-local) with a demo bucket, a few sample files, and the
# bucket mounted at ./mnt.
#
#   scripts/demo.sh          build if needed, start, seed, mount; Ctrl-C stops everything
#   scripts/demo.sh stop     unmount and stop cos-local (from another terminal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/target/demo"
MNT="$ROOT/mnt"
BUCKET=demo-1250000000
SECRET_ID=AKIDCOSLOCALEXAMPLE
SECRET_KEY=cos-local-secret-key
export PATH="$HOME/.cargo/bin:$PATH"

is_mounted() { grep -qs " $MNT fuse" /proc/mounts; }

stop() {
  if is_mounted; then
    fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    echo "unmounted $MNT"
  fi
  if [ -f "$STATE/cos-local.pid" ]; then
    kill "$(cat "$STATE/cos-local.pid")" 2>/dev/null || true
    rm -f "$STATE/cos-local.pid"
    echo "stopped cos-local"
  fi
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/demo.sh [start|stop]" >&2; exit 2 ;;
esac

missing=()
command -v cargo >/dev/null || missing+=("cargo (install Rust: https://rustup.rs)")
[ -c /dev/fuse ] || missing+=("/dev/fuse (load the fuse kernel module: modprobe fuse)")
if ! command -v fusermount3 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing fuse3 (fusermount3): apt-get update && apt-get install -y fuse3"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null; }; then
      missing+=("fusermount3: 'apt-get update && apt-get install -y fuse3' failed; run it by hand")
    fi
  else
    missing+=("fusermount3: run as root: apt-get update && apt-get install -y fuse3")
  fi
fi
if [ "$(id -u)" != 0 ] && [ ! -w /dev/fuse ]; then
  missing+=("permission to use /dev/fuse (run as root)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/demo.sh: cannot run the demo, missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi
if is_mounted; then
  echo "scripts/demo.sh: $MNT is already mounted; run 'scripts/demo.sh stop' first" >&2
  exit 1
fi

if [ ! -x target/release/cosmount ] || [ ! -x target/release/cos-local ]; then
  echo "==> first build: compiling cosmount, cos-local and their dependencies (release)."
  echo "    This takes about 5-6 minutes on 2 cores (measured: 5 min 30 s, 4.5 CPU-minutes);"
  echo "    later runs only rebuild what changed."
else
  echo "==> building (release; only what changed)"
fi
cargo build --release --quiet -p cos-local -p cosmount --bins --example demo_seed

rm -rf "$STATE/data"
mkdir -p "$STATE" "$MNT"
echo "==> starting cos-local"
target/release/cos-local --data-dir "$STATE/data" --listen 127.0.0.1:0 --bucket "$BUCKET" \
  --credentials "$SECRET_ID:$SECRET_KEY" --access-log "$STATE/access.log" \
  >"$STATE/cos-local.out" 2>"$STATE/cos-local.err" &
echo $! >"$STATE/cos-local.pid"
trap 'echo; stop; exit 0' INT TERM
ENDPOINT=""
for _ in $(seq 100); do
  ENDPOINT=$(sed -n 's/^cos-local listening on //p' "$STATE/cos-local.out")
  [ -n "$ENDPOINT" ] && break
  sleep 0.1
done
if [ -z "$ENDPOINT" ]; then
  echo "cos-local did not start; see $STATE/cos-local.err" >&2
  stop
  exit 1
fi

echo "==> seeding bucket $BUCKET at $ENDPOINT"
COS_SECRET_ID=$SECRET_ID COS_SECRET_KEY=$SECRET_KEY target/release/examples/demo_seed "$ENDPOINT" "$BUCKET"

echo "==> mounting at $MNT"
if ! COS_SECRET_ID=$SECRET_ID COS_SECRET_KEY=$SECRET_KEY target/release/cosmount "$BUCKET" "$MNT" \
  --endpoint "$ENDPOINT" -o "log_file=$STATE/cosmount.log"; then
  stop
  exit 1
fi

cat <<MSG

cosmount is running: bucket $BUCKET (cos-local at $ENDPOINT) is mounted at $MNT

Try, in another terminal:
  ls -l $MNT $MNT/docs
  cat $MNT/README.txt "$MNT/docs/中文 名字.txt"
  sha256sum $MNT/data/big.bin
  head -3 $MNT/data/numbers.csv
  find $MNT -type f
  tail -f $STATE/access.log        # every COS request the mount makes
  tail -f $STATE/cosmount.log      # cosmount's log

Writes go to the bucket too:
  cp /etc/hosts $MNT/docs/ && mkdir $MNT/new && mv $MNT/docs/hosts $MNT/new/
Stop: Ctrl-C here, or 'scripts/demo.sh stop'.
MSG

# Stay in the foreground until Ctrl-C, or until 'scripts/demo.sh stop' unmounts.
while is_mounted; do sleep 1; done
stop
