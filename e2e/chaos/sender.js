'use strict';
// The chaos senders, in their own process: one loop per stream, each calling the REST API
// (`POST /api/v1/emit`) with `m({ p: phase, s: stream, q: seq })`, seq 1, 2, 3, … per stream.
// Room stream `r<k>` emits to room `r<k>`; direct stream `d<g>` emits to client g's socket id.
//
// Entry nodes: the orchestrator says which nodes are usable (it removes a node before killing or
// terminating it, as a Service removes an endpoint before preStop ends). Stream k uses usable
// node k mod n and sticks to it; when that changes it waits FENCE_MS first, so its earlier
// messages, still in the old node's mesh queues, arrive before the first one through the new node
// (the hub orders messages per entry node, not across entry nodes).
//
// Retries never create duplicates: a call is retried (same seq, next usable node) only when the
// connection was refused or the node answered 503 + Retry-After (fenced) — provably not applied. Any other failure (reset, timeout, a non-202
// answer) leaves that seq "uncertain": it is neither expected nor blamed if it arrives.
//
// IPC (parent → child): start { key, nodes }, usable { names }, target { g, sid }, run { phase,
// streams: [{ name, hz }] }, stop → report { phase, streams: { [name]: { accepted, uncertain, ... } } }.

const crypto = require('node:crypto');

const FENCE_MS = Number(process.env.CHAOS_FENCE_MS || 300);
const CALL_TIMEOUT_MS = 5000;

let key = null;
let nodes = [];
let usable = [];
const sids = new Map();
let run = null;

function send(m) { if (process.connected) process.send(m); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function jwt() {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ sub: 'chaos-sender', iat: now, exp: now + 7200 })}`;
  return `${body}.${crypto.createHmac('sha256', key).update(body).digest('base64url')}`;
}
let bearer = null;

function refused(e) {
  for (let c = e; c; c = c.cause) if (c.code === 'ECONNREFUSED') return true;
  return false;
}

async function emit(node, target, payload) {
  const body = JSON.stringify({ ...target, event: 'm', args: [payload] });
  try {
    const r = await fetch(`${node.base}/api/v1/emit`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const text = await r.text();
    // A fenced node answers 503 with Retry-After and applies nothing: as good as refused.
    if (r.status === 503 && r.headers.get('retry-after')) return 'refused';
    if (r.status !== 202) return `status ${r.status}`;
    try { return { delivered: JSON.parse(text).delivered }; } catch { return { delivered: null }; }
  } catch (e) {
    return refused(e) ? 'refused' : `error ${(e.cause && e.cause.code) || e.name}`;
  }
}

async function loop({ name: st, hz }, k, state) {
  const period = 1000 / hz;
  // Spread the streams' phases over one period.
  await sleep((k * period) / state.count);
  let entry = null;
  let seq = 0;
  let nextAt = Date.now();
  while (!state.stopping) {
    nextAt += period;
    const target = st.startsWith('d') ? (sids.has(Number(st.slice(1))) ? { sockets: [sids.get(Number(st.slice(1)))] } : null) : { rooms: [st] };
    if (target) {
      seq++;
      const q = seq;
      for (let attempt = 0; ; attempt++) {
        const want = usable.length ? usable[k % usable.length] : null;
        if (!want) { await sleep(100); if (state.stopping) break; continue; }
        if (entry !== want) {
          if (entry) await sleep(FENCE_MS);
          state.report[st].entries.push([q, want]);
        }
        entry = want;
        const node = nodes.find((n) => n.name === entry);
        const res = await emit(node, target, { p: state.phase, s: st, q });
        if (typeof res === 'object') { state.report[st].accepted.push(q); state.report[st].delivered.push(res.delivered); break; }
        if (res === 'refused' && attempt < 20) {
          state.report[st].refusedRetries++;
          // Not applied: try again, through another node when the orchestrator says so.
          await sleep(100);
          continue;
        }
        state.report[st].uncertain.push({ q, why: res, node: entry });
        break;
      }
    }
    const wait = nextAt - Date.now();
    if (wait > 0) await sleep(wait); else nextAt = Date.now();
  }
}

process.on('message', async (m) => {
  if (m.type === 'start') {
    key = m.key;
    nodes = m.nodes;
    usable = nodes.map((n) => n.name);
    bearer = jwt();
  } else if (m.type === 'nodes') {
    nodes = m.nodes;
  } else if (m.type === 'usable') {
    usable = m.names;
  } else if (m.type === 'target') {
    sids.set(m.g, m.sid);
  } else if (m.type === 'run') {
    const state = { phase: m.phase, count: m.streams.length, stopping: false, report: {} };
    for (const { name: st } of m.streams) state.report[st] = { accepted: [], delivered: [], uncertain: [], refusedRetries: 0, entries: [] };
    state.loops = m.streams.map((st, k) => loop(st, k, state));
    run = state;
  } else if (m.type === 'stop') {
    const state = run;
    run = null;
    state.stopping = true;
    await Promise.all(state.loops);
    send({ type: 'report', phase: state.phase, streams: state.report });
  }
});
process.on('disconnect', () => process.exit(0));
