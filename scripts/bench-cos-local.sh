#!/usr/bin/env bash
# Throughput of cos-local over loopback for one large object, beside the same transfers against
# nginx (a plain HTTP server: static GET with sendfile, WebDAV PUT to disk) as the ceiling.
#
#   scripts/bench-cos-local.sh            1 GiB object, 3 runs of each transfer
#   SIZE_MB=256 RUNS=1 scripts/bench-cos-local.sh
#
# Requests are signed presigned URLs (cos-local keeps auth on), made by the `presign` example.
# curl does the transfers (-o /dev/null for GET, -T FILE for PUT). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb="${SIZE_MB:-1024}"
runs="${RUNS:-3}"
id="AKIDBENCH"
secret="bench-secret-key"
bucket="bench-1250000000"

echo "==> building (release)"
cargo build --release --quiet -p cos-local --bin cos-local --example presign
target="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d -p "${TMPDIR:-/var/tmp}" cos-local-bench.XXXXXX)"
server_pid=""
nginx_pid=""
cleanup() {
  for pid in "$server_pid" "$nginx_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "==> writing a ${size_mb} MiB test file"
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/object.bin"
bytes=$(stat -c %s "$work/object.bin")

"$target/cos-local" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --credentials "$id:$secret" --bucket "$bucket" >"$work/cos-local.out" 2>"$work/cos-local.err" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/cos-local.out" 2>/dev/null && break
  sleep 0.1
done
endpoint="$(sed -n 's#^cos-local listening on ##p' "$work/cos-local.out")"
[ -n "$endpoint" ] || { echo "cos-local did not start" >&2; cat "$work/cos-local.err" >&2; exit 1; }

presign() { "$target/examples/presign" "$1" "$endpoint" "$bucket" "bench/object.bin" "$id" "$secret"; }

# MB/s (10^6 bytes per second) of one curl transfer; prints "error" on a non-2xx status.
measure() {
  local secs
  if ! secs=$(curl -sS --fail -H 'Expect:' -o /dev/null -w '%{time_total}' "$@"); then
    echo error
    return
  fi
  awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.0f", b / s / 1e6 }'
}

best() { printf '%s\n' "$@" | grep -E '^[0-9]+$' | sort -n | tail -1; }

cos_put=(); cos_get=(); ng_put=(); ng_get=()
for _ in $(seq 1 "$runs"); do
  cos_put+=("$(measure -T "$work/object.bin" "$(presign PUT)")")
  sync
done
# The stored object must be the file we sent.
curl -sS --fail -o "$work/readback.bin" "$(presign GET)"
cmp -s "$work/object.bin" "$work/readback.bin" || { echo "read-back differs!" >&2; exit 1; }
rm -f "$work/readback.bin"
for _ in $(seq 1 "$runs"); do
  cos_get+=("$(measure "$(presign GET)")")
done

# nginx as the ceiling: same machine, same file, same curl.
ng_note="nginx not installed (apt-get install nginx-light)"
if command -v nginx >/dev/null; then
  mkdir -p "$work/www" "$work/nginx-tmp" "$work/nginx-logs"
  cp "$work/object.bin" "$work/www/object.bin"
  port=$((20000 + RANDOM % 20000))
  cat >"$work/nginx.conf" <<CONF
daemon off;
# The work dir is private (mktemp), so the workers must run as the invoking user.
user $(id -un);
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $work/nginx-tmp;
  server {
    listen 127.0.0.1:$port;
    root $work/www;
    location / {
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
    }
  }
}
CONF
  nginx -p "$work" -c "$work/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  for _ in $(seq 1 "$runs"); do
    ng_put+=("$(measure -T "$work/object.bin" "http://127.0.0.1:$port/upload.bin")")
    rm -f "$work/www/upload.bin"
    ng_get+=("$(measure "http://127.0.0.1:$port/object.bin")")
  done
  ng_note="nginx $(nginx -v 2>&1 | sed 's#.*/##'): GET static file with sendfile, PUT via WebDAV to disk"
fi

echo
echo "Loopback throughput, ${size_mb} MiB object, MB/s = 10^6 bytes/s, best of ${runs} (all runs)"
printf '%-10s %-6s %10s   %s\n' "server" "op" "MB/s" "runs"
printf '%-10s %-6s %10s   %s\n' "cos-local" "PUT" "$(best "${cos_put[@]}")" "${cos_put[*]}"
printf '%-10s %-6s %10s   %s\n' "cos-local" "GET" "$(best "${cos_get[@]}")" "${cos_get[*]}"
if [ ${#ng_get[@]} -gt 0 ]; then
  printf '%-10s %-6s %10s   %s\n' "nginx" "PUT" "$(best "${ng_put[@]}")" "${ng_put[*]}"
  printf '%-10s %-6s %10s   %s\n' "nginx" "GET" "$(best "${ng_get[@]}")" "${ng_get[*]}"
fi
echo "($ng_note; cos-local PUT includes MD5 + CRC-64 + fsync, GET streams from the file)"
