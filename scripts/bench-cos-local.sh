#!/usr/bin/env bash
# Throughput of cos-local over loopback for one large object, beside the same transfers against
# nginx (a plain HTTP server: static GET with sendfile, WebDAV PUT to disk) as the ceiling.
#
#   scripts/bench-cos-local.sh            1 GiB object, 3 runs of each transfer
#   SIZE_MB=256 RUNS=1 scripts/bench-cos-local.sh
#   COS_LOCAL_BIN=/path/to/cos-local scripts/bench-cos-local.sh   measure another build
#
# Besides one-stream PUT and GET, a multipart upload of the same file in PARTS (default 4)
# parts sent in parallel: MB/s of the Upload Part phase (all parts, wall clock), and the time
# of Complete Multipart Upload; nginx gets the same parts as parallel PUTs of separate files.
# The load average is printed with the figures (the machine may be shared).
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
server_bin="${COS_LOCAL_BIN:-$target/cos-local}"
parts="${PARTS:-4}"

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

"$server_bin" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --credentials "$id:$secret" --bucket "$bucket" >"$work/cos-local.out" 2>"$work/cos-local.err" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/cos-local.out" 2>/dev/null && break
  sleep 0.1
done
endpoint="$(sed -n 's#^cos-local listening on ##p' "$work/cos-local.out")"
[ -n "$endpoint" ] || { echo "cos-local did not start" >&2; cat "$work/cos-local.err" >&2; exit 1; }

presign() {
  "$target/examples/presign" "$1" "$endpoint" "$bucket" "${2:-bench/object.bin}" "$id" "$secret"
}

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

now() { date +%s.%N; }
mbps() { awk -v b="$bytes" -v a="$1" -v z="$2" 'BEGIN { printf "%.0f", b / (z - a) / 1e6 }'; }

# The object split into $parts files (the last takes the remainder).
part_size=$(((bytes + parts - 1) / parts))
split -a 3 -d -b "$part_size" "$work/object.bin" "$work/part."
part_files=("$work"/part.*)

# MB/s of $parts parallel curl PUTs, the i-th to the URL that `$1 i` prints; "error" if any
# failed. Each curl's response headers go to $work/part-headers.i.
parallel_put() {
  local url_of="$1" i=0 start end failed=0 pids=()
  start=$(now)
  for f in "${part_files[@]}"; do
    i=$((i + 1))
    curl -sS --fail -H 'Expect:' -o /dev/null -D "$work/part-headers.$i" -T "$f" "$($url_of "$i")" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  end=$(now)
  if [ "$failed" = 1 ]; then echo error; else mbps "$start" "$end"; fi
}

# One multipart upload of the object through cos-local; prints "PARTS_MBPS COMPLETE_SECONDS".
mp_key="bench/multipart.bin"
mp_part_url() { echo "$(presign PUT "$mp_key")&partNumber=$1&uploadId=$upload_id"; }
multipart_run() {
  upload_id=$(curl -sS --fail -X POST "$(presign POST "$mp_key")&uploads" |
    sed -n 's#.*<UploadId>\([^<]*\)</UploadId>.*#\1#p')
  [ -n "$upload_id" ] || { echo "error error"; return; }
  local rate xml="<CompleteMultipartUpload>" i start end
  rate=$(parallel_put mp_part_url)
  [ "$rate" = error ] && { echo "error error"; return; }
  for i in $(seq 1 "${#part_files[@]}"); do
    xml+="<Part><PartNumber>$i</PartNumber><ETag>$(tr -d '\r' <"$work/part-headers.$i" |
      sed -n 's#^[Ee][Tt]ag: *##p')</ETag></Part>"
  done
  xml+="</CompleteMultipartUpload>"
  start=$(now)
  curl -sS --fail -o /dev/null -X POST --data-binary "$xml" \
    "$(presign POST "$mp_key")&uploadId=$upload_id" || { echo "$rate error"; return; }
  end=$(now)
  echo "$rate $(awk -v a="$start" -v z="$end" 'BEGIN { printf "%.2f", z - a }')"
}

cos_put=(); cos_get=(); ng_put=(); ng_get=(); cos_mp=(); cos_done=(); ng_mp=()
for _ in $(seq 1 "$runs"); do
  cos_put+=("$(measure -T "$work/object.bin" "$(presign PUT)")")
  sync
done
for _ in $(seq 1 "$runs"); do
  read -r rate secs < <(multipart_run)
  cos_mp+=("$rate"); cos_done+=("$secs")
  sync
done
curl -sS --fail -o "$work/readback.bin" "$(presign GET "$mp_key")"
cmp -s "$work/object.bin" "$work/readback.bin" || { echo "multipart read-back differs!" >&2; exit 1; }
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
  ng_part_url() { echo "http://127.0.0.1:$port/part.$1"; }
  for _ in $(seq 1 "$runs"); do
    ng_put+=("$(measure -T "$work/object.bin" "http://127.0.0.1:$port/upload.bin")")
    rm -f "$work/www/upload.bin"
    ng_get+=("$(measure "http://127.0.0.1:$port/object.bin")")
    ng_mp+=("$(parallel_put ng_part_url)")
    rm -f "$work"/www/part.*
  done
  ng_note="nginx $(nginx -v 2>&1 | sed 's#.*/##'): GET static file with sendfile, PUT via WebDAV to disk"
fi

echo
echo "Loopback throughput, ${size_mb} MiB object, MB/s = 10^6 bytes/s, best of ${runs} (all runs)"
printf '%-10s %-6s %10s   %s\n' "server" "op" "MB/s" "runs"
printf '%-10s %-6s %10s   %s\n' "cos-local" "PUT" "$(best "${cos_put[@]}")" "${cos_put[*]}"
printf '%-10s %-6s %10s   %s\n' "cos-local" "GET" "$(best "${cos_get[@]}")" "${cos_get[*]}"
printf '%-10s %-6s %10s   %s\n' "cos-local" "PUTx$parts" "$(best "${cos_mp[@]}")" "${cos_mp[*]}"
if [ ${#ng_get[@]} -gt 0 ]; then
  printf '%-10s %-6s %10s   %s\n' "nginx" "PUT" "$(best "${ng_put[@]}")" "${ng_put[*]}"
  printf '%-10s %-6s %10s   %s\n' "nginx" "GET" "$(best "${ng_get[@]}")" "${ng_get[*]}"
  printf '%-10s %-6s %10s   %s\n' "nginx" "PUTx$parts" "$(best "${ng_mp[@]}")" "${ng_mp[*]}"
fi
echo "PUTx$parts: the object as $parts parts sent at once (cos-local: Upload Part; nginx: PUT of"
echo "$parts files); Complete Multipart Upload took ${cos_done[*]} s."
echo "($ng_note; cos-local PUT includes MD5 + CRC-64 + fsync, GET streams from the file)"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
