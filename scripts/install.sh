#!/bin/sh
# Install cosmount where mount(8), /etc/fstab and systemd can find it.
#
# mount.fuse3 runs `cosmount BUCKET DIR -o OPTS` through /bin/sh with PATH stripped, so the
# binary must sit in a default directory (/usr/local/bin here). fstab mounts also need
# mount.fuse3 itself, from the fuse3 package.
#
#   scripts/install.sh                 # build a release binary and install it
#   scripts/install.sh path/to/cosmount  # install that binary
#   PREFIX=/usr scripts/install.sh     # install into /usr/bin instead
set -eu

PREFIX=${PREFIX:-/usr/local}
cd "$(dirname "$0")/.."

if [ $# -ge 1 ]; then
    bin=$1
else
    cargo build --release --bin cosmount
    bin=target/release/cosmount
fi
if [ ! -x "$bin" ]; then
    echo "install.sh: $bin is not an executable" >&2
    exit 1
fi

install -d "$PREFIX/bin"
install -m 0755 "$bin" "$PREFIX/bin/cosmount"
echo "installed $PREFIX/bin/cosmount ($("$PREFIX/bin/cosmount" --version))"

if ! command -v mount.fuse3 >/dev/null 2>&1 && [ ! -x /sbin/mount.fuse3 ]; then
    echo "note: mount.fuse3 is missing; fstab and 'mount -t fuse.cosmount' need it: apt-get install fuse3" >&2
fi
