#!/usr/bin/env node
'use strict';
// The reference Engine.IO server (npm `engine.io`, the one socket.io 4 uses) as an echo at
// /engine.io/, with the timers of dataplane/tests/engine.rs. Running those tests with
// ENGINE_REFERENCE_ADDR=<printed address> checks the raw-wire tests against it:
//
//   node e2e/reference/engine-echo.js            # prints "engine echo ready at http://127.0.0.1:PORT/engine.io/"
//   ENGINE_REFERENCE_ADDR=127.0.0.1:PORT cargo nextest run -p socketio-hub -E 'binary(engine) & test(raw_)'
const http = require('node:http');
const { Server } = require('engine.io');

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const engine = new Server({ pingInterval: 300, pingTimeout: 200, maxHttpBufferSize: 10000, path: '/engine.io/' });
engine.attach(server, { path: '/engine.io/' });
engine.on('connection', (socket) => socket.on('message', (data) => socket.send(data)));
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`engine echo ready at http://127.0.0.1:${server.address().port}/engine.io/`);
});
