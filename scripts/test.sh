#!/usr/bin/env bash
# Build everything, then run the whole test suite (unit + integration).
# Integration tests start their own daemons and need root (mounts, namespaces, cgroups).
#   scripts/test.sh [extra args for the test runner, e.g. a test-name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the integration tests need root (mounts, namespaces, cgroups)" >&2
    exit 1
fi

# The integration tests drive target/debug/berth and expect berth-shim next to it.
cargo build --workspace --all-targets

# Built once here, so parallel test binaries only read it.
scripts/make-busybox-image.sh target/test-images/busybox.tar >/dev/null

if command -v cargo-nextest >/dev/null 2>&1; then
    # nextest does not run doctests; they go first so the run closes on nextest's summary.
    cargo test --workspace --doc
    # The harness gives each test its own daemon; 2 cores → keep parallelism modest.
    cargo nextest run --workspace --no-fail-fast --test-threads "${BERTH_TEST_THREADS:-4}" "$@"
else
    cargo test --workspace --no-fail-fast -- --test-threads "${BERTH_TEST_THREADS:-4}" "$@"
fi
