'use strict';
// A plain socket.io 4.x application (the acceptance test's subject). It runs as is, serving its
// clients itself, or — with SOCKETIO_HUB_CONNECTION_STRING set — behind the hub, where the only
// difference is the two marked lines. Prints `app ready port=<port>` once listening.
//
//   node app.js [--port N]     env: APP_NAME (reported to clients), SOCKETIO_HUB_CONNECTION_STRING

const http = require('node:http');
const { Server } = require('socket.io');

const NAME = process.env.APP_NAME || 'app';
const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const httpServer = http.createServer();
const io = new Server(httpServer, { cors: { origin: '*' } });

// ---- the only lines the hub needs ----
const { useHub } = require('../../sdk/node');
if (process.env.SOCKETIO_HUB_CONNECTION_STRING) useHub(io, { name: NAME });
// --------------------------------------

io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === 'bad') {
    const err = new Error('unauthorized');
    err.data = { code: 'BAD_TOKEN' };
    return next(err);
  }
  socket.data.name = (socket.handshake.auth && socket.handshake.auth.name) || 'anonymous';
  if (socket.handshake.auth && socket.handshake.auth.early) socket.join(socket.handshake.auth.early);
  next();
});

io.on('connection', (socket) => {
  socket.emit('welcome', {
    id: socket.id,
    app: NAME,
    query: socket.handshake.query.tag || null,
    auth: socket.handshake.auth,
    rooms: [...socket.rooms].sort(),
  });

  socket.on('echo', (...args) => {
    const ack = args.pop();
    ack(...args);
  });

  socket.on('whoami', (ack) => ack({ id: socket.id, app: NAME, rooms: [...socket.rooms].sort(), name: socket.data.name }));

  socket.on('join', (room, ack) => {
    socket.join(room); // no await: the emit below must still reach this socket
    io.to(room).emit('joined', socket.id, room);
    ack([...socket.rooms].sort());
  });

  socket.on('leave', (room, ack) => {
    socket.leave(room);
    ack([...socket.rooms].sort());
  });

  socket.on('to-room', (room, msg) => socket.to(room).emit('room-msg', msg));
  socket.on('to-room-except', (room, except, msg) => io.to(room).except(except).emit('room-msg', msg));
  socket.on('to-all', (msg) => io.emit('all-msg', msg));

  socket.on('ask-client', async (ack) => {
    try {
      const answer = await socket.timeout(3000).emitWithAck('question', 'what?');
      ack({ answer });
    } catch (e) {
      ack({ error: e.message });
    }
  });

  socket.on('ask-client-timeout', async (ack) => {
    try {
      await socket.timeout(200).emitWithAck('ignored-question');
      ack({ error: null });
    } catch (e) {
      ack({ error: e.message });
    }
  });

  socket.on('poll-room', async (room, ack) => {
    try {
      const answers = await io.to(room).timeout(3000).emitWithAck('poll', room);
      ack({ answers: answers.sort() });
    } catch (e) {
      ack({ error: e.message });
    }
  });

  socket.on('binary', (buf, ack) => {
    socket.emit('binary-back', { nested: Buffer.concat([buf, Buffer.from([0xff])]), n: buf.length });
    ack(Buffer.from(buf).reverse());
  });

  socket.on('volatile', () => socket.volatile.emit('vol', 'v'));

  socket.on('sockets-join', (from, to, ack) => {
    io.in(from).socketsJoin(to);
    ack();
  });

  socket.on('sockets-leave', (from, to, ack) => {
    io.in(from).socketsLeave(to);
    ack();
  });

  socket.on('fetch', async (room, ack) => {
    const sockets = await io.in(room).fetchSockets();
    ack(sockets
      .map((s) => ({ id: s.id, name: s.data.name, rooms: [...s.rooms].sort() }))
      .sort((a, b) => a.id.localeCompare(b.id)));
  });

  socket.on('disconnect-room', (room, ack) => {
    io.in(room).disconnectSockets();
    ack();
  });

  socket.on('disconnect-me', (close) => socket.disconnect(close));

  socket.on('ask-servers', async (ack) => {
    try {
      const answers = await io.serverSideEmitWithAck('who-is-there', NAME);
      ack({ answers: answers.sort() });
    } catch (e) {
      ack({ error: e.message });
    }
  });

  socket.on('tell-servers', (msg, ack) => {
    io.serverSideEmit('note', NAME, msg);
    ack();
  });
});

// Server-to-server events (serverSideEmit from other instances).
io.on('who-is-there', (from, ack) => ack(NAME));
io.on('note', (from, msg) => io.emit('note', { from, msg, at: NAME }));

const admin = io.of('/admin');
admin.use((socket, next) => {
  if (socket.handshake.auth.role === 'admin') return next();
  const err = new Error('admins only');
  err.data = { need: 'admin' };
  next(err);
});
admin.on('connection', (socket) => socket.emit('hello-admin', socket.nsp.name));

io.of(/^\/dyn-\w+$/).on('connection', (socket) => {
  socket.emit('dyn', socket.nsp.name);
  socket.on('echo', (x, ack) => ack(x));
});

httpServer.listen(port, '127.0.0.1', () => {
  console.log(`app ready port=${httpServer.address().port} name=${NAME}`);
});

process.on('SIGTERM', () => {
  io.close();
  process.exit(0);
});
