// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Client-Side Implementation > Reconnection Handling Example". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
function connectWebSocket() {
  const socket = new WebSocket('ws://your-server/api/v1/ws/');

  socket.onopen = function(event) {
    console.log('Connected to WebSocket server');
    // Subscribe to topics
    // ...
  };

  socket.onclose = function(event) {
    console.log('Disconnected from WebSocket server');
    // Reconnect after a delay
    setTimeout(connectWebSocket, 3000);
  };

  socket.onerror = function(error) {
    console.error('WebSocket error:', error);
  };

  socket.onmessage = function(event) {
    // Handle messages
    // ...
  };

  return socket;
}

// Initial connection
let socket = connectWebSocket();
