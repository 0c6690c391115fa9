"""Settings from arguments and ``INKROOM_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from collab.limits import Limits


class Settings(BaseSettings):
    """Everything a node needs to start. The embedded default needs none of it set."""

    model_config = SettingsConfigDict(env_prefix="INKROOM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    secret: str | None = Field(default=None, repr=False)
    env: str = "development"
    log_level: str = "INFO"
    log_json: bool = True
    # permessage-deflate for messages of 4 KiB and more (first syncs, catch-ups): small
    # frames stay plain, so the relay's cost per live delivery is unchanged
    # (server/ws_protocol.py; compressing every frame more than halved relay throughput).
    ws_compression: bool = True
    # A silent dead link is noticed within interval + timeout of its last sign of life.
    # Only connections silent for an interval are pinged (server/ws_protocol.Keepalive).
    # The clients see a dead link much sooner on their own (the web client after 4 s of
    # silence), and stock clients drop other users' stale presence after 30 s; this is
    # about freeing a vanished client's seat and cursor. 20 s, longer than the 15 s at
    # which a stock client renews its presence, so a live client is never pinged at all;
    # 50 pings/s per 1,000 connections that send nothing (bench/RESULTS.md), and a dead
    # link found within 30 s, when stock clients drop its presence too.
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024
    outbox_messages: int = 1024
    messages_per_second: float = 300.0
    message_burst: int = 3000
    max_rooms: int = 10_000
    max_document_bytes: int = 64 * 1024 * 1024
    unload_grace: float = 30.0
    save_debounce: float = 0.25
    save_max_delay: float = 2.0
    # The first SyncStep2 to a client waits until that client's offline edits are stored:
    # the stock client's "synced" then means "saved" (docs/collab.md).
    hold_sync_until_saved: bool = False
    # Fold the log into a snapshot after this many entries at most (collab/limits.py).
    compact_after_updates: int = 50_000
    compact_growth: float = 2.0
    static_dir: Path | None = None
    # Billing (Stripe). Without an API key billing is off and every classroom is free.
    stripe_api_key: str | None = Field(default=None, repr=False)
    stripe_webhook_secrets: str | None = Field(default=None, repr=False)  # comma-separated
    stripe_api_base: str | None = None  # tests point the SDK at a local server
    stripe_webhook_tolerance: int = 300
    billing_plans: str | None = None  # JSON list, see server/billing_gate.py
    billing_grace_days: float = 7.0
    billing_reconcile_interval: float = 3600.0
    billing_outbox_interval: float = 2.0
    # Accounts and invite links.
    # The address people use (https://class.example.org): absolute invite links, the
    # allowed Origin of state-changing requests, and Secure cookies when it is https.
    public_url: str | None = None
    signup_open: bool = True
    # Lifetime of the access tokens the web page holds; it renews them well before expiry.
    page_token_ttl: int = 3600
    session_ttl: int = 30 * 24 * 3600
    # Sign-in: at most this many failed attempts per email, and 6x as many attempts per
    # client address, within the window (seconds).
    signin_attempts: int = 5
    signin_window: float = 900.0
    # Voice and video (docs/sfu.md): ICE servers handed to call participants. TURN
    # credentials are derived from turn_secret (coturn's use-auth-secret); lists are JSON,
    # e.g. INKROOM_TURN_URLS='["turn:turn.example.org:3478?transport=udp"]'.
    stun_urls: list[str] = []
    turn_urls: list[str] = []
    turn_secret: str | None = Field(default=None, repr=False)
    turn_ttl: int = 6 * 3600
    # Call media on 127.0.0.1 only (tests, a single machine): see SfuConfig.loopback_only.
    sfu_loopback_only: bool = False
    # Several nodes (with --redis-url): the base URL clients reach *this* node's call
    # signaling at (https://node2.class.example.org). A join for a call hosted elsewhere
    # is redirected to the hosting node's URL (docs/sfu.md, "Several nodes").
    sfu_node_url: str | None = None
    # Multi-node (with --redis-url): channel and key prefix, this node's id (default: a
    # random one per start), liveness, anti-entropy, and a fault-injection knob for tests.
    redis_prefix: str = "inkroom"
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    heartbeat_interval: float = 1.0
    node_timeout: float = 3.0
    anti_entropy_interval: float = 2.0
    bus_drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'inkroom.db').resolve()}"

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            outbox_messages=self.outbox_messages,
            messages_per_second=self.messages_per_second,
            message_burst=self.message_burst,
            max_rooms=self.max_rooms,
            max_document_bytes=self.max_document_bytes,
            unload_grace=self.unload_grace,
            save_debounce=self.save_debounce,
            save_max_delay=self.save_max_delay,
            hold_sync_until_saved=self.hold_sync_until_saved,
            compact_after_updates=self.compact_after_updates,
            compact_growth=self.compact_growth,
            anti_entropy_interval=self.anti_entropy_interval,
        )

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.lower().startswith("https://"))

    def secret_path(self) -> Path:
        return self.data_dir / "secret.key"

    def existing_secret(self) -> str | None:
        """``INKROOM_SECRET`` or the data dir's secret, without ever creating one."""
        if self.secret:
            return self.secret
        try:
            return self.secret_path().read_text().strip() or None
        except FileNotFoundError:
            return None

    def signing_secret(self) -> str:
        """``INKROOM_SECRET``, else a random secret generated once and kept in the data dir.

        Raises:
            RuntimeError: in production without an explicit secret: nodes must share one.
        """
        if self.secret:
            return self.secret
        if self.env == "production":
            raise RuntimeError("INKROOM_SECRET must be set when INKROOM_ENV=production")
        path = self.secret_path()
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
