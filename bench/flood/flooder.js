'use strict';
// The flooder of bench/flood/flood.js: one raw Engine.IO/Socket.IO WebSocket client (the `ws`
// package, no socket.io-client overhead) that writes `42["hub:to",[<1000 room names>],"flood",1]`
// (about 9 KiB) whenever its socket's buffer has room, and reconnects at once when the hub
// closes it (or refuses the handshake). Sending the same string costs it little; for the hub
// each is a frame to unmask, a packet to parse, 1000 rooms to check against the permissions and
// look up, so one client can keep the hub's core busy. On SIGUSR2 it prints
// `flooder stats {"sent":…,"opened":…,"refused":…}`.
//
// It keeps CONNECTIONS (default 4) such connections going at once, all from one address.
//
//   node bench/flood/flooder.js http://127.0.0.1:PORT [CONNECTIONS]

const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const WebSocket = require(path.join(REPO, 'e2e', 'node_modules', 'ws'));

const url = `${process.argv[2].replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
const rooms = Array.from({ length: 1000 }, (_, i) => `room-${i}`);
const packet = `42["hub:to",${JSON.stringify(rooms)},"flood",1]`;
const stats = { sent: 0, opened: 0, refused: 0 };
let announced = false;

function connect() {
  const ws = new WebSocket(url, { headers: { 'x-forwarded-for': '10.9.9.9' }, perMessageDeflate: false });
  let retried = false;
  const retry = () => { if (!retried) { retried = true; setImmediate(connect); } };
  ws.on('unexpected-response', (req, res) => { stats.refused++; res.resume(); req.destroy(); retry(); });
  ws.on('error', retry);
  ws.on('close', retry);
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('0{')) ws.send('40');
    else if (text === '2') ws.send('3');
    else if (text.startsWith('40')) {
      stats.opened++;
      if (!announced) { announced = true; process.stdout.write('flooder ready\n'); }
      // At most 64 sends per turn of the event loop: once the hub drops the connection,
      // bufferedAmount stops growing and only the event loop can deliver the 'close'.
      const pump = () => {
        for (let i = 0; i < 64 && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 1 << 20; i++) {
          ws.send(packet);
          stats.sent++;
        }
        if (ws.readyState === WebSocket.OPEN) setImmediate(pump);
      };
      pump();
    }
  });
}

process.on('SIGUSR2', () => process.stdout.write(`flooder stats ${JSON.stringify(stats)}\n`));
for (let i = 0; i < Number(process.argv[3] || 4); i++) connect();
