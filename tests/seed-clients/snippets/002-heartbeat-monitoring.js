// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Heartbeat and Ping Response Management > Example: Client-Side Heartbeat Monitoring". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
function connectWebSocket() {
  const socket = new WebSocket('ws://your-server/api/v1/ws/');
  let lastHeartbeat = Date.now();

  // Check for missing heartbeats
  const heartbeatMonitor = setInterval(() => {
    const now = Date.now();
    // If no heartbeat received in 2 minutes, reconnect
    if (now - lastHeartbeat > 120000) {
      console.log('No heartbeat received, reconnecting...');
      clearInterval(heartbeatMonitor);
      socket.close();
      // Reconnect will be triggered by onclose handler
    }
  }, 30000);

  socket.onmessage = function(event) {
    const message = JSON.parse(event.data);

    if (message.type === 'heartbeat') {
      lastHeartbeat = Date.now();
      socket.send(JSON.stringify({
        type: 'heartbeat',
        timestamp: lastHeartbeat
      }));
    }

    // Handle other message types...
  };

  socket.onclose = function() {
    clearInterval(heartbeatMonitor);
    setTimeout(connectWebSocket, 3000);
  };

  return socket;
}
