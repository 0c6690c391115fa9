"""What a subscriber's link can carry: full video, low video or audio only (pure).

The SFU has no transport-wide feedback (aiortc offers none), so it judges each
subscriber's downlink from what that subscriber's receiver sends back anyway:

- receiver reports (RFC 3550) on every forwarded stream: the fraction lost since the
  last report, and the round trip (aiortc works it out from the report's LSR/DLSR);
- REMB (``goog-remb``), the receiver's delay-based estimate, sent by aiortc's and
  Chromium's receivers for video only.

Loss and round trip pick the layer. REMB is kept (it is reported) but decides nothing:
without simulcast, "low video" lowers the publisher's bitrate, and a delay-based estimate
ramps up more slowly after that than the publisher does, so a rule "REMB under the
forwarded rate" would flap between layers; a link that really is too narrow shows as
queueing delay (round trip) and then loss, which do decide.

Downgrades need :attr:`Thresholds.down_after` bad reports in a row (one lossy second is
not a weak link); upgrades go one step at a time after :attr:`Thresholds.up_after`
seconds of good reports, or after :attr:`Thresholds.probe_after` seconds without any
evidence (audio-only on a silent call gets no reports: try video again).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layer(StrEnum):
    """What a subscriber receives; the values are the words the ``/check`` verdict uses."""

    FULL = "full video"
    LOW = "low video"
    AUDIO = "audio only"


_ORDER = (Layer.FULL, Layer.LOW, Layer.AUDIO)


def _worse(a: Layer, b: Layer) -> Layer:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def _step_up(layer: Layer) -> Layer:
    return _ORDER[max(0, _ORDER.index(layer) - 1)]


@dataclass(frozen=True, slots=True)
class Thresholds:
    low_loss: float = 0.04  # fraction of packets lost (smoothed) that makes video low
    audio_loss: float = 0.15  # ... audio only: video would be mostly frozen
    low_rtt: float = 0.45  # seconds
    audio_rtt: float = 1.2
    down_after: int = 3  # consecutive bad reports before stepping down
    up_after: float = 5.0  # seconds of good reports before stepping up one layer
    probe_after: float = 8.0  # seconds without any report before stepping up one layer
    smoothing: float = 0.5  # weight of the newest loss sample


class LinkEstimate:
    """One subscriber's link; feed it reports, read :attr:`layer`.

    :meth:`add_report` and :meth:`tick` return the new layer when it changed, else ``None``.
    Bounded: a few floats, whatever the call's length.
    """

    __slots__ = (
        "_bad",
        "_better_since",
        "_last_evidence",
        "layer",
        "limits",
        "loss",
        "remb",
        "rtt",
    )

    def __init__(self, now: float, limits: Thresholds | None = None) -> None:
        self.limits = limits or Thresholds()
        self.layer = Layer.FULL
        self.loss = 0.0
        self.rtt: float | None = None
        self.remb: int | None = None
        self._bad = 0
        self._better_since: float | None = None
        self._last_evidence = now

    def target(self) -> Layer:
        """The layer the latest evidence asks for (before hysteresis)."""
        t = self.limits
        rtt = self.rtt or 0.0
        if self.loss >= t.audio_loss or rtt >= t.audio_rtt:
            return Layer.AUDIO
        if self.loss >= t.low_loss or rtt >= t.low_rtt:
            return Layer.LOW
        return Layer.FULL

    def add_report(self, fraction_lost: float, rtt: float | None, now: float) -> Layer | None:
        """A receiver report block for a stream that carried packets since the last one."""
        a = self.limits.smoothing
        self.loss = a * min(max(fraction_lost, 0.0), 1.0) + (1 - a) * self.loss
        if rtt is not None and rtt >= 0:
            self.rtt = rtt
        return self._judge(now)

    def add_remb(self, bitrate: int) -> None:
        self.remb = bitrate

    def tick(self, now: float) -> Layer | None:
        """Steps up after a silence without evidence; call about once a second."""
        if self.layer is Layer.FULL or now - self._last_evidence < self.limits.probe_after:
            return None
        self._last_evidence = now
        self._bad = 0
        self._better_since = None
        self.loss = 0.0
        return self._set(_step_up(self.layer))

    def _judge(self, now: float) -> Layer | None:
        self._last_evidence = now
        target = self.target()
        if _worse(target, self.layer) is target and target is not self.layer:
            self._better_since = None
            self._bad += 1
            if self._bad >= self.limits.down_after:
                self._bad = 0
                return self._set(target)
            return None
        self._bad = 0
        if target is self.layer:
            self._better_since = None
            return None
        if self._better_since is None:
            self._better_since = now
            return None
        if now - self._better_since >= self.limits.up_after:
            self._better_since = now  # the next step needs its own good spell
            return self._set(_step_up(self.layer))
        return None

    def _set(self, layer: Layer) -> Layer | None:
        if layer is self.layer:
            return None
        self.layer = layer
        return layer
