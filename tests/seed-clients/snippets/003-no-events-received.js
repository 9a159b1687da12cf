// Copied byte for byte from seed document 003 ("WebSocket Implementation Guide (27 Manufacturing System)"),
// section "Troubleshooting > Issue: No Events Received". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// Check subscribed rooms
ws.send(JSON.stringify({ action: 'getRooms' }));

// Subscribe to room
ws.send(JSON.stringify({
  action: 'subscribe',
  data: { room: `order:${orderId}` }
}));
