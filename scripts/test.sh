#!/usr/bin/env bash
# Every test raftkv has. Installs what it needs if missing. Safe to run on a
# fresh machine; CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A one-shot run gains nothing from incremental caches, which are most of the
# target directory's size (a full run with them ran CI out of disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "toolchain: no_std target for raft-core"
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  rustup target add thumbv7em-none-eabihf
fi

step "tools the process tests need (installed if missing)"
# tests/partition.rs cuts links with iptables in network namespaces (it skips,
# saying why, without them; CI runs as root and must run it for real).
if ! command -v iptables >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y iptables
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "rustdoc builds without warnings (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -p raft-core --features sim --no-deps --quiet

step "raft-core builds for a bare-metal target (no std can creep in)"
cargo build -p raft-core --target thumbv7em-none-eabihf
cargo build -p raft-core --target thumbv7em-none-eabihf --features sim

step "unit, doc, scenario and randomized simulator tests"
cargo test --workspace --all-features

step "the main job's simulation runs clean"
cargo run --quiet --release -p raft-core --features sim --example simulate -- 1 5 > /dev/null

# ---------------------------------------------------------------------------
# wasm and browser (host-wasm, web-demo): installs the wasm32 target,
# wasm-bindgen-cli at the pinned version, chromium and playwright-core if
# missing; then wasm tests in Node and the page's tests in headless chromium.
# Screenshots land in artifacts/.
# ---------------------------------------------------------------------------
step "web: toolchain, chromium and npm packages (installed if missing)"
scripts/install-web-deps.sh

step "web: host-wasm lints for the wasm target"
cargo clippy -p host-wasm --all-targets --all-features --target wasm32-unknown-unknown -- -D warnings

step "web: host-wasm's bindings tested in Node (wasm-bindgen-test)"
cargo test -p host-wasm --target wasm32-unknown-unknown --test web

step "web: build the demo (web-demo/pkg, web-demo/pkg-bugs)"
scripts/build-web.sh

step "web: the page in headless chromium (screenshots in artifacts/)"
(cd web-demo/tests && node --test browser.test.mjs)

step "web: the live view's adapter (frames to the simulator's state, membership included) in Node"
(cd web-demo/tests && node --test liveadapter.test.mjs)

step "web: the live view of a real raftkv cluster in headless chromium (kill the leader from the page)"
(cd web-demo/tests && node --test live.test.mjs)

du -sh target 2>/dev/null | sed 's/^/target directory: /' || true
printf '\nall tests passed in %ss\n' "$(( $(date +%s) - started ))"
