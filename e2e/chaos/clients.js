'use strict';
// A chaos client process: holds `count` official socket.io-client sockets (client g is
// polling-only when g ≡ -1 mod pollingEvery, else WebSocket-only) connected through the balancer with reconnection on,
// and records, per phase, what each one received and every disconnection.
//
// Every message is `m({ p: phase, s: stream, q: seq })`. Client g is in room `r<g % rooms>` (its
// room stream is `r<k>`), and when it is a direct target its stream is `d<g>` (sent to its socket
// id). A client that connects without being recovered (`socket.recovered` false: a new session)
// joins its room again and reports its new socket id, so direct senders can follow it.
//
// IPC (parent → child): start, phase, progress, report, close. Child → parent: sid, ready,
// progress, report (see the handlers below).

const { io } = require('socket.io-client');

const clients = [];
let phase = null;
let conf = null;

/** Direct targets: g ≡ 0 and g ≡ -1 (mod every), so WebSocket and polling clients are both among them. */
function isDirect(g, every) { return g % every === 0 || g % every === every - 1; }

function send(m) { if (process.connected) process.send(m); }

class Client {
  constructor(g) {
    this.g = g;
    this.transport = g % conf.pollingEvery === conf.pollingEvery - 1 ? 'polling' : 'websocket';
    this.room = `r${g % conf.rooms}`;
    this.direct = isDirect(g, conf.directEvery) ? `d${g}` : null;
    this.arrivals = new Map();
    this.reconnects = [];
    this.down = null;
    this.stale = 0;
    this.everConnected = false;
    this.joined = false;
    this.joining = null;
    const s = io(conf.url, {
      transports: [this.transport],
      forceNew: true,
      reconnection: true,
      reconnectionDelay: conf.reconnectDelayMs,
      reconnectionDelayMax: conf.reconnectDelayMaxMs,
      randomizationFactor: 0.5,
      timeout: 20000,
    });
    this.s = s;
    s.on('m', (msg) => this.onMessage(msg));
    s.on('connect', () => this.onConnect());
    s.on('disconnect', (reason) => this.onDisconnect(reason));
    // Why reconnection attempts failed, for the report (first few only).
    s.io.on('reconnect_attempt', (n) => { this.attempts = n; });
    s.on('connect_error', (e) => { if (this.down && this.down.errors.length < 3) this.down.errors.push(e.message); });
  }

  streams() { return this.direct ? [this.room, this.direct] : [this.room]; }

  onMessage(msg) {
    if (!msg || msg.p !== phase) { this.stale++; return; }
    let a = this.arrivals.get(msg.s);
    if (!a) { a = []; this.arrivals.set(msg.s, a); }
    a.push(msg.q);
  }

  onDisconnect(reason) {
    if (reason === 'io client disconnect') return;
    const cut = {};
    for (const [s, a] of this.arrivals) cut[s] = a.length;
    this.down = { at: Date.now(), phase, reason, cut, errors: [] };
    this.attempts = 0;
    // The server closed the session itself (a DISCONNECT packet): the client does not
    // reconnect on its own then.
    if (reason === 'io server disconnect') setTimeout(() => this.s.connect(), conf.reconnectDelayMs);
  }

  onConnect() {
    const s = this.s;
    const recovered = s.recovered === true;
    if (this.down) {
      const d = this.down;
      this.down = null;
      // A disconnection is reported in the phase it ends in; its cut only counts if it began
      // in that phase too (else the streams it cut belong to another phase).
      this.reconnects.push({
        downAt: d.at, upAt: Date.now(), ms: Date.now() - d.at, recovered, reason: d.reason,
        cut: d.phase === phase ? d.cut : {}, samePhase: d.phase === phase, attempts: this.attempts, errors: d.errors,
      });
    }
    // A recovered session keeps its rooms — unless its join was never acknowledged (the
    // connection dropped with the join in flight: recovery replays what the server sent, not
    // what the client sent, so the join may never have arrived): then it joins now (joining
    // twice is harmless).
    if (recovered && this.joined) return;
    this.joined = false;
    // A new session (or a join to finish): into the room, then tell the parent the id.
    const join = s.timeout(10000).emitWithAck('hub:join', this.room).then((r) => {
      if (!r || r.ok !== true) throw new Error(`hub:join answered ${JSON.stringify(r)}`);
      if (this.joining !== join) return;
      this.joined = true;
      send({ type: 'sid', g: this.g, sid: s.id, first: !this.everConnected });
      this.everConnected = true;
    }).catch((e) => {
      // A join that did not complete (e.g. the node died meanwhile) is retried on the next
      // connection; if the socket is still connected, retry now.
      if (s.connected) setTimeout(() => { if (s.connected && this.joining === join) this.onConnect(); }, 500);
      send({ type: 'log', line: `client ${this.g}: join failed: ${e.message}` });
    });
    this.joining = join;
  }

  /** Whether the last seq of every stream in `last` it subscribes to has arrived. */
  hasTail(last) {
    for (const st of this.streams()) {
      const want = last[st];
      if (!want) continue;
      const a = this.arrivals.get(st) || [];
      if (!a.includes(want)) return false;
    }
    return true;
  }

  report() {
    const arrivals = {};
    for (const [s, a] of this.arrivals) arrivals[s] = a;
    return {
      g: this.g, sid: this.s.id, transport: this.transport, streams: this.streams(), connected: this.s.connected,
      down: this.down ? { at: this.down.at, reason: this.down.reason, cut: this.down.phase === phase ? this.down.cut : {} } : null,
      arrivals, reconnects: this.reconnects, stale: this.stale,
    };
  }
}

process.on('message', async (m) => {
  if (m.type === 'start') {
    conf = m;
    phase = m.phase;
    // Ramp up in batches of 10, each connected and joined before the next: a burst of a
    // thousand handshakes at once (through the balancer, on a loaded machine) times clients out,
    // they retry with new sessions, and the hub spends its time on abandoned ones.
    for (let k = 0; k < m.count; k += 10) {
      const batch = [];
      for (let j = k; j < Math.min(k + 10, m.count); j++) batch.push(new Client(m.first + j));
      clients.push(...batch);
      const until = Date.now() + 20000;
      while (Date.now() < until && !batch.every((c) => c.everConnected)) await new Promise((r) => setTimeout(r, 20));
    }
    // Stragglers (a handshake or join that timed out on a loaded machine) retry on their own:
    // give them up to 60 s after the last batch.
    const t1 = Date.now();
    const poll = setInterval(() => {
      const ok = clients.every((c) => c.everConnected && c.s.connected);
      if (ok || Date.now() - t1 > 60000) {
        clearInterval(poll);
        send({ type: 'ready', ok, connected: clients.filter((c) => c.s.connected).length });
      }
    }, 100);
  } else if (m.type === 'phase') {
    phase = m.phase;
    for (const c of clients) { c.arrivals = new Map(); c.reconnects = []; c.stale = 0; }
    send({ type: 'phase', phase });
  } else if (m.type === 'progress') {
    const connected = clients.filter((c) => c.s.connected && !c.down).length;
    const tails = m.last ? clients.filter((c) => c.hasTail(m.last)).length : 0;
    send({ type: 'progress', id: m.id, connected, tails, count: clients.length });
  } else if (m.type === 'report') {
    send({ type: 'report', clients: clients.map((c) => c.report()) });
  } else if (m.type === 'close') {
    for (const c of clients) c.s.disconnect();
    setTimeout(() => process.exit(0), 100);
  }
});
process.on('disconnect', () => process.exit(0));
