// Copied byte for byte from seed document 001 ("WebSocket API Implementation Guide"),
// section "3. Testing WebSocket Connection". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// In browser console or Node.js
const ws = new WebSocket('ws://localhost:4002/api/v1/devices/YOUR-DEVICE-UUID/ws');

ws.onopen = () => {
  console.log('Connected!');
  
  // Subscribe to channels
  ws.send(JSON.stringify({
    type: 'subscribe',
    channels: ['metrics', 'processes', 'system-info', 'history', 'network-interfaces']
  }));
};

ws.onmessage = (event) => {
  const message = JSON.parse(event.data);
  console.log('Received:', message);
};

ws.onerror = (error) => {
  console.error('Error:', error);
};

ws.onclose = () => {
  console.log('Disconnected');
};
