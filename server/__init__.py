"""The composition root: settings, auth, routes, CLI.

The only package that wires the peers (collab, sfu, billing) together.
"""
