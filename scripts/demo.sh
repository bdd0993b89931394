#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine with Rust, as root:
# install packages, build release binaries, start a private daemon, load busybox,
# run a container with berth and with the docker CLI, stop the daemon by its PID.
#   scripts/demo.sh            (set BERTH_DEMO_SKIP_APT=1 to skip apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" != 0 ]; then echo "scripts/demo.sh: run as root" >&2; exit 1; fi

if [ -z "${BERTH_DEMO_SKIP_APT:-}" ]; then
    need=()
    for pkg in busybox-static runc libseccomp-dev pkg-config nftables iproute2; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "+ apt-get install ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
    fi
fi

echo "+ cargo build --release -p berth -p berth-shim"
cargo build --release -p berth -p berth-shim
berth=$repo/target/release/berth

dir=$(mktemp -d /tmp/berth-demo-XXXXXX)
sock=$dir/berth.sock
export BERTH_HOST=unix://$sock
daemon_pid=
cleanup() {
    # Under set -e a failing step would end the clean-up early: keep going.
    set +e
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    # Anything still mounted under the demo dir (deepest first), then the dir.
    grep -o " $dir[^ ]*" /proc/self/mountinfo 2>/dev/null | awk '{print length, $1}' | sort -rn |
        cut -d' ' -f2- | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
    ip link del bdemo0 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# Its own bridge and subnet, so the demo never touches a berth daemon already on this host.
echo "+ berth daemon --data-root $dir/data --exec-root $dir/run -H $BERTH_HOST -b bdemo0 --bip 10.198.0.1/24 &"
"$berth" daemon --data-root "$dir/data" --exec-root "$dir/run" -H "$BERTH_HOST" -b bdemo0 --bip 10.198.0.1/24 >"$dir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    [ -S "$sock" ] && "$berth" version >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/daemon.log"; exit 1; }
    sleep 0.1
done

echo "+ scripts/make-busybox-image.sh $dir/busybox.tar"
scripts/make-busybox-image.sh "$dir/busybox.tar"
echo "+ berth load -i busybox.tar"
"$berth" load -i "$dir/busybox.tar"
echo "+ berth images"
"$berth" images
echo "+ berth run --rm busybox echo hello"
"$berth" run --rm busybox echo hello
if command -v docker >/dev/null 2>&1; then
    echo "+ DOCKER_HOST=$BERTH_HOST docker run --rm busybox echo hello"
    DOCKER_HOST=$BERTH_HOST DOCKER_CONFIG=$dir/docker-config docker run --rm busybox echo hello
else
    echo "(the docker CLI is not installed: skipping the docker run)"
fi
echo "+ kill -TERM $daemon_pid   # the daemon, by its PID"
