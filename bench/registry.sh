#!/usr/bin/env bash
# Pull/push rows for bench/run.sh: a 3-layer image of about 100 MB (random and compressible
# data, gzip layers; bench/make-pull-image.py) through Debian's docker-registry on 127.0.0.1.
#   cold push     berth push to an empty registry
#   cold pull     berth pull into a store without the image's blobs
#   skopeo/docker/podman pull of the same image, where installed
#   machine limit the same blobs read over loopback (curl), kept, decompressed and unpacked
#                 (tee | gzip -d | tar -x), the three in parallel: the floor for a pull
# Environment: BERTH (binary), BERTH_HOST (a running berth daemon), BENCH_DIR (scratch dir,
# removed by the caller), BENCH_PULL_RUNS (default 3). Prints rows "name|result|extra".
set -euo pipefail
berth=${BERTH:?}
dir=${BENCH_DIR:?}/registry-bench
runs=${BENCH_PULL_RUNS:-3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"

command -v docker-registry >/dev/null || { echo "registry bench|docker-registry not installed"; exit 0; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/store
  delete:
    enabled: true
http:
  addr: $host
  secret: berth-bench
YML
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
reg_pid=$!
trap 'kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf "http://$host/v2/" >/dev/null && break
    sleep 0.1
done

python3 "$here/make-pull-image.py" "$dir/pull.tar" bench/pull:1
# Earlier runs' copies share the text layers: drop them, the pulls must start cold.
"$berth" images --format '{{.Repository}}:{{.Tag}}' | grep -E '(^|/)bench/pull:1$' |
    xargs -r "$berth" rmi -f >/dev/null 2>&1 || true
"$berth" load -q -i "$dir/pull.tar" >/dev/null
image=$host/bench/pull:1
"$berth" tag bench/pull:1 "$image"
size_mb=$(( $(stat -c %s "$dir/pull.tar") / 1024 / 1024 ))

row() { # row NAME JSON
    echo "$1|$(jq -r '.results[0] | "\(.median*1000|round) ms|± \(.stddev*1000|round) ms (median of '"$runs"')"' "$2")"
}
time_it() { # time_it NAME PREPARE COMMAND
    local json=$dir/h-$RANDOM.json
    echo "+ hyperfine: $1" >&2
    if hyperfine --style none --runs "$runs" --prepare "$2" --export-json "$json" "$3" >/dev/null 2>"$dir/hyperfine.err"; then
        row "$1" "$json"
    else
        echo "$1|failed: $(tail -n1 "$dir/hyperfine.err")"
    fi
}

time_it "berth push, cold (3 layers, ${size_mb} MB gz)" "rm -rf $dir/store/docker" \
    "$berth push $image"
# Keep only the registry's copy: the pulls below start from an empty store.
"$berth" rmi bench/pull:1 "$image" >/dev/null
time_it "berth pull, cold" "$berth rmi $image >/dev/null 2>&1 || true" "$berth pull $image"
# Check that the timed pulls were cold and complete.
"$berth" rmi "$image" >/dev/null
out=$("$berth" pull "$image")
case $out in
    *"Already exists"*) echo "berth pull, cold|not cold: layers were already in the store" ;;
    *"Pull complete"*) ;;
    *) echo "berth pull, cold|the check pull failed: $out" ;;
esac

if command -v skopeo >/dev/null; then
    time_it "skopeo copy (to dir:)" "rm -rf $dir/skopeo" \
        "skopeo copy -q --src-tls-verify=false docker://$image dir:$dir/skopeo"
else
    echo "skopeo copy|not installed"
fi
if command -v docker >/dev/null && env -u DOCKER_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    time_it "docker pull" "env -u DOCKER_HOST docker rmi -f $image >/dev/null 2>&1 || true" \
        "env -u DOCKER_HOST docker pull -q $image"
    env -u DOCKER_HOST docker rmi -f "$image" >/dev/null 2>&1 || true
else
    echo "docker pull|not installed (no docker daemon running)"
fi
if command -v podman >/dev/null; then
    time_it "podman pull" "podman rmi -f $image >/dev/null 2>&1 || true" \
        "podman pull -q --tls-verify=false $image"
    podman rmi -f "$image" >/dev/null 2>&1 || true
else
    echo "podman pull|not installed"
fi

# The floor: fetch, keep, decompress and unpack the same three blobs, in parallel.
manifest=$(curl -sf -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
    -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$host/v2/bench/pull/manifests/1")
cat >"$dir/limit.sh" <<SH
#!/usr/bin/env bash
set -euo pipefail
i=0
for d in $(jq -r '.layers[].digest' <<<"$manifest" | tr '\n' ' '); do
    i=\$((i + 1)); mkdir -p "$dir/limit/\$i"
    curl -sf "http://$host/v2/bench/pull/blobs/\$d" | tee "$dir/limit/\$i.blob" | gzip -dc | tar -x -C "$dir/limit/\$i" &
done
wait
SH
chmod +x "$dir/limit.sh"
time_it "machine limit (curl | tee | gunzip | tar)" "rm -rf $dir/limit" "$dir/limit.sh"
