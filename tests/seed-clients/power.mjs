// As the laser page's hook: /api/v1/ws/v2/power data with heartbeats, and the
// health socket answering a text ping; reconnect after 3 s.
import { WebSocket, expectations } from './lib.mjs';

const base = process.argv[2];
const exp = expectations(['data', 'heartbeat', 'health pong']);

function connect() {
  const ws = new WebSocket(`${base}/api/v1/ws/v2/power?module=4&interval=0.1`);
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'data' && message.module === 4 && typeof message.ch1_power === 'number') {
      exp.seen('data', `${message.ch1_power} ${message.unit}`);
    } else if (message.type === 'heartbeat' && typeof message.active_streams === 'number') {
      exp.seen('heartbeat');
    } else if (message.type === 'error') {
      console.warn('WebSocket error:', message.message);
    }
  };
  ws.onclose = () => setTimeout(connect, 3000);
  ws.onerror = () => {};
}
connect();

const health = new WebSocket(`${base}/api/v1/ws/v2/health`);
health.onopen = () => health.send('ping');
health.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m.type === 'pong') exp.seen('health pong');
};
