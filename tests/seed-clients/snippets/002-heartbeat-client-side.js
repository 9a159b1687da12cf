// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Heartbeat and Ping Response Management > Implementation Details > Client-Side". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
socket.onmessage = function(event) {
  const message = JSON.parse(event.data);

  if (message.type === 'heartbeat') {
    // Respond to heartbeat
    socket.send(JSON.stringify({
      type: 'heartbeat',
      timestamp: Date.now()
    }));
  }

  // Handle other message types...
};
