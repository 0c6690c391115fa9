"""Interop tests: stock Node ``yjs`` + ``y-websocket`` clients against a real server."""
