'use strict';
// Client authentication with `[auth] client_auth = "required"`: HS256 JWTs signed with an access key.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub, ACCESS_KEY, SECOND_KEY } = require('../harness/hub');
const { Clients, call, connectError, signJwt } = require('../harness/client');

let hub;
const clients = new Clients();
before(async () => {
  hub = await startHub({
    auth: { access_keys: [ACCESS_KEY, SECOND_KEY], client_auth: 'required' },
    permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }],
  });
});
after(async () => { if (hub) await hub.close(); });
afterEach(() => clients.closeAll());

// A refusal must say what is wrong with the token, not look like a network failure.
const CLEAR = /token|auth|jwt|credential/i;

async function refused(opts) {
  const err = await connectError(clients.socket(hub.url, opts));
  assert.notEqual(err.type, 'TransportError', `refusal must be a CONNECT_ERROR, not a transport error: ${err.message}`);
  assert.match(err.message, CLEAR);
  return err;
}

test('no token: connect_error with a clear message', async () => {
  await refused({});
});

test('a token signed with another key: connect_error', async () => {
  await refused({ auth: { token: signJwt({ sub: 'mallory' }, 'not-the-access-key-not-the-access-key!!') } });
});

test('an expired token: connect_error', async () => {
  await refused({ auth: { token: signJwt({ sub: 'late', exp: Math.floor(Date.now() / 1000) - 60 }, ACCESS_KEY) } });
});

test('a garbage token: connect_error', async () => {
  await refused({ auth: { token: 'not.a.jwt' } });
  await refused({ query: { access_token: 'garbage' } });
});

test('a valid token in auth {token} connects', async () => {
  const s = await clients.connect(hub.url, { auth: { token: signJwt({ sub: 'alice' }, ACCESS_KEY) } });
  assert.deepEqual(await call(s, 'hub:join', 'authed'), { ok: true });
});

test('a valid token in the access_token query connects, over websocket and polling', async () => {
  for (const transport of ['websocket', 'polling']) {
    const s = await clients.connect(hub.url, { transports: [transport], query: { access_token: signJwt({ sub: 'bob' }, ACCESS_KEY) } });
    assert.ok(s.connected);
  }
});

test('a token signed with the second (rotation) key connects', async () => {
  const s = await clients.connect(hub.url, { auth: { token: signJwt({ sub: 'carol' }, SECOND_KEY) } });
  assert.ok(s.connected);
});
