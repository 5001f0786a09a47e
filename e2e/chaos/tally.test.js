'use strict';
// The chaos figures' rules on hand-made reports: what counts as lost, duplicated, reordered,
// and which losses a "not recovered" reconnection explains.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { tally, pct } = require('./tally');

const sent = (streams) => ({ streams: Object.fromEntries(Object.entries(streams).map(([k, v]) => [k, { accepted: v, uncertain: [] }])) });
const client = (over) => ({ g: 0, transport: 'websocket', streams: ['r0'], connected: true, down: null, arrivals: {}, reconnects: [], stale: 0, ...over });
const seq = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test('a client that got everything once, in order: all zeros', () => {
  const t = tally([client({ arrivals: { r0: seq(1, 10) } })], sent({ r0: seq(1, 10) }));
  assert.equal(t.received, 10);
  assert.deepEqual(t.missing, { notRecovered: 0, recovered: 0, silent: 0, down: 0 });
  assert.equal(t.duplicated + t.reordered, 0);
});

test('duplicates and reorders are counted once per arrival', () => {
  const t = tally([client({ arrivals: { r0: [1, 3, 2, 3, 4] } })], sent({ r0: [1, 2, 3, 4] }));
  assert.equal(t.duplicated, 1);
  assert.equal(t.reordered, 1);
  assert.equal(t.received, 4);
});

test('a gap with no reconnection is silent loss', () => {
  const t = tally([client({ arrivals: { r0: [1, 2, 5] } })], sent({ r0: seq(1, 5) }));
  assert.equal(t.missing.silent, 2);
  assert.equal(t.clientsWithSilentLoss, 1);
});

test('a gap inside a not-recovered reconnection is allowed; one outside it is not', () => {
  const reconnects = [{ ms: 300, recovered: false, cut: { r0: 3 } }];
  // Before the drop: 1-3; after it: 7, 8, 10. 4-6 fall in the gap (explained); 9 does not.
  const t = tally([client({ arrivals: { r0: [1, 2, 3, 7, 8, 10] }, reconnects })], sent({ r0: seq(1, 10) }));
  assert.equal(t.missing.notRecovered, 3);
  assert.equal(t.missing.silent, 1);
  assert.equal(t.notRecoveredClients, 1);
});

test('a gap inside a recovered reconnection is a loss', () => {
  const reconnects = [{ ms: 300, recovered: true, cut: { r0: 3 } }];
  const t = tally([client({ arrivals: { r0: [1, 2, 3, 6] }, reconnects })], sent({ r0: seq(1, 6) }));
  assert.equal(t.missing.recovered, 2);
  assert.equal(t.recoveredClients, 1);
});

test('a client still down: what it missed since the drop is "down"', () => {
  const t = tally([client({ arrivals: { r0: [1, 2] }, down: { at: 0, cut: { r0: 2 } } })], sent({ r0: seq(1, 5) }));
  assert.equal(t.missing.down, 3);
  assert.equal(t.stillDown, 1);
});

test('direct streams count for their target only; uncertain sends are not expected', () => {
  const s = sent({ r0: [1, 2], d0: [1, 3] });
  s.streams.d0.uncertain = [{ q: 2 }];
  const t = tally([client({ streams: ['r0', 'd0'], arrivals: { r0: [1, 2], d0: [1, 3] } }), client({ g: 1, arrivals: { r0: [1, 2] } })], s);
  assert.equal(t.expected, 6);
  assert.equal(t.received, 6);
  assert.equal(t.uncertain, 1);
});

test('percentiles', () => {
  const xs = seq(1, 100);
  assert.equal(pct(xs, 50), 50);
  assert.equal(pct(xs, 99), 99);
  assert.equal(pct([], 50), null);
});
