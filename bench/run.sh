#!/usr/bin/env bash
# Benchmark runner: Node socket.io 4.8, socketioxide 0.18 and socketio-hub, side by side, in one
# run. Each server runs alone, pinned to one core (SERVER_CPU, default 0), freshly started for
# each scenario; the load generator is pinned to the other core (GEN_CPU, default 1).
#
#   bench/run.sh [idle] [fanout] [handshake] [echo]      (default: all four)
#
# Writes bench/results/<UTC date-time>.json (gitignored) and prints a Markdown table.
# Environment knobs (defaults are the sizes of BENCHMARKS.md):
#   SERVERS="node socketioxide hub"  IDLE_CONNS=19000  FANOUT_RECEIVERS=10000
#   FANOUT_BROADCASTS=100  FANOUT_WINDOW=8  HS_CONCURRENCY=64  HS_SECS=10
#   ECHO_CLIENTS=1000  ECHO_RATE=10000  ECHO_SECS=20  ECHO_WARMUP=3
#   CARGO_TARGET_DIR (default <repo>/target)  SKIP_BUILD=1 to reuse built binaries.
#   SCHED=rr (default when root) runs servers and generator under SCHED_RR priority 1 (chrt),
#   so that other work on a shared machine (builds) neither delays their wake-ups nor takes
#   their core; the kernel's RT throttling still leaves others 5% of each core. Round-robin,
#   not FIFO: under FIFO a busy Node main thread starves V8's compiler threads on the same
#   core, so Node never optimizes its code (measured: 95 µs of CPU per echo instead of ~40).
#   SCHED=fifo, SCHED=nice (nice -20) and SCHED=normal are there to compare.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REL=$CARGO_TARGET_DIR/release
SERVERS=${SERVERS:-"node socketioxide hub"}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
if [ "$(id -u)" = 0 ]; then SCHED=${SCHED:-rr}; else SCHED=${SCHED:-normal}; fi
case $SCHED in
  rr) PRIO=(chrt -r 1) ;;
  fifo) PRIO=(chrt -f 1) ;;
  nice) PRIO=(nice -n -20) ;;
  *) PRIO=() ;;
esac
# Prefixes that run a command on one core at the chosen priority. chrt, nice and taskset all
# exec, so $! is the command's own pid (a shell function here would put a subshell's pid in $!).
ON_SERVER_CPU=("${PRIO[@]}" taskset -c "$SERVER_CPU")
ON_GEN_CPU=("${PRIO[@]}" taskset -c "$GEN_CPU")
IDLE_CONNS=${IDLE_CONNS:-19000}
FANOUT_RECEIVERS=${FANOUT_RECEIVERS:-10000}
FANOUT_BROADCASTS=${FANOUT_BROADCASTS:-100}
FANOUT_WINDOW=${FANOUT_WINDOW:-8}
HS_CONCURRENCY=${HS_CONCURRENCY:-64}
HS_SECS=${HS_SECS:-10}
ECHO_CLIENTS=${ECHO_CLIENTS:-1000}
ECHO_RATE=${ECHO_RATE:-10000}
ECHO_SECS=${ECHO_SECS:-20}
ECHO_WARMUP=${ECHO_WARMUP:-3}
BENCH_KEY=bench-access-key-0123456789abcdef

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(idle fanout handshake echo)

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=$BENCH/results/$STAMP.json
WORK=$BENCH/results/$STAMP.d
mkdir -p "$WORK"
LINES=$WORK/results.jsonl
: >"$LINES"

log() { echo "[bench] $*" >&2; }

# ---- build -------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-}" != 1 ]; then
  log "building loadgen and the socketioxide peer (release)"
  (cd "$ROOT" && cargo build --release -q -p socketio-hub-loadgen)
  (cd "$BENCH/peers/socketioxide" && cargo build --release -q)
  if [ ! -d "$BENCH/peers/node/node_modules/socket.io" ]; then
    log "installing the Node peer's packages"
    (cd "$BENCH/peers/node" && npm ci --no-audit --no-fund --silent)
  fi
  if [[ " $SERVERS " == *" hub "* ]]; then
    log "building socketio-hub (release)"
    if ! (cd "$ROOT" && cargo build --release -q -p socketio-hub) >"$WORK/hub-build.log" 2>&1; then
      log "socketio-hub did not build (see $WORK/hub-build.log); running without it"
      SERVERS=${SERVERS//hub/}
    fi
  fi
fi
LOADGEN=$REL/loadgen

# ---- servers -----------------------------------------------------------------------------
SERVER_PID=
SERVER_ADDR=
SERVER_ADMIN=
APP_PID=

# wait_ready LOGFILE PID: wait for a "ready" line; prints the address after the given key.
wait_ready() {
  local file=$1 pid=$2 key=$3
  for _ in $(seq 1 200); do
    if grep -q "ready" "$file" 2>/dev/null; then
      sed -n "s/.*ready.*${key}=\([^ ]*\).*/\1/p" "$file" | head -1
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited: $(tail -5 "$file")"; return 1; }
    sleep 0.1
  done
  log "no ready line from $pid in 20 s"
  return 1
}

# start_server NAME [webhook]: start NAME pinned to SERVER_CPU; sets SERVER_PID, SERVER_ADDR.
start_server() {
  local name=$1 mode=${2:-} logf=$WORK/$1-$RANDOM.log
  case $name in
    node)
      "${ON_SERVER_CPU[@]}" node "$BENCH/peers/node/server.js" 127.0.0.1:0 >"$logf" 2>&1 &
      ;;
    socketioxide)
      "${ON_SERVER_CPU[@]}" "$REL/bench-peer-socketioxide" 127.0.0.1:0 >"$logf" 2>&1 &
      ;;
    hub)
      local cfg=$BENCH/hub.toml
      if [ "$mode" = webhook ]; then
        cfg=$WORK/hub-webhook.toml
        cat "$BENCH/hub.toml" - >"$cfg" <<EOF

[upstream]
mode = "webhook"
webhook_url = "http://$APP_ADDR/hook"

[auth]
access_keys = ["$BENCH_KEY"]
EOF
      fi
      "${ON_SERVER_CPU[@]}" "$REL/socketio-hub" --config "$cfg" --listen 127.0.0.1:0 \
        --admin-listen 127.0.0.1:0 >"$logf" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  SERVER_ADDR=$(wait_ready "$logf" "$SERVER_PID" clients) || { stop_server; return 1; }
  SERVER_ADMIN=$(sed -n 's/.*ready.* admin=\([^ ]*\).*/\1/p' "$logf" | head -1)
  sleep 1
}

# stop PID: SIGTERM, and SIGKILL if it is still there after 3 s (a draining hub waits for its
# clients, which are gone already).
stop() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 30); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

stop_server() {
  [ -n "$SERVER_PID" ] && stop "$SERVER_PID"
  SERVER_PID=
}

start_app() {
  local logf=$WORK/webhook-echo.log
  "${ON_GEN_CPU[@]}" "$LOADGEN" webhook-echo --access-key "$BENCH_KEY" >"$logf" 2>&1 &
  APP_PID=$!
  APP_ADDR=$(wait_ready "$logf" "$APP_PID" addr)
}

stop_app() {
  [ -n "$APP_PID" ] && stop "$APP_PID"
  APP_PID=
}

cleanup() {
  stop_server
  stop_app
}
trap cleanup EXIT

# run_load SERVER SCENARIO [loadgen args…]: run the generator pinned to GEN_CPU, keep its
# RESULT line (or an error record).
run_load() {
  local server=$1 scenario=$2
  shift 2
  local out=$WORK/$server-$scenario-$RANDOM.out
  log "$scenario on $server: loadgen $scenario $*"
  if "${ON_GEN_CPU[@]}" "$LOADGEN" "$scenario" --target "$SERVER_ADDR" --label "$server" \
    --server-pid "$SERVER_PID" "$@" >"$out" 2>&1 && grep -q '^RESULT ' "$out"; then
    grep '^RESULT ' "$out" | sed 's/^RESULT //' >>"$LINES"
    grep -v '^RESULT ' "$out" | tail -1 >&2
  else
    local err
    err=$(grep -v '^ *[0-9]*:\|^ *at \|^$\|Stack backtrace' "$out" | head -3 | tr '\n' ' ')
    log "FAILED: $err"
    python3 -c 'import json, sys; print(json.dumps(dict(zip(["scenario", "server", "mode", "error"], sys.argv[1:]))))' \
      "$scenario" "$server" "${MODE:-}" "$err" >>"$LINES"
  fi
  if [ -n "$SERVER_ADMIN" ]; then
    # The hub's own view of the run (webhook latency and failures, drops), for diagnosis.
    curl -s --max-time 5 "http://$SERVER_ADMIN/metrics" >"$WORK/$server-$scenario-${MODE:-}-metrics.txt" || true
  fi
  if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "$server exited during $scenario"
  fi
}

# ---- scenarios ---------------------------------------------------------------------------
for scenario in "${SCENARIOS[@]}"; do
  for server in $SERVERS; do
    case $scenario in
      idle)
        start_server "$server" || continue
        MODE= run_load "$server" idle --connections "$IDLE_CONNS"
        stop_server
        ;;
      fanout)
        start_server "$server" || continue
        MODE= run_load "$server" fanout --receivers "$FANOUT_RECEIVERS" \
          --broadcasts "$FANOUT_BROADCASTS" --window "$FANOUT_WINDOW"
        stop_server
        ;;
      handshake)
        start_server "$server" || continue
        MODE= run_load "$server" handshake --concurrency "$HS_CONCURRENCY" --duration-secs "$HS_SECS"
        stop_server
        ;;
      echo)
        echo_args=(--clients "$ECHO_CLIENTS" --rate "$ECHO_RATE" --duration-secs "$ECHO_SECS"
          --warmup-secs "$ECHO_WARMUP")
        if [ "$server" = hub ]; then
          start_app
          if start_server hub webhook; then
            MODE=echo run_load hub echo "${echo_args[@]}" --mode echo --app-pid "$APP_PID"
            stop_server
          fi
          stop_app
        else
          start_server "$server" || continue
          MODE=echo run_load "$server" echo "${echo_args[@]}" --mode echo
          stop_server
        fi
        start_server "$server" || continue
        MODE=hub-to run_load "$server" echo "${echo_args[@]}" --mode hub-to
        stop_server
        ;;
      *)
        log "unknown scenario $scenario (idle, fanout, handshake, echo)"
        exit 2
        ;;
    esac
    sleep 1
  done
done

# ---- results -----------------------------------------------------------------------------
python3 - "$LINES" "$OUT" "$SERVERS" <<EOF
import json, platform, subprocess, sys
lines, out, servers = sys.argv[1], sys.argv[2], sys.argv[3].split()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None
doc = {
    "date": "$STAMP",
    "machine": {"nproc": int(subprocess.run(["nproc"], capture_output=True, text=True).stdout),
                "cpu": cpu, "kernel": platform.release(), "node": version(["node", "--version"]),
                "git": version(["git", "-C", "$ROOT", "rev-parse", "--short", "HEAD"])},
    "pinning": {"server_cpu": $SERVER_CPU, "generator_cpu": $GEN_CPU, "sched": "$SCHED"},
    "loadavg_before": "$LOAD_BEFORE", "loadavg_after": open("/proc/loadavg").read().split()[:3],
    "settings": {"idle_connections": $IDLE_CONNS, "fanout_receivers": $FANOUT_RECEIVERS,
                 "fanout_broadcasts": $FANOUT_BROADCASTS, "fanout_window": $FANOUT_WINDOW,
                 "handshake_concurrency": $HS_CONCURRENCY, "handshake_secs": $HS_SECS,
                 "echo_clients": $ECHO_CLIENTS, "echo_rate": $ECHO_RATE, "echo_secs": $ECHO_SECS,
                 "echo_warmup_secs": $ECHO_WARMUP},
    "servers": servers,
    "results": [json.loads(l) for l in open(lines) if l.strip()],
}
json.dump(doc, open(out, "w"), indent=1)
EOF
log "results: $OUT"
python3 "$BENCH/table.py" "$OUT"
