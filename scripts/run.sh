#!/usr/bin/env bash
# The main job: a local 3-node raftkv cluster — three real `raftkv node`
# processes on 127.0.0.1:7001-7003 with their journals on disk — and the web
# demo on http://127.0.0.1:8080. Ctrl-C stops everything.
#
# Usage: scripts/run.sh [raftkv cluster options], e.g.
#   scripts/run.sh --demo 127.0.0.1:8081
# Data and node logs go to $RAFTKV_DATA (default target/raftkv-data, which git
# ignores); the data survives restarts of the script.
# (The narrated simulation:
#   cargo run --release -p raft-core --features sim --example simulate -- SEED NODES)
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo page runs the real core compiled to wasm: build it (installing the
# wasm32 target and the pinned wasm-bindgen-cli if missing).
scripts/install-web-deps.sh --build-only
scripts/build-web.sh
cargo build --quiet --release -p host-native
exec target/release/raftkv cluster --dir "${RAFTKV_DATA:-target/raftkv-data}" "$@"
