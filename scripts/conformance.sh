#!/usr/bin/env bash
# Drive cos-local with the official COS Python SDK (cos-python-sdk-v5 from PyPI) and, through
# its S3 dialect (AWS Signature V4), with boto3, the AWS CLI (awscli from PyPI), rclone and s3fs.
#
#   scripts/conformance.sh [pytest args...]
#
# Creates a virtual environment under ${XDG_CACHE_HOME:-$HOME/.cache}/cosmount/venv if missing,
# installs cos-python-sdk-v5, boto3, awscli and pytest there, builds cos-local, starts it on a
# free port with a temporary data dir, runs pytest tests/conformance/ (test_sdk.py: the COS SDK;
# test_s3.py: boto3, `aws s3 cp/ls/sync`, rclone, an s3fs mount), and always stops cos-local
# again. s3fs and rclone come from Debian packages (apt-get install s3fs rclone); without them,
# and without the AWS CLI, their tests skip (outside CI, where .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/venv.sh
. scripts/venv.sh
python_venv "qcloud_cos, pytest, boto3, awscli" cos-python-sdk-v5 boto3 awscli pytest
# The venv's `aws` first.
export PATH="$venv/bin:$PATH"

echo "==> building cos-local"
cargo build --quiet -p cos-local
bin="${CARGO_TARGET_DIR:-target}/debug/cos-local"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

export COS_LOCAL_SECRET_ID="AKIDCONFORMANCE"
export COS_LOCAL_SECRET_KEY="conformance-secret-key"
"$bin" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --credentials "$COS_LOCAL_SECRET_ID:$COS_LOCAL_SECRET_KEY" \
  --access-log "$work/access.log" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!

# Wait for the one "cos-local listening on http://IP:PORT" line.
for _ in $(seq 1 100); do
  if grep -q "listening on" "$work/stdout" 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "cos-local exited early:" >&2; cat "$work/stderr" >&2; exit 1
  fi
  sleep 0.1
done
addr="$(sed -n 's#^cos-local listening on http://##p' "$work/stdout")"
[ -n "$addr" ] || { echo "cos-local did not report its address" >&2; exit 1; }
export COS_LOCAL_PORT="${addr##*:}"
echo "==> cos-local on $addr"

status=0
"$venv/bin/python" -m pytest tests/conformance/ "$@" || status=$?
echo "==> $(wc -l <"$work/access.log") requests served (access log)"
exit "$status"
