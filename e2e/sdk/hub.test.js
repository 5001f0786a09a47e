'use strict';
// Setup (b): the same app behind the hub — clients connect to the hub; the app only added the
// SDK lines (enabled by SOCKETIO_HUB_CONNECTION_STRING).

const { before, after, describe } = require('node:test');
const { startApp, startLinkHub, waitForLinks, connectionString } = require('./harness');
const { defineClientSuite } = require('./suite');

describe('the same app behind the hub (server link + SDK)', () => {
  let hub;
  let app;
  before(async () => {
    hub = await startLinkHub();
    app = await startApp({ name: 'linked', connectionString: connectionString(hub) });
    await waitForLinks(hub, 1);
  });
  after(async () => {
    if (app) await app.stop();
    if (hub) await hub.close();
  });
  defineClientSuite(() => hub.url);
});
