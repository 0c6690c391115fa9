"""Infrastructure behind the SFU's ports (Redis)."""
