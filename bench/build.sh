#!/usr/bin/env bash
# Build rows for bench/run.sh, on the issue's small Dockerfile (FROM busybox, a RUN writing
# a file, a COPY of a 10 MB file, ENV, CMD) and on a 20-stage graph of independent stages:
#   cold        berth build --no-cache (every step runs; the base image is present)
#   cached      berth build with every step in the cache, end to end from the CLI
#   changed     the 10 MB file rewritten before each build (incremental context, COPY onwards)
#   20 stages   berth build --no-cache of 20 independent RUN stages gathered by COPY --from
# Docker's own builders are compared when a docker daemon runs here (not on this machine:
# the issue quotes classic 415 ms cold / 54 ms cached, BuildKit 183 ms / 31 ms).
# Environment: BERTH (binary), BERTH_HOST (a running berth daemon with busybox loaded),
# BENCH_DIR (scratch dir, removed by the caller), BENCH_RUNS (default 20).
# Prints rows "name|result|extra".
set -euo pipefail
berth=${BERTH:?}
dir=${BENCH_DIR:?}/build-bench
runs=${BENCH_RUNS:-20}
mkdir -p "$dir/small" "$dir/graph"

head -c 10485760 /dev/urandom >"$dir/small/big.bin"
cat >"$dir/small/Dockerfile" <<'DF'
FROM busybox
RUN echo built > /built
COPY big.bin /data/big.bin
ENV APP_MODE=bench
CMD ["cat", "/built"]
DF
{
    for i in $(seq 1 20); do
        echo "FROM busybox AS s$i"
        echo "RUN echo $i > /out && sleep 0.2"
    done
    echo "FROM busybox"
    for i in $(seq 1 20); do echo "COPY --from=s$i /out /out$i"; done
} >"$dir/graph/Dockerfile"

row() { # row NAME COMMAND [RUNS] [PREPARE]
    local name=$1 cmd=$2 n=${3:-$runs} json=$dir/h-$RANDOM.json
    local prepare=()
    [ -z "${4:-}" ] || prepare=(--prepare "$4")
    echo "+ hyperfine: $name" >&2
    if hyperfine --style none --warmup 2 --runs "$n" "${prepare[@]}" --export-json "$json" "$cmd" >/dev/null 2>"$dir/hyperfine.err"; then
        echo "$name|$(jq -r '.results[0] | "\(.median*1000*100|round/100) ms|± \(.stddev*1000*100|round/100) ms"' "$json")"
    else
        echo "$name|failed: $(tail -n1 "$dir/hyperfine.err")"
    fi
}
row "berth build, cold (--no-cache)" "$berth build -q --no-cache -t bench-small $dir/small"
"$berth" build -q -t bench-small "$dir/small" >/dev/null
row "berth build, fully cached" "$berth build -q -t bench-small $dir/small"
# The 10 MB file rewritten before each run: the context sends only it, COPY and what follows
# run again (the RUN before it comes from the cache).
row "berth build, the 10 MB file changed" "$berth build -q -t bench-small $dir/small" "$runs" \
    "head -c 10485760 /dev/urandom >$dir/small/big.bin"
# 20 stages that each sleep 0.2 s: 4 s in a row, less when stages run side by side.
row "berth build, 20 independent stages" "$berth build -q --no-cache -t bench-graph $dir/graph" 3
if command -v docker >/dev/null && env -u DOCKER_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    row "docker build (classic), cold" "env -u DOCKER_HOST DOCKER_BUILDKIT=0 docker build -q --no-cache $dir/small"
    row "docker build (classic), cached" "env -u DOCKER_HOST DOCKER_BUILDKIT=0 docker build -q $dir/small"
else
    echo "docker build|not installed (no docker daemon running)"
fi
