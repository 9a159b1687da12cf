// Baseline: a broadcast server written the way the `ws` README writes one
// ("Server broadcast", excluding the sender), plus the README's heartbeat
// (ping every 30 s, terminate clients that did not answer the last one).
//
// Usage: node bench/baselines/node-ws.js PORT
'use strict';
const path = require('path');
const { WebSocketServer, WebSocket } = require(
  require.resolve('ws', { paths: [path.join(__dirname, '../../tools/node'), __dirname] }),
);

const port = Number(process.argv[2] || 8081);
const wss = new WebSocketServer({ host: '127.0.0.1', port });

function heartbeat() {
  this.isAlive = true;
}

wss.on('connection', function connection(ws) {
  ws.isAlive = true;
  ws.on('error', console.error);
  ws.on('pong', heartbeat);
  ws.on('message', function message(data, isBinary) {
    wss.clients.forEach(function each(client) {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

const interval = setInterval(function ping() {
  wss.clients.forEach(function each(ws) {
    if (ws.isAlive === false) return ws.terminate();
    ws.isAlive = false;
    ws.ping();
  });
}, Number(process.env.PING_INTERVAL_MS || 30000));

wss.on('close', function close() {
  clearInterval(interval);
});
