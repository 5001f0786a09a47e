#!/usr/bin/env bash
# Soak (issue 11): hold SOAK_CONNS client sessions on the hub for SOAK_MINUTES with steady
# traffic and reconnect churn, read each hub process every minute (RSS, open fds and threads
# from /proc; live tokio tasks, sessions, sockets, rooms and heartbeat entries from /metrics),
# then let every client go and read once more. Prints a per-minute table and a verdict computed
# from the readings (bench/soak/verdict.py); exit status 0 when it passes, 1 when not.
#
#   bench/soak.sh                              30 minutes, 20,000 sessions
#   SOAK_MINUTES=2 SOAK_CONNS=2000 bench/soak.sh   a smoke run
#
# One process may hold at most `ulimit -Hn` open files (20,000 here) and a hub needs one per
# client plus its own (listeners, mesh, gossip, logs): the soft limit is raised to the hard one,
# and when SOAK_CONNS plus SOAK_FD_OVERHEAD does not fit in one process the clients are spread
# over a cluster of enough hub nodes (127.0.0.1, 127.0.0.2, …), said at the start. The
# generators are likewise several processes: one `loadgen soak` (WebSocket, Rust) per node, more
# if a node's share exceeds one process's files, plus one Node process (bench/soak/polling.js)
# holding SOAK_POLLING long-polling sessions (socket.io-client, some upgraded to WebSocket, some
# abandoned for the heartbeat to expire) spread over the nodes.
#
# Traffic (see loadgen/src/scenario/soak.rs): every session joins one of SOAK_ROOMS shared
# rooms (each spans every node); SOAK_RATE operations per second in all, each an emit with an
# ack: `hub:to` the session's room (a broadcast) three times in four, else `hub:join`/`hub:leave`
# of a room of its own. WebSocket sessions live SOAK_LIFETIME_SECS on average (uniform 0.5–1.5×)
# and are replaced at once, closed alternately with the closing handshake and by dropping TCP;
# polling sessions live SOAK_POLLING_LIFETIME_SECS.
#
# Environment (defaults): SOAK_MINUTES=30 SOAK_CONNS=20000 SOAK_POLLING=200 SOAK_ROOMS=100
#   SOAK_RATE=200 SOAK_LIFETIME_SECS=600 SOAK_POLLING_LIFETIME_SECS=30 SOAK_SAMPLE_SECS=60
#   SOAK_SETTLE_SECS=120 (longest wait for the sessions to drain at the end)
#   SOAK_FD_OVERHEAD=500 SOAK_NODES (default: as few as the open-files limit allows)
#   Verdict: SOAK_RSS_WINDOW_MIN=20 SOAK_RSS_TOLERANCE_PCT=2 SOAK_RSS_TOLERANCE_MIB=4
#   SOAK_TASK_SLACK=2 SOAK_FD_SLACK=2
#   CARGO_TARGET_DIR (default <repo>/target), SKIP_BUILD=1 to use the built release binaries,
#   SOAK_BIN_DIR (default $CARGO_TARGET_DIR/release) where socketio-hub and loadgen are.
# Writes bench/results/soak-<UTC time>/ (samples.tsv, summary.md, every process's output).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REL=${SOAK_BIN_DIR:-$CARGO_TARGET_DIR/release}

MINUTES=${SOAK_MINUTES:-30}
CONNS=${SOAK_CONNS:-20000}
POLLING=${SOAK_POLLING:-200}
ROOMS=${SOAK_ROOMS:-100}
RATE=${SOAK_RATE:-200}
LIFETIME=${SOAK_LIFETIME_SECS:-600}
POLL_LIFETIME=${SOAK_POLLING_LIFETIME_SECS:-30}
SAMPLE=${SOAK_SAMPLE_SECS:-60}
SETTLE=${SOAK_SETTLE_SECS:-120}
OVERHEAD=${SOAK_FD_OVERHEAD:-500}

die() { echo "soak: $*" >&2; exit 2; }
for v in MINUTES CONNS POLLING ROOMS RATE LIFETIME POLL_LIFETIME SAMPLE SETTLE OVERHEAD; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "SOAK_$v must be a whole number, got '${!v}'"
done
((MINUTES >= 1)) || die "SOAK_MINUTES must be at least 1"
((SAMPLE >= 1 && ROOMS >= 1 && RATE >= 1 && POLL_LIFETIME >= 1)) || die "SOAK_SAMPLE_SECS, SOAK_ROOMS, SOAK_RATE and SOAK_POLLING_LIFETIME_SECS must be positive"
((POLLING < CONNS)) || die "SOAK_POLLING ($POLLING) must be below SOAK_CONNS ($CONNS)"

# Open files: the soft limit up to the hard one, for this script and everything it starts.
HARD=$(ulimit -Hn)
[[ $HARD == unlimited ]] && HARD=1048576
ulimit -n "$HARD"
PER_NODE=$((HARD - OVERHEAD))
((PER_NODE > 0)) || die "the hard open-files limit ($HARD) leaves nothing after SOAK_FD_OVERHEAD ($OVERHEAD)"
NODES=${SOAK_NODES:-$(((CONNS + PER_NODE - 1) / PER_NODE))}
[[ $NODES =~ ^[1-9][0-9]?$ ]] || die "SOAK_NODES must be 1..99, got '$NODES'"
((CONNS <= NODES * PER_NODE)) || die "$CONNS sessions do not fit in $NODES nodes of $PER_NODE"
if ((CONNS + OVERHEAD > HARD)); then
  echo "soak: open files: soft limit raised to the hard limit $HARD; one hub process cannot hold $CONNS sessions + $OVERHEAD of its own, so $NODES hub nodes share them (≤ $(((CONNS + NODES - 1) / NODES)) each)"
else
  echo "soak: open files: soft limit raised to the hard limit $HARD; $NODES hub node(s)"
fi

if [[ -z ${SKIP_BUILD:-} ]]; then
  (cd "$ROOT" && cargo build --release -p socketio-hub --bin socketio-hub >&2 && cargo build --release -p socketio-hub-loadgen >&2)
fi
HUB=$REL/socketio-hub
LOADGEN=$REL/loadgen
[[ -x $HUB && -x $LOADGEN ]] || die "no release binaries in $REL (unset SKIP_BUILD)"
[[ -d $ROOT/e2e/node_modules/socket.io-client ]] || (cd "$ROOT/e2e" && npm ci --ignore-scripts >&2)

OUT=$ROOT/bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# A port free for TCP and UDP on a host (gossip must be known before the nodes start).
free_port() {
  python3 - "$1" <<'EOF'
import socket, sys
while True:
    t = socket.socket(); t.bind((sys.argv[1], 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind((sys.argv[1], port)); print(port); break
    except OSError:
        pass
    finally:
        t.close(); u.close()
EOF
}

# ---- hub nodes ----
SEEDS=()
GOSSIP=()
for ((i = 1; i <= NODES; i++)); do
  GOSSIP[i]=$(free_port "127.0.0.$i")
  SEEDS+=("\"127.0.0.$i:${GOSSIP[i]}\"")
done
printf 'soak-cluster-secret-%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$OUT/cluster-secret"
chmod 600 "$OUT/cluster-secret"
CLIENT=()
ADMIN=()
HUBPID=()
for ((i = 1; i <= NODES; i++)); do
  {
    echo 'demo_page = false'
    echo 'shutdown_grace_ms = 1000'
    echo '[[permissions]]'
    echo 'namespace = "/"'
    echo 'join = ["*"]'
    echo 'emit = ["*"]'
    if ((NODES > 1)); then
      echo '[cluster]'
      echo "node_name = \"soak$i\""
      echo "seeds = [$(IFS=,; echo "${SEEDS[*]}")]"
      echo "gossip_listen = \"127.0.0.$i:${GOSSIP[i]}\""
      echo "mesh_listen = \"127.0.0.$i:0\""
      echo "secret_file = \"$OUT/cluster-secret\""
    fi
  } >"$OUT/hub-$i.toml"
  "$HUB" --config "$OUT/hub-$i.toml" --listen "127.0.0.$i:0" --admin-listen "127.0.0.$i:0" \
    >"$OUT/hub-$i.out" 2>"$OUT/hub-$i.log" &
  HUBPID[i]=$!
  PIDS+=("${HUBPID[i]}")
done
for ((i = 1; i <= NODES; i++)); do
  for ((t = 0; t < 300; t++)); do
    line=$(grep -m1 '^socketio-hub ready' "$OUT/hub-$i.out" || true)
    [[ -n $line ]] && break
    kill -0 "${HUBPID[i]}" 2>/dev/null || die "hub $i exited: $(tail -5 "$OUT/hub-$i.log")"
    sleep 0.1
  done
  [[ -n $line ]] || die "hub $i printed no ready line in 30 s"
  CLIENT[i]=$(sed -E 's/.*clients=([^ ]+).*/\1/' <<<"$line")
  ADMIN[i]=$(sed -E 's/.*admin=([^ ]+).*/\1/' <<<"$line")
  echo "soak: hub $i pid ${HUBPID[i]} clients ${CLIENT[i]} admin ${ADMIN[i]}"
done
if ((NODES > 1)); then
  for ((t = 0; ; t++)); do
    ok=1
    for ((i = 1; i <= NODES; i++)); do
      curl -s --max-time 2 "http://${ADMIN[i]}/cluster" | python3 -c "
import json, sys
v = json.load(sys.stdin)
sys.exit(0 if len(v['peers']) == $NODES - 1 and all(p['linked'] and p['ready'] for p in v['peers']) else 1)" || ok=0
    done
    ((ok)) && break
    ((t < 300)) || die "the $NODES nodes did not see each other in 30 s"
    sleep 0.1
  done
  echo "soak: $NODES nodes linked"
fi

# ---- readings ----
metric() { awk -v m="$1" '$1 == m { printf "%d", $2; f = 1 } END { if (!f) printf "NA" }' <<<"$2"; }
echo -e "phase\tminute\tunix\tnode\trss_kib\tfds\tthreads\ttasks\tsessions\tsockets\trooms\tdeadlines\tws\tpolling\tload1" >"$OUT/samples.tsv"
sample() { # phase minute
  local load now i pid rss thr fds m
  load=$(cut -d' ' -f1 /proc/loadavg)
  now=$(date +%s)
  for ((i = 1; i <= NODES; i++)); do
    pid=${HUBPID[i]}
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    thr=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    m=$(curl -s --max-time 10 "http://${ADMIN[i]}/metrics" || true)
    echo -e "$1\t$2\t$now\t$i\t$rss\t$fds\t$thr\t$(metric socketio_hub_tokio_alive_tasks "$m")\t$(metric socketio_hub_sessions "$m")\t$(metric socketio_hub_sockets "$m")\t$(metric socketio_hub_rooms "$m")\t$(metric socketio_hub_heartbeat_deadline_entries "$m")\t$(metric 'socketio_hub_connections{transport="websocket"}' "$m")\t$(metric 'socketio_hub_connections{transport="polling"}' "$m")\t$load" >>"$OUT/samples.tsv"
  done
}
sleep 2
sample baseline -1

# ---- generators ----
WS=$((CONNS - POLLING))
# Each generator counts from its own READY; the margin keeps the last reading inside the traffic.
RUN_SECS=$((MINUTES * SAMPLE + 30))
GENS=()
g=0
for ((i = 1; i <= NODES; i++)); do
  share=$((WS / NODES + (i <= WS % NODES ? 1 : 0)))
  per_gen_max=$((HARD - 200))
  n=$(((share + per_gen_max - 1) / per_gen_max))
  for ((k = 0; k < n; k++)); do
    c=$((share / n + (k < share % n ? 1 : 0)))
    g=$((g + 1))
    "$LOADGEN" soak --target "${CLIENT[i]}" --label "node$i" --connections "$c" --rooms "$ROOMS" \
      --rate "$(python3 -c "print($RATE * $c / $WS)")" --churn-lifetime-secs "$LIFETIME" \
      --duration-secs "$RUN_SECS" --report-secs "$SAMPLE" --seed "$g" \
      >"$OUT/gen-$g.out" 2>"$OUT/gen-$g.err" &
    PIDS+=("$!")
    GENS+=("$!:$OUT/gen-$g.out")
  done
done
TARGETS=$(for ((i = 1; i <= NODES; i++)); do printf '%s,' "${CLIENT[i]}"; done)
if ((POLLING > 0)); then
  node "$ROOT/bench/soak/polling.js" --targets "${TARGETS%,}" --slots "$POLLING" --rooms "$ROOMS" \
    --lifetime "$POLL_LIFETIME" --duration "$RUN_SECS" --report-secs "$SAMPLE" \
    >"$OUT/polling.out" 2>"$OUT/polling.err" &
  PIDS+=("$!")
  GENS+=("$!:$OUT/polling.out")
fi
echo "soak: $g WebSocket generator(s) holding $WS sessions$( ((POLLING > 0)) && echo ", 1 polling generator holding $POLLING"); ramping up"
for gen in "${GENS[@]}"; do
  pid=${gen%%:*}
  out=${gen#*:}
  until grep -q '^READY' "$out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "generator $out exited before READY: $(tail -3 "${out%.out}.err")"
    sleep 1
  done
done
T0=$(date +%s)
echo "soak: all $CONNS sessions open; $MINUTES × ${SAMPLE}s of traffic"
for ((m = 0; m <= MINUTES; m++)); do
  while (($(date +%s) < T0 + m * SAMPLE)); do sleep 1; done
  sample run "$m"
  awk -F'\t' -v m="$m" '$1 == "run" && $2 == m { printf "soak: minute %d node %d: RSS %d KiB, %d fds, %d threads, %s tasks, %s sessions, load %s\n", m, $4, $5, $6, $7, $8, $9, $15 }' "$OUT/samples.tsv"
done

# ---- the end: clients go, the hub must come back to its baseline ----
status=0
for gen in "${GENS[@]}"; do
  wait "${gen%%:*}" || { echo "soak: generator ${gen#*:} failed" >&2; status=1; }
done
END=$(date +%s)
sample end 0
for ((t = 0; t < SETTLE; t++)); do
  drained=1
  for ((i = 1; i <= NODES; i++)); do
    m=$(curl -s --max-time 5 "http://${ADMIN[i]}/metrics" || true)
    for k in sessions sockets rooms heartbeat_deadline_entries; do
      [[ $(metric "socketio_hub_$k" "$m") == 0 ]] || drained=0
    done
  done
  ((drained)) && break
  sleep 1
done
sleep 10 # let the last connection tasks finish
sample after "$(($(date +%s) - END))"
for ((i = 1; i <= NODES; i++)); do kill -TERM "${HUBPID[i]}" 2>/dev/null || true; done
for ((i = 1; i <= NODES; i++)); do wait "${HUBPID[i]}" || true; done
PIDS=()

{
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); open files hard limit $HARD"
  echo "run: $CONNS sessions ($WS WebSocket over $g loadgen processes, $POLLING polling in 1 Node process) on $NODES hub node(s), $ROOMS rooms, $RATE ops/s, WebSocket lifetime ${LIFETIME}s, polling lifetime ${POLL_LIFETIME}s, $MINUTES × ${SAMPLE}s"
} >"$OUT/run.txt"
if ! python3 "$ROOT/bench/soak/verdict.py" "$OUT" >"$OUT/summary.md"; then status=1; fi
cat "$OUT/summary.md"
echo "soak: results in $OUT"
exit "$status"
