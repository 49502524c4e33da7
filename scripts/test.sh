#!/usr/bin/env bash
# Run every test: formatting and lints, unit and integration tests (real FUSE mounts over cos-local),
# and the conformance suite that drives cos-local with the official COS Python SDK and, through
# its S3 dialect, with boto3, the AWS CLI and s3fs.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    skip clippy and the Python SDK conformance suite
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

missing=()
command -v cargo >/dev/null || missing+=("cargo (Rust toolchain: https://rustup.rs)")
[ -c /dev/fuse ] || missing+=("/dev/fuse (the fuse kernel module: modprobe fuse)")
command -v fusermount3 >/dev/null || missing+=("fusermount3: apt-get update && apt-get install -y fuse3")
command -v python3 >/dev/null || missing+=("python3 (for the COS SDK conformance suite)")
if [ "$(id -u)" != 0 ]; then
  missing+=("root: the mount tests open /dev/fuse and call mount(2) directly; run as root")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: cannot run the tests, missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

if [ $quick = 0 ]; then
  step "cargo clippy --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
fi

# The mount tests start the cos-local binary, which lives in another package: build it first.
step "cargo build --workspace"
cargo build --workspace --all-targets

step "cargo test --workspace"
cargo test --workspace -- --test-threads="${TEST_THREADS:-2}"

if [ $quick = 0 ] && [ -x scripts/conformance.sh ]; then
  step "conformance: the COS Python SDK, boto3, the AWS CLI and s3fs against cos-local"
  scripts/conformance.sh
fi

echo
echo "scripts/test.sh: all tests passed"
