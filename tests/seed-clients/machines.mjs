// As the Go seed's frontend: connect to /ws/machines and /ws/machines/{id},
// JSON.parse each frame whole (so each must hold one message), reconnect after 3 s.
import { WebSocket, expectations } from './lib.mjs';

const base = process.argv[2];
const exp = expectations(['connected-all', 'connected-one', 'sensor_data-all', 'sensor_data-one', 'machine_status']);

function connect(path, tag) {
  const ws = new WebSocket(`${base}${path}`);
  ws.onopen = () => exp.seen(`connected-${tag}`);
  ws.onmessage = (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (e) {
      console.log(`FAIL ${path}: a frame is not one JSON message (${e.message}): ${String(event.data).slice(0, 120)}`);
      process.exit(1);
    }
    if (msg.type === 'sensor_data' && msg.data && msg.data.machine_id && typeof msg.timestamp === 'string') {
      if (tag === 'one' && msg.data.machine_id !== 'CNC-001') {
        console.log(`FAIL /ws/machines/CNC-001 got ${msg.data.machine_id}`);
        process.exit(1);
      }
      exp.seen(`sensor_data-${tag}`, `${msg.data.machine_id} ${msg.data.temperature}`);
    } else if (msg.type === 'machine_status') {
      exp.seen('machine_status');
    }
  };
  ws.onerror = (e) => console.log('Error:', e.message);
  ws.onclose = () => setTimeout(() => connect(path, tag), 3000);
}

connect('/ws/machines', 'all');
connect('/ws/machines/CNC-001', 'one');
