// Copied byte for byte from seed document 002 ("WebSocket Functionality Documentation for DogePlus Backend"),
// section "Client-Side Implementation > Subscribing to Topics Example". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// Connect to the WebSocket server
const socket = new WebSocket('ws://your-server/api/v1/ws/');

// Connection opened
socket.onopen = function(event) {
  console.log('Connected to WebSocket server');

  // Subscribe to task completion updates
  socket.send(JSON.stringify({
    type: 'subscribe',
    topic: 'task_completion_update'
  }));

  // Subscribe to event updates
  socket.send(JSON.stringify({
    type: 'subscribe',
    topic: 'event_updates'
  }));

  // Subscribe to updates for a specific central
  socket.send(JSON.stringify({
    type: 'subscribe',
    topic: 'central_ABC123'
  }));
};

// Listen for messages
socket.onmessage = function(event) {
  const message = JSON.parse(event.data);

  // Handle different message types
  if (message.type === 'subscribe_ack') {
    console.log(`Subscribed to ${message.topic}`);
  } else if (message.type === 'unsubscribe_ack') {
    console.log(`Unsubscribed from ${message.topic}`);
  } else if (message.type === 'topics') {
    console.log('Subscribed topics:', message.topics);
  } else if (message.type === 'heartbeat') {
    // Respond to heartbeat
    socket.send(JSON.stringify({
      type: 'heartbeat',
      timestamp: Date.now()
    }));
  } else if (message.Result === 'Event Task Updated') {
    console.log('Task update:', message.Events);
    // Update UI with task information
  } else if (message.message === 'Overview added successfully') {
    console.log('Event update:', message.data);
    // Update UI with event information
  } else if (message.type === 'task_completion_update') {
    console.log('Task completion update:', message.data);
    // Update UI with task completion information
  }
};
