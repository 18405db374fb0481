#!/usr/bin/env bash
# Installs what the web demo's build and tests need, if missing: the wasm32
# target, wasm-bindgen-cli at the version host-wasm pins, Debian's chromium
# (for the browser tests) and the tests' npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' host-wasm/Cargo.toml)
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (a few minutes)"
  # --locked pins the CLI's own dependency versions; if the registry no longer
  # has one of them, fall back to a fresh resolution of the same CLI version.
  cargo install wasm-bindgen-cli --version "$want" --locked ||
    cargo install wasm-bindgen-cli --version "$want"
fi
if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi
if [ ! -x /usr/bin/chromium ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
if [ ! -d web-demo/tests/node_modules/playwright-core ]; then
  (cd web-demo/tests && npm ci --no-audit --no-fund)
fi
