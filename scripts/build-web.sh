#!/usr/bin/env bash
# Builds the web demo's wasm: web-demo/pkg (the normal build) and
# web-demo/pkg-bugs (raft-core's deliberate bugs available, for test mode's
# "broken build"). After this, web-demo/ works as plain static files.
# Needs the wasm32 target and wasm-bindgen-cli (scripts/install-web-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

build() { # features out-dir
  local features=$1 out=$2
  cargo build --quiet --release -p host-wasm --target wasm32-unknown-unknown ${features:+--features "$features"}
  rm -rf "$out"
  wasm-bindgen --target web --no-typescript --out-dir "$out" target/wasm32-unknown-unknown/release/host_wasm.wasm
}

build "" web-demo/pkg
build bugs web-demo/pkg-bugs
echo "web demo built: web-demo/pkg and web-demo/pkg-bugs ($(du -sh web-demo/pkg | cut -f1) each)"
