#!/usr/bin/env bash
# Cluster benchmark: broadcast latency (p50/p99) and deliveries/s with one node vs three nodes
# on 127.0.0.1-3, then gossip convergence after a join and after a SIGKILL. Prints one JSON
# object per measurement. Builds the release binary unless HUB_BIN is set.
#
#   bench/cluster.sh [--receivers 900] [--broadcasts 2000] [--window 16]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${HUB_BIN:-}" ]]; then
  cargo build --release -p socketio-hub >&2
  export HUB_BIN="${CARGO_TARGET_DIR:-target}/release/socketio-hub"
fi
[[ -d e2e/node_modules ]] || (cd e2e && npm ci >&2)
exec node bench/cluster/bench.js "$@"
