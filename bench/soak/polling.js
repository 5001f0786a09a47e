'use strict';
// The long-polling part of the soak (bench/soak.sh): SLOTS sessions held at once over the
// hub nodes in turn, each living a random lifetime around LIFETIME seconds and then replaced,
// cycling through three kinds so every way a polling session ends is exercised:
//   0  socket.io-client, polling only, closed with socket.disconnect();
//   1  socket.io-client, polling upgraded to WebSocket, closed with socket.disconnect();
//   2  raw Engine.IO polling (handshake, CONNECT, one poll), then abandoned: no close, no more
//      polls, so the hub must expire it by its heartbeat (pingInterval + pingTimeout).
// socket.io-client sessions join a shared room (soak-<k>, the rooms the WebSocket generators
// use, so they also receive those broadcasts) and emit `hub:to` it with an ack every EMIT_SECS.
// Prints `READY` once every slot has had its first session, `PROGRESS {json}` every
// REPORT_SECS on stderr, and `RESULT {json}` when DURATION seconds after READY are over.
//
// usage: node bench/soak/polling.js --targets 127.0.0.1:39101,127.0.0.2:39102 --slots 200
//        [--lifetime 30] [--duration 120] [--rooms 100] [--emit-secs 5] [--report-secs 60]

const path = require('node:path');
const REPO = path.resolve(__dirname, '..', '..');
const { io } = require(path.join(REPO, 'e2e', 'node_modules', 'socket.io-client'));

function arg(name, d) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return d;
  const v = process.argv[i + 1];
  if (v === undefined) throw new Error(`--${name} needs a value`);
  return typeof d === 'number' ? Number(v) : v;
}
const TARGETS = arg('targets', '127.0.0.1:3000').split(',');
const SLOTS = arg('slots', 200);
const LIFETIME = arg('lifetime', 30);
const DURATION = arg('duration', 120);
const ROOMS = arg('rooms', 100);
const EMIT_SECS = arg('emit-secs', 5);
const REPORT_SECS = arg('report-secs', 60);
for (const [k, v] of Object.entries({ SLOTS, LIFETIME, DURATION, ROOMS, EMIT_SECS, REPORT_SECS })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number, got ${v}`);
}

const c = {
  open: 0, opened: [0, 0, 0], closed: [0, 0, 0], open_errors: 0, first_error: null,
  sent: 0, acked: 0, bad_acks: 0, unacked: 0, delivered: 0, upgraded: 0,
};
let ended = false;
let stopAll;
const stopped = new Promise((r) => { stopAll = r; });
let firstOpen = 0;
// How long an emit waits for its ack before it counts as unacked (a loaded machine is slow).
const ACK_WAIT_MS = 30000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const life = () => LIFETIME * 1000 * (0.5 + Math.random());
const error = (e) => { c.open_errors++; c.first_error = c.first_error || String(e && e.message || e); };

// A socket.io-client session of kind 0 or 1 until its lifetime or the run ends.
function clientSession(target, room, upgrade) {
  return new Promise((resolve) => {
    const socket = io(`http://${target}`, {
      transports: upgrade ? ['polling', 'websocket'] : ['polling'],
      upgrade, reconnection: false, forceNew: true, timeout: 20000,
    });
    let timer = null;
    let emitter = null;
    let done = false;
    let inflight = 0;
    // A session at the end of its life stops emitting and waits (up to ACK_WAIT_MS) for the
    // acks it is owed before it disconnects, so `unacked` counts only acks that never came.
    const finish = async (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(emitter);
      const until = Date.now() + ACK_WAIT_MS;
      while (ok && inflight > 0 && socket.connected && Date.now() < until) await sleep(100);
      socket.disconnect();
      resolve(ok);
    };
    socket.on('connect_error', (e) => { error(e); finish(false); });
    socket.on('disconnect', (reason) => {
      if (!done && reason !== 'io client disconnect') { error(`disconnected: ${reason}`); finish(false); }
    });
    socket.on('soak', () => { c.delivered++; });
    socket.on('connect', async () => {
      socket.io.engine.on('upgrade', () => { c.upgraded++; });
      try {
        const r = await socket.timeout(ACK_WAIT_MS).emitWithAck('hub:join', room);
        if (!r || r.ok !== true) throw new Error(`hub:join answered ${JSON.stringify(r)}`);
      } catch (e) { error(e); finish(false); return; }
      emitter = setInterval(async () => {
        c.sent++;
        inflight++;
        try {
          const r = await socket.timeout(ACK_WAIT_MS).emitWithAck('hub:to', room, 'soak', -1, c.sent);
          if (r && r.ok === true) c.acked++; else c.bad_acks++;
        } catch { c.unacked++; }
        inflight--;
      }, EMIT_SECS * 1000 * (0.5 + Math.random()));
      timer = setTimeout(() => finish(true), life());
      stopped.then(() => finish(true));
    });
  });
}

// A raw polling session (kind 2): open, CONNECT to `/`, read the reply, then abandon it.
async function abandonedSession(target) {
  const base = `http://${target}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  if (!open.startsWith('0{')) throw new Error(`polling handshake answered ${open.slice(0, 80)}`);
  const { sid } = JSON.parse(open.slice(1));
  const post = await fetch(`${base}&sid=${sid}`, { method: 'POST', body: '40' });
  if (!post.ok) throw new Error(`polling CONNECT answered ${post.status}`);
  const reply = await (await fetch(`${base}&sid=${sid}`)).text();
  if (!reply.includes('40{')) throw new Error(`no CONNECT reply: ${reply.slice(0, 80)}`);
  await Promise.race([sleep(life()), stopped]);
}

async function slot(i) {
  let first = true;
  for (let g = i; !ended; g++) {
    const target = TARGETS[g % TARGETS.length];
    const kind = g % 3;
    const room = `soak-${g % ROOMS}`;
    let ok = false;
    c.open++;
    c.opened[kind]++;
    if (first) { first = false; firstOpen++; }
    try {
      ok = kind === 2 ? (await abandonedSession(target), true) : await clientSession(target, room, kind === 1);
    } catch (e) { error(e); }
    c.open--;
    if (ok) c.closed[kind]++; else await sleep(1000);
  }
}

function progress(t0) {
  return { t_secs: Math.round((Date.now() - t0) / 1000), ...c };
}

async function main() {
  const t0 = Date.now();
  const slots = [];
  for (let i = 0; i < SLOTS; i++) {
    slots.push(slot(i));
    if (i % 20 === 19) await sleep(50); // spread the first handshakes
  }
  while (firstOpen < SLOTS) await sleep(100);
  const ready = Date.now();
  console.log(`READY ${SLOTS} polling slots started in ${((ready - t0) / 1000).toFixed(1)} s`);
  const reporter = setInterval(() => console.error(`PROGRESS ${JSON.stringify(progress(ready))}`), REPORT_SECS * 1000);
  await sleep(DURATION * 1000);
  ended = true;
  stopAll();
  clearInterval(reporter);
  // socket.io-client sessions disconnect now; abandoned ones are left for the hub to expire.
  await Promise.race([Promise.all(slots), sleep(ACK_WAIT_MS + 5000)]);
  console.log(`RESULT ${JSON.stringify({ scenario: 'soak-polling', slots: SLOTS, ...progress(ready) })}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
