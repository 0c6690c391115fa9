"""Prometheus metrics of the collaboration core. Hot paths increment in batches."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("inkroom_connections", "Open document connections")
ROOMS = Gauge("inkroom_rooms", "Documents loaded in memory")
UPDATES_IN = Counter("inkroom_updates_in_total", "Document updates received from clients")
UPDATES_OUT = Counter("inkroom_updates_out_total", "Update messages queued to clients")
BYTES_IN = Counter("inkroom_bytes_in_total", "Bytes received from clients")
BYTES_OUT = Counter("inkroom_bytes_out_total", "Bytes queued to clients")
SYNC_SLICES = Counter(
    "inkroom_sync_slices_total", "Slices sent of large full-state replies (SyncStep2)"
)
OUTBOX_DROPS = Counter("inkroom_outbox_drops_total", "Clients closed because their outbox was full")
REJECTED_WRITES = Counter("inkroom_rejected_writes_total", "Updates refused by policy")
CLOSED = Counter("inkroom_connection_closes_total", "Connections closed by the server", ["reason"])
SAVE_LATENCY = Histogram(
    "inkroom_save_seconds",
    "Time to append a batch of updates to the store",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SAVE_FAILURES = Counter("inkroom_save_failures_total", "Failed store appends (retried)")
COMPACTIONS = Counter("inkroom_compactions_total", "Snapshots written by compaction")
LOAD_LATENCY = Histogram("inkroom_load_seconds", "Time to load a document from the store")
REFUSED_WRITES = Counter(
    "inkroom_refused_writes_total",
    "Updates refused as a whole (pending structs or deletes, forged client ids)",
    ["reason"],
)
DOCUMENT_SAVE_FAILURES = Counter(
    "inkroom_document_save_failures_total", "Failed saves of one document, after isolating it"
)
FAILING_DOCUMENTS = Gauge(
    "inkroom_failing_documents", "Documents whose saves or loads keep failing on this node"
)
