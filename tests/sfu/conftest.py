from __future__ import annotations

from sfu.hooks import use_loopback_only

# Every peer these tests make (SFU and clients) gathers 127.0.0.1 only.
use_loopback_only()
