'use strict';
// Raw Engine.IO / Socket.IO over HTTP long-polling with fetch, for checks a client library hides.

const { withTimeout } = require('./client');

/** One polling request; resolves with { status, headers, text }. */
async function poll(base, { method = 'GET', sid, body, query = '', path = '/socket.io/', headers = {} } = {}) {
  const url = `${base}${path}?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}${query}`;
  const res = await withTimeout(fetch(url, { method, body, headers }), `${method} ${url}`);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Engine.IO handshake; resolves with the parsed open packet. */
async function open(base, opts = {}) {
  const r = await poll(base, opts);
  if (r.status !== 200 || r.text[0] !== '0') throw new Error(`handshake failed: ${r.status} ${r.text}`);
  return JSON.parse(r.text.slice(1));
}

/** Handshake and Socket.IO CONNECT to "/": resolves with { sid, connect } (the CONNECT payload). */
async function rawConnect(base, { nsp = '/', auth } = {}) {
  const { sid } = await open(base);
  const prefix = nsp === '/' ? '' : `${nsp},`;
  const p = await poll(base, { method: 'POST', sid, body: `40${prefix}${auth ? JSON.stringify(auth) : ''}` });
  if (p.status !== 200) throw new Error(`CONNECT post failed: ${p.status} ${p.text}`);
  const r = await poll(base, { sid });
  const packet = r.text.split('\x1e').find((x) => x.startsWith(`40${prefix}`));
  if (!packet) throw new Error(`no CONNECT reply in ${JSON.stringify(r.text)}`);
  return { sid, connect: JSON.parse(packet.slice(2 + prefix.length)) };
}

module.exports = { poll, open, rawConnect };
