// As the topics backend's documented client: subscribe to topics, echo every
// heartbeat, route data messages by shape, reconnect after 3 s.
import { WebSocket, expectations } from './lib.mjs';

const base = process.argv[2];
const exp = expectations([
  'connected', 'ack task_completion_update', 'ack event_updates', 'ack central_ABC123', 'topics',
  'heartbeat', 'task update', 'event update', 'task completion update',
]);

function connectWebSocket() {
  const socket = new WebSocket(`${base}/api/v1/ws/`);
  socket.onopen = function () {
    socket.send(JSON.stringify({ type: 'subscribe', topic: 'task_completion_update' }));
    socket.send(JSON.stringify({ type: 'subscribe', topic: 'event_updates' }));
    socket.send(JSON.stringify({ type: 'subscribe', topic: 'central_ABC123' }));
    socket.send(JSON.stringify({ type: 'subscribe', topic: 'task_completion_map_update' }));
    socket.send(JSON.stringify({ type: 'get_topics' }));
  };
  socket.onmessage = function (event) {
    const message = JSON.parse(event.data);
    if (message.type === 'connected' && message.client_id) exp.seen('connected');
    else if (message.type === 'subscribe_ack' && message.success) exp.seen(`ack ${message.topic}`);
    else if (message.type === 'topics' && message.topics.length === 4) exp.seen('topics');
    else if (message.type === 'heartbeat') {
      socket.send(JSON.stringify({ type: 'heartbeat', timestamp: Date.now() }));
      exp.seen('heartbeat');
    } else if (message.Result === 'Event Task Updated') exp.seen('task update', message.Events.status);
    else if (message.message === 'Overview added successfully') exp.seen('event update', String(message.data.event_number));
    else if (message.type === 'task_completion_update') exp.seen('task completion update');
  };
  socket.onerror = (e) => console.log('WebSocket error:', e.message);
  socket.onclose = function () { setTimeout(connectWebSocket, 3000); };
  return socket;
}
connectWebSocket();
