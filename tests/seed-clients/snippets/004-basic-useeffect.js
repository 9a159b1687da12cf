// Copied byte for byte from seed document 004 ("WebSocket Gold Standard Implementation"),
// section "Migration Guide > Current Implementation (Basic)". Everything below the line of dashes is the
// document's code block, unchanged; do not edit it (tests/seed-clients/README.md).
// ------------------------------------------------------------------------
// ‚ùå OLD: Basic WebSocket (no reconnection)
useEffect(() => {
  const ws = new WebSocket(url)
  ws.onmessage = (e) => setData(JSON.parse(e.data))
  return () => ws.close()
}, [url])
