"""Yjs-compatible document rooms: the y-websocket protocol, presence, persistence ports.

Nothing here knows about HTTP, Starlette or any database driver: the server package
adapts transports to :class:`collab.ports.Connection` and supplies a :class:`collab.ports.Store`,
:class:`collab.ports.Bus` and :class:`collab.ports.Policy`.
"""
