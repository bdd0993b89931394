#!/usr/bin/env bash
# Benchmarks: start-up latency (hyperfine medians), pull/push through a local registry
# (bench/registry.sh) and memory (VmRSS). Run as root:
#   bench/run.sh             (BENCH_RUNS=N to change the number of timed runs, default 20)
# Builds release binaries, starts its own daemon in a temp dir, stops it by PID, cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${BENCH_RUNS:-20}

[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
for tool in hyperfine jq runc python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is not installed" >&2; exit 1; }
done

echo "+ cargo build --release -p berth -p berth-shim" >&2
cargo build --release -q -p berth -p berth-shim
berth=$repo/target/release/berth

dir=$(mktemp -d /tmp/bb-XXXXXX)
sock=$dir/s.sock
export BERTH_HOST=unix://$sock
daemon_pid=
cleanup() {
    set +e
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        ids=$("$berth" ps -a -q 2>/dev/null)
        [ -z "$ids" ] || "$berth" rm -f $ids >/dev/null 2>&1
        "$berth" network prune -f >/dev/null 2>&1
        kill -TERM "$daemon_pid"
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null
    fi
    runc --root "$dir/runc" delete -f bench-runc >/dev/null 2>&1
    command -v crun >/dev/null && crun --root "$dir/crun" delete -f bench-crun >/dev/null 2>&1
    "$berth" runtime --root "$dir/rt" delete --force bench-berth >/dev/null 2>&1
    # Mounts under the bench dir, deepest first.
    awk -v d="$dir" '$5 ~ "^"d {print length($5), $5}' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
        while read -r m; do umount -l "$m"; done
    for cg in /sys/fs/cgroup/*/berth-bench; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    # The bench daemon's own bridge and nft table (it removes the table itself on a clean stop).
    ip link del bb0 2>/dev/null
    nft delete table ip berth-bb0 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }
ping_daemon() {
    python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
    sys.exit(0 if b" 200 " in s.recv(64) else 1)
except OSError:
    sys.exit(1)
PY
}

# --- daemon + image ------------------------------------------------------------
scripts/make-busybox-image.sh "$dir/busybox.tar" >/dev/null
"$berth" daemon --data-root "$dir/data" --exec-root "$dir/run" -H "$BERTH_HOST" --log-level warn -b bb0 --bip 10.199.0.1/24 \
    --default-address-pool base=10.198.0.0/16,size=24 \
    >"$dir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    ping_daemon && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon died:" >&2; cat "$dir/daemon.log" >&2; exit 1; }
    sleep 0.1
done
"$berth" load -q -i "$dir/busybox.tar" >/dev/null
rss_loaded=$(rss_kb "$daemon_pid")

# --- a bundle for the OCI runtimes ---------------------------------------------
bundle=$dir/bundle
mkdir -p "$bundle/rootfs"
layer=$(tar -xOf "$dir/busybox.tar" manifest.json | jq -r '.[0].Layers[0]')
tar -xOf "$dir/busybox.tar" "$layer" | tar -x -C "$bundle/rootfs"
(cd "$bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["/bin/true"] | .linux.cgroupsPath = "/berth-bench/bench"' \
    "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

# --- timings ---------------------------------------------------------------------
results=()   # "name|median ms|stddev ms" or "name|note"
bench() { # bench NAME PREPARE COMMAND
    local name=$1 prepare=$2 cmd=$3 json=$dir/h-$RANDOM.json
    echo "+ hyperfine: $name" >&2
    if hyperfine --style none --warmup 3 --runs "$runs" --prepare "$prepare" --export-json "$json" "$cmd" >/dev/null 2>"$dir/hyperfine.err"; then
        results+=("$name|$(jq -r '.results[0] | "\(.median*1000*100|round/100) ms|± \(.stddev*1000*100|round/100) ms"' "$json")")
    else
        results+=("$name|failed: $(tail -n1 "$dir/hyperfine.err")")
    fi
}
bench "berth run --rm busybox true" "true" "$berth run --rm busybox true"
bench "berth run --rm --network none … true" "true" "$berth run --rm --network none busybox true"
bench "berth runtime run (bundle)" "$berth runtime --root $dir/rt delete --force bench-berth 2>/dev/null || true" \
    "$berth runtime --root $dir/rt run --bundle $bundle bench-berth"
bench "runc run (bundle)" "runc --root $dir/runc delete -f bench-runc 2>/dev/null || true" "runc --root $dir/runc run --bundle $bundle bench-runc"
if command -v crun >/dev/null; then
    bench "crun run (bundle)" "crun --root $dir/crun delete -f bench-crun 2>/dev/null || true" "crun --root $dir/crun run --bundle $bundle bench-crun"
else
    results+=("crun run (bundle)|not installed")
fi
if command -v docker >/dev/null && env -u DOCKER_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    if env -u DOCKER_HOST docker image inspect busybox >/dev/null 2>&1 || env -u DOCKER_HOST docker load -q -i "$dir/busybox.tar" >/dev/null; then
        bench "docker run --rm busybox true" "true" "env -u DOCKER_HOST -u BERTH_HOST docker run --rm busybox true"
    fi
else
    results+=("docker run --rm busybox true|not installed (no docker daemon running)")
fi
if command -v podman >/dev/null; then
    podman load -q -i "$dir/busybox.tar" >/dev/null 2>&1 || true
    bench "podman run --rm busybox true" "true" "podman run --rm busybox true"
else
    results+=("podman run --rm busybox true|not installed")
fi

# --- networks ----------------------------------------------------------------------
# The cost of networking per container (default bridge minus --network none), then
# BENCH_NET_N containers (default 100) started on one user network, each resolving all
# the others by name through the network's DNS responder.
ms_of() { # the median of a result row, in ms
    local r
    for r in "${results[@]}"; do [ "${r%%|*}" = "$1" ] && { r=${r#*|}; echo "${r%% ms*}"; return; }; done
}
bridge_ms=$(ms_of "berth run --rm busybox true")
none_ms=$(ms_of "berth run --rm --network none … true")
if [[ $bridge_ms =~ ^[0-9.]+$ && $none_ms =~ ^[0-9.]+$ ]]; then
    results+=("networking per container (bridge − none)|$(awk -v a="$bridge_ms" -v b="$none_ms" 'BEGIN { printf "%.2f", a - b }') ms")
fi
net_n=${BENCH_NET_N:-100}
"$berth" network create bench-net >/dev/null
echo "+ $net_n containers on one network" >&2
t0=$(date +%s%N)
for i in $(seq "$net_n"); do
    "$berth" run -d --name "bn$i" --network bench-net busybox sleep 1000 >/dev/null
done
t1=$(date +%s%N)
results+=("start $net_n containers on one network|$(( (t1 - t0) / 1000000 )) ms|$(( (t1 - t0) / 1000 / net_n )) µs each")
names=$(seq -f 'bn%g' 1 "$net_n" | tr '\n' ' ')
t0=$(date +%s%N)
resolved=0
for i in $(seq "$net_n"); do
    n=$("$berth" exec "bn$i" sh -c "ok=0; for n in $names; do nslookup \$n >/dev/null 2>&1 && ok=\$((ok+1)); done; echo \$ok")
    resolved=$((resolved + n))
done
t1=$(date +%s%N)
results+=("each resolves all $net_n names|$resolved/$((net_n * net_n)) resolved|$(( (t1 - t0) / 1000000 )) ms in all")
"$berth" rm -f $(seq -f 'bn%g' 1 "$net_n") >/dev/null
"$berth" network rm bench-net >/dev/null

# --- memory ------------------------------------------------------------------------
echo "+ idle 10 s" >&2
sleep 10
rss_idle=$(rss_kb "$daemon_pid")
cid=$("$berth" run -d busybox sleep 1000)
shim_rss="?"
for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "berth-shim.*$cid"; then shim_rss=$(rss_kb "${p#/proc/}"); break; fi
done
"$berth" rm -f "$cid" >/dev/null
results+=("daemon VmRSS after start + load|$rss_loaded kB")
results+=("daemon VmRSS after 10 s idle|$rss_idle kB")
results+=("shim VmRSS (one running container)|$shim_rss kB")

# --- builds (bench/build.sh) ---------------------------------------------------------
while IFS= read -r row; do results+=("$row"); done < <(BERTH=$berth BENCH_DIR=$dir BENCH_RUNS=$runs "$repo/bench/build.sh")

# --- pull / push through a local registry (bench/registry.sh; after the memory rows) ---
while IFS= read -r row; do results+=("$row"); done < <(BERTH=$berth BENCH_DIR=$dir "$repo/bench/registry.sh")

# --- table -------------------------------------------------------------------------
printf '\n%-40s %-14s %s\n' "benchmark ($runs runs, median)" "result" ""
printf '%-40s %-14s %s\n' "----------------------------------------" "--------------" "-----------"
for r in "${results[@]}"; do
    IFS='|' read -r name a b <<<"$r"
    printf '%-40s %-14s %s\n' "$name" "$a" "${b:-}"
done
