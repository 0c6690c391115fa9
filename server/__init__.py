"""The composition root: settings, auth, HTTP/WebSocket routes, CLI. The only package that wires peers together."""
