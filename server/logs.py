"""Structured (JSON) logs with fields, and redaction of tokens wherever they appear."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Any token-looking value, however the client spelled its key (``TOKEN=``, ``%74oken=``),
# and any JWT wherever it appears.
_TOKEN = re.compile(
    r"((?:t|%74|%54)(?:o|%6f|%4f)(?:k|%6b|%4b)(?:e|%65|%45)(?:n|%6e|%4e)(?:=|%3d))[^&\s\"']+"
    r"|((?:code|grant|session|secret|password)=)(?!\d{1,5}\b)[^&\s\"']+"
    r"|(Bearer\s+)[A-Za-z0-9._\-]+",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# uvicorn attaches terminal colours and protocol objects to its records.
_NOISE = {"color_message", "websocket"}


def redact(text: str) -> str:
    text = _TOKEN.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "[redacted]", text)
    return _JWT.sub("[redacted-jwt]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_") or key in _NOISE:
                continue
            if isinstance(value, str):
                entry[key] = redact(value)
            elif value is None or isinstance(value, bool | int | float):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        base = super().format(record)
        return redact(f"{base} {extra}" if extra else base)


def configure(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Routes every logger (uvicorn's included) through one redacting handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
