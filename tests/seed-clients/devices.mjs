// As the device manager's frontend: connect to /api/v1/devices/{uuid}/ws,
// subscribe to the channels, ping, reconnect after 3 s.
import { WebSocket, expectations } from './lib.mjs';

const base = process.argv[2];
const exp = expectations(['connected', 'pong', 'system-info', 'processes', 'history', 'network-interfaces']);

function connect() {
  const ws = new WebSocket(`${base}/api/v1/devices/3f2a9c1e-demo/ws`);
  ws.onopen = () => {
    ws.send(JSON.stringify({
      type: 'subscribe',
      channels: ['metrics', 'processes', 'system-info', 'history', 'network-interfaces'],
    }));
    ws.send(JSON.stringify({ type: 'ping' }));
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'connected' && message.data.deviceUuid === '3f2a9c1e-demo') exp.seen('connected');
    else if (message.type === 'pong' && message.data.timestamp) exp.seen('pong');
    else if (message.type === 'system-info' && message.data.os) exp.seen('system-info', message.data.hostname);
    else if (message.type === 'processes' && Array.isArray(message.data.top_processes)) exp.seen('processes');
    else if (message.type === 'history' && Array.isArray(message.data.cpu)) exp.seen('history');
    else if (message.type === 'network-interfaces' && Array.isArray(message.data.interfaces)) exp.seen('network-interfaces');
  };
  ws.onerror = (e) => console.log('Error:', e.message);
  ws.onclose = () => setTimeout(connect, 3000);
}
connect();
