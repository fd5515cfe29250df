"""Logging setup: journald with structured fields when stderr is the journal,
otherwise text (key=value) or JSON lines on stderr.

Code attaches structured fields with `log.info("msg", extra={"fields": {...}})`.
"""
from __future__ import annotations

import json
import logging
import sys
import time

from agent.drivers import systemd


# Control characters from request fields (or anything else) must not start a new log line:
# "\n" -> "\\n", "\r" -> "\\r", others -> "\\xNN". Tracebacks keep their lines.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape(text: object) -> str:
    """`text` on one line: control characters escaped."""
    return str(text).translate(_ESCAPES)


class _TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            base += " " + " ".join(f"{k}={escape(v)}" for k, v in fields.items())
        return base


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 6), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup(level: str = "info", fmt: str = "text") -> str:
    """Configure the root logger; returns where logs go ("journal" or "stderr")."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(level.upper())
    if systemd.stderr_is_journal():
        handler = systemd.journal_handler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        target = "journal"
    else:
        handler = logging.StreamHandler(sys.stderr)
        if fmt == "json":
            handler.setFormatter(_JsonFormatter())
        else:
            f = _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            f.converter = time.gmtime
            handler.setFormatter(f)
        target = "stderr"
    root.addHandler(handler)
    return target
