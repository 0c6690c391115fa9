"""Call metrics (Prometheus), exported by the server's ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PARTICIPANTS = Gauge("inkroom_sfu_participants", "Participants in calls on this node")
CALLS = Gauge("inkroom_sfu_calls", "Open calls on this node")
PACKETS_IN = Counter(
    "inkroom_sfu_packets_in_total", "RTP packets received from publishers", ["kind"]
)
PACKETS_OUT = Counter(
    "inkroom_sfu_packets_out_total", "RTP packets forwarded to subscribers", ["kind"]
)
BYTES_OUT = Counter("inkroom_sfu_bytes_out_total", "RTP payload bytes forwarded", ["kind"])
NACKS = Counter("inkroom_sfu_nacks_total", "Subscriber NACKed packets, by outcome", ["outcome"])
KEYFRAME_REQUESTS = Counter(
    "inkroom_sfu_keyframe_requests_total",
    "Keyframe requests toward publishers, by outcome",
    ["outcome"],
)
SLOTS = Gauge("inkroom_sfu_forwarding_slots", "Subscriber slots, by state", ["state"])
LAYER_CHANGES = Counter(
    "inkroom_sfu_layer_changes_total",
    "Per-subscriber layer decisions, by new layer (full, low, audio: audio only)",
    ["layer"],
)
SUBSCRIBERS = Gauge("inkroom_sfu_subscribers", "Participants in calls, by link layer", ["layer"])
