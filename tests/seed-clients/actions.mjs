// As the serverless backend's wscat session: connect with ?token=, ping,
// getRooms, subscribeToOrder, receive order events, reconnect after 3 s.
import { WebSocket, expectations } from './lib.mjs';

const base = process.argv[2];
const token = process.argv[3];
const exp = expectations(['pong', 'getRooms', 'subscribeToOrder', 'order event', 'refused without token']);

const bare = new WebSocket(`${base}/api/v1/actions`);
bare.on('unexpected-response', (_req, res) => { if (res.statusCode === 401) exp.seen('refused without token'); });
bare.on('error', () => {});

function connect() {
  const ws = new WebSocket(`${base}/api/v1/actions?token=${token}`);
  ws.onopen = () => {
    ws.send(JSON.stringify({ action: 'ping' }));
    ws.send(JSON.stringify({ action: 'getRooms' }));
    ws.send(JSON.stringify({ action: 'subscribeToOrder', data: { orderId: '67890' } }));
  };
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.action === 'pong' && m.timestamp) exp.seen('pong');
    else if (m.action === 'getRooms' && m.rooms.includes('branch:demo-branch')) exp.seen('getRooms', m.rooms.join(','));
    else if (m.action === 'subscribeToOrder' && m.success && m.orderId === '67890') exp.seen('subscribeToOrder');
    else if (typeof m.type === 'string' && m.type.startsWith('order:') && m.data) exp.seen('order event', m.type);
  };
  ws.onerror = (e) => console.log('Error:', e.message);
  ws.onclose = () => setTimeout(connect, 3000);
}
connect();
