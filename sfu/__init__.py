"""Selective forwarding unit for classroom voice and video (docs/sfu.md).

Pure parts: ``signaling`` (the JSON messages), ``policy`` (who hears and sees whom),
``rewriter`` (per-subscriber seq/ts continuity), ``history`` (NACK answers),
``keyframes`` (PLI throttle), ``codecs`` (keyframe detection), ``check`` (connectivity
diagnosis). On aiortc: ``hooks`` (every touch of its internals), ``forwarder``,
``participant``, ``call``, ``service`` (the entry point ``server`` uses), ``client`` and
``synthetic`` (a Python participant and test media). Imports neither ``collab`` nor
``server``.
"""
