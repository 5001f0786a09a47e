'use strict';
// Setup (a): the app serves its clients itself (plain socket.io, no hub).

const { before, after, describe } = require('node:test');
const { startApp } = require('./harness');
const { defineClientSuite } = require('./suite');

describe('plain socket.io app', () => {
  let app;
  before(async () => { app = await startApp({ name: 'plain' }); });
  after(async () => { if (app) await app.stop(); });
  defineClientSuite(() => app.url);
});
