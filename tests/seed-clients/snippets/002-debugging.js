// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Troubleshooting > Example Debugging Code". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// Enable detailed logging
const socket = new WebSocket('ws://your-server/api/v1/ws/');

socket.onopen = function(event) {
  console.log('Connected to WebSocket server', event);
};

socket.onmessage = function(event) {
  console.log('Message received:', event.data);
  try {
    const message = JSON.parse(event.data);
    console.log('Parsed message:', message);
  } catch (error) {
    console.error('Error parsing message:', error);
  }
};

socket.onclose = function(event) {
  console.log('Connection closed:', event.code, event.reason);
};

socket.onerror = function(error) {
  console.error('WebSocket error:', error);
};
