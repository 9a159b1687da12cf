// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Client-Side Implementation > Basic Connection Example". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// Connect to the WebSocket server
const socket = new WebSocket('ws://your-server/api/v1/ws/');

// Connection opened
socket.onopen = function(event) {
  console.log('Connected to WebSocket server');
};

// Listen for messages
socket.onmessage = function(event) {
  const message = JSON.parse(event.data);
  console.log('Message from server:', message);
};

// Connection closed
socket.onclose = function(event) {
  console.log('Disconnected from WebSocket server');
};

// Connection error
socket.onerror = function(error) {
  console.error('WebSocket error:', error);
};
