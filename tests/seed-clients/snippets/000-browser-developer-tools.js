// Copied byte for byte from seed document 000 ("WebSocket Implementation Guide for Go Backend"),
// section "Testing WebSocket Implementation > Using Browser Developer Tools". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// Open browser console and test WebSocket connection
const ws = new WebSocket('ws://localhost:8080/ws/machines');
ws.onopen = () => console.log('Connected');
ws.onmessage = (event) => console.log('Received:', JSON.parse(event.data));
ws.onerror = (error) => console.log('Error:', error);
