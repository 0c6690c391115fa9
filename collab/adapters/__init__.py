"""Adapters from collab ports to infrastructure (SQL, Redis)."""
