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
# Write amplification: what the store wrote, against ``inkroom_bytes_in_total``-like counts
# of what clients sent (bench/coldload.py divides the two).
STORE_LOG_BYTES = Counter("inkroom_store_log_bytes_total", "Update bytes appended to the log")
STORE_SNAPSHOT_BYTES = Counter(
    "inkroom_store_snapshot_bytes_total", "Snapshot bytes written (as stored, after compression)"
)
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

# -- the bus between nodes: labelled by node id, so a scrape of several nodes adds up ----

NODE_INFO = Gauge("inkroom_node_info", "This process's node id on the bus", ["node"])
BUS_FRAMES_OUT = Counter("inkroom_bus_frames_out_total", "Bus frames sent", ["node", "kind"])
BUS_FRAMES_IN = Counter("inkroom_bus_frames_in_total", "Bus frames received", ["node", "kind"])
BUS_DROPPED = Counter(
    "inkroom_bus_dropped_total", "Bus frames not sent (bus down, queue full)", ["node", "reason"]
)
BUS_BAD_FRAMES = Counter("inkroom_bus_bad_frames_total", "Undecodable bus frames", ["node"])
BUS_GAPS = Counter("inkroom_bus_gaps_total", "Sequence gaps seen on document channels", ["node"])
BUS_CATCHUPS = Counter(
    "inkroom_bus_catchups_total", "State announcements sent, by purpose", ["node", "purpose"]
)
BUS_DIFFS = Counter("inkroom_bus_diffs_total", "Diffs sent to nodes that lacked updates", ["node"])
BUS_RECONNECTS = Counter("inkroom_bus_reconnects_total", "Bus (Redis) reconnections", ["node"])
BUS_CONNECTED = Gauge("inkroom_bus_connected", "1 while the bus reaches the other nodes", ["node"])
BUS_NODES = Gauge("inkroom_bus_nodes", "Other nodes heard from recently", ["node"])
BUS_NODES_GONE = Counter(
    "inkroom_bus_nodes_gone_total", "Nodes declared gone (goodbye or silence)", ["node"]
)
CONTROL_CALLS = Counter(
    "inkroom_control_calls_total", "Control calls applied on this node", ["node", "kind"]
)


class BusMetrics:
    """The bus metrics' children for one node, resolved once."""

    _PURPOSES = {0: "anti_entropy", 1: "catch_up", 2: "reply", 3: "reply"}

    def __init__(self, node: str) -> None:
        self.node = node
        NODE_INFO.labels(node).set(1)
        self._out = {k: BUS_FRAMES_OUT.labels(node, k) for k in _KINDS}
        self._in = {k: BUS_FRAMES_IN.labels(node, k) for k in _KINDS}
        self._gaps = BUS_GAPS.labels(node)
        self._diffs = BUS_DIFFS.labels(node)
        self._bad = BUS_BAD_FRAMES.labels(node)
        self._gone = BUS_NODES_GONE.labels(node)
        self._nodes = BUS_NODES.labels(node)
        self.connected = BUS_CONNECTED.labels(node)
        self.reconnects = BUS_RECONNECTS.labels(node)
        self.connected.set(1)

    def frames_out(self, kind: object) -> None:
        self._out[getattr(kind, "name", "other")].inc()

    def frames_in(self, kind: object) -> None:
        self._in[getattr(kind, "name", "other")].inc()

    def dropped(self, reason: str, count: int = 1) -> None:
        BUS_DROPPED.labels(self.node, reason).inc(count)

    def gap(self) -> None:
        self._gaps.inc()

    def bad_frame(self) -> None:
        self._bad.inc()

    def state_sent(self, flags: int) -> None:
        BUS_CATCHUPS.labels(self.node, self._PURPOSES.get(flags, "other")).inc()

    def diff_sent(self) -> None:
        self._diffs.inc()

    def node_gone(self) -> None:
        self._gone.inc()

    def nodes(self, count: int) -> None:
        self._nodes.set(count)

    def control(self, kind: str) -> None:
        CONTROL_CALLS.labels(self.node, kind).inc()


_KINDS = (
    "UPDATE",
    "AWARENESS",
    "STATE",
    "DIFF",
    "SAVED",
    "HEARTBEAT",
    "BYE",
    "ASK",
    "ANSWER",
    "other",
)
