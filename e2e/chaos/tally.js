'use strict';
// Turns one phase's client reports and sender report into the chaos figures.
//
// Per client and per stream it subscribes to, against the seqs the hub accepted (202):
//   duplicated  a seq that arrived more than once
//   reordered   a seq that arrived after a higher one (first arrival only)
//   missing     an accepted seq that never arrived, classified by the disconnection around it:
//     notRecovered  it falls in the gap of a reconnection where the client was told it was NOT
//                   recovered (`socket.recovered === false`: a new session): between the highest
//                   seq received before that disconnection and the first one received after it.
//                   Allowed by Socket.IO's contract — the client knows its state is gone.
//     recovered     it falls in the gap of a reconnection where `socket.recovered` was true:
//                   recovery promised the missed packets, so this is a loss.
//     silent        no reconnection covers it: the client stayed connected and simply did not
//                   get it (e.g. a partitioned node). A loss.
//     down          the client is still disconnected at the end of the phase.
// Uncertain seqs (the REST call failed in a way that may or may not have applied it) are left
// out of "missing"; they are counted on their own.

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Figures for one phase. `clients`: reports from clients.js; `sent`: the sender report. */
function tally(clients, sent) {
  const t = {
    clients: clients.length,
    reconnectedClients: 0, recoveredClients: 0, notRecoveredClients: 0, stillDown: 0,
    reconnections: 0, recoveredReconnections: 0,
    expected: 0, received: 0,
    missing: { notRecovered: 0, recovered: 0, silent: 0, down: 0 },
    duplicated: 0, reordered: 0, uncertain: 0,
    clientsWithSilentLoss: 0, clientsWithDupOrReorder: 0,
    recoverMs: { p50: null, p99: null, max: null },
    accepted: 0, examples: [],
  };
  const streams = sent.streams;
  for (const st of Object.values(streams)) { t.accepted += st.accepted.length; t.uncertain += st.uncertain.length; }
  const times = [];
  for (const c of clients) {
    if (c.reconnects.length) {
      t.reconnectedClients++;
      if (c.reconnects.every((r) => r.recovered)) t.recoveredClients++; else t.notRecoveredClients++;
    }
    if (c.down) t.stillDown++;
    for (const r of c.reconnects) {
      t.reconnections++;
      if (r.recovered) t.recoveredReconnections++;
      times.push(r.ms);
    }
    let silentHere = 0;
    let badHere = 0;
    for (const st of c.streams) {
      const s = streams[st];
      if (!s) continue;
      const accepted = new Set(s.accepted);
      const arrivals = c.arrivals[st] || [];
      const seen = new Set();
      let max = 0;
      for (const q of arrivals) {
        if (seen.has(q)) { t.duplicated++; badHere++; continue; }
        if (q < max) { t.reordered++; badHere++; }
        seen.add(q);
        if (q > max) max = q;
      }
      // The gaps each reconnection may explain: (highest before, first after).
      const gaps = c.reconnects.map((r) => {
        const n = r.cut[st] || 0;
        let before = 0;
        for (let i = 0; i < n; i++) before = Math.max(before, arrivals[i]);
        const after = n < arrivals.length ? arrivals[n] : Infinity;
        return { before, after, recovered: r.recovered };
      });
      let downFrom = Infinity;
      if (c.down) {
        const n = c.down.cut ? (c.down.cut[st] || 0) : arrivals.length;
        downFrom = 0;
        for (let i = 0; i < n; i++) downFrom = Math.max(downFrom, arrivals[i]);
      }
      t.expected += accepted.size;
      for (const q of accepted) {
        if (seen.has(q)) { t.received++; continue; }
        let kind = 'silent';
        if (q > downFrom) kind = 'down';
        else {
          const g = gaps.find((x) => q > x.before && q < x.after && !x.recovered)
            || gaps.find((x) => q > x.before && q < x.after);
          if (g) kind = g.recovered ? 'recovered' : 'notRecovered';
        }
        t.missing[kind]++;
        if (kind === 'silent' || kind === 'recovered') silentHere++;
        if (t.examples.length < 8 && kind !== 'notRecovered') {
          // Which entry node the lost seq went through, and how many sockets it was queued for.
          const entry = (s.entries || []).filter(([from]) => from <= q).pop();
          const i = s.accepted.indexOf(q);
          t.examples.push({
            g: c.g, sid: c.sid, transport: c.transport, stream: st, q, kind, reconnects: c.reconnects.length,
            entry: entry && entry[1], delivered: s.delivered ? s.delivered[i] : undefined,
          });
        }
      }
    }
    if (silentHere) t.clientsWithSilentLoss++;
    if (badHere) t.clientsWithDupOrReorder++;
  }
  times.sort((a, b) => a - b);
  t.recoverMs = { p50: pct(times, 50), p99: pct(times, 99), max: times.length ? times[times.length - 1] : null };
  return t;
}

/** One line of figures for logs and BENCHMARKS.md. */
function line(name, t) {
  const ms = (v) => (v === null ? '-' : `${v}`);
  return `${name}: clients ${t.clients}, reconnected ${t.reconnectedClients} (recovered ${t.recoveredClients}, `
    + `not recovered ${t.notRecoveredClients}, still down ${t.stillDown}); messages accepted ${t.accepted}, `
    + `deliveries expected ${t.expected}, received ${t.received}; lost: silent ${t.missing.silent}, `
    + `after a recovery ${t.missing.recovered}, while not recovered ${t.missing.notRecovered}, down ${t.missing.down}; `
    + `duplicated ${t.duplicated}, reordered ${t.reordered}, uncertain sends ${t.uncertain}; `
    + `time to reconnect p50 ${ms(t.recoverMs.p50)} ms, p99 ${ms(t.recoverMs.p99)} ms, max ${ms(t.recoverMs.max)} ms`;
}

module.exports = { tally, line, pct };
