#!/usr/bin/env bash
# The main job. Until the native host exists (issue 5) this runs a simulated
# 5-node cluster through elections, a leader crash and a partition, and prints
# what happens. Usage: scripts/run.sh [SEED] [NODES]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p raft-core --features sim --example simulate -- "$@"
