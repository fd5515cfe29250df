"""systemd integration via python-systemd: sd_notify, watchdog, journald.

Without a NOTIFY_SOCKET (not started by systemd) every notification is a
no-op; without JOURNAL_STREAM matching stderr, logs stay on stderr.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

try:  # python-systemd; absent only on a broken install
    from systemd import daemon as _daemon
    from systemd import journal as _journal
except ImportError:  # pragma: no cover - dependency declared in pyproject
    _daemon = None
    _journal = None


class Notifier:
    """Sends sd_notify messages and feeds the watchdog while serving."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET")) and _daemon is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, **fields: str) -> bool:
        """Send e.g. notify(READY="1", STATUS="serving"); True when systemd got it. Idempotent;
        never raises: without NOTIFY_SOCKET (not started by systemd) or on a send error -> False."""
        if not self.enabled:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items())
        try:
            return bool(_daemon.notify(msg))
        except OSError:
            return False

    def status(self, text: str) -> None:
        """Show `text` as the unit's status line (STATUS=). Idempotent; a no-op outside systemd; never raises."""
        self.notify(STATUS=text)

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None when off."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not self.enabled or not usec.isdigit() or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2e6

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Ping WATCHDOG=1 every half interval while `healthy()` returns True.

        `healthy` checks that the serving loop still answers, so a wedged
        server stops feeding the watchdog and systemd restarts it. Idempotent:
        a second call while the thread runs, or a unit without WatchdogSec,
        does nothing. Never raises.
        """
        interval = self.watchdog_interval()
        if interval is None or self._thread:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                if healthy():
                    self.notify(WATCHDOG="1")

        self._thread = threading.Thread(target=loop, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watchdog thread and tell systemd the agent is stopping. Idempotent; never raises."""
        self._stop.set()
        self.notify(STOPPING="1", STATUS="stopping")


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to journald (JOURNAL_STREAM=dev:ino)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()) or _journal is None:
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class _StructuredJournalHandler(logging.Handler):
    """Sends records to journald with the record's `fields` as journal fields."""

    def __init__(self, identifier: str) -> None:
        super().__init__()
        self._identifier = identifier

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record to journald. Never raises: a failed send goes to logging's handleError."""
        try:
            extra = {k.upper(): str(v) for k, v in getattr(record, "fields", {}).items()}
            _journal.send(self.format(record), PRIORITY=str(_priority(record.levelno)),
                          SYSLOG_IDENTIFIER=self._identifier, LOGGER=record.name,
                          CODE_FILE=record.pathname, CODE_LINE=record.lineno,   # int: send() formats it with {:d}
                          CODE_FUNC=record.funcName, **extra)
        except Exception:  # logging must never take the agent down
            self.handleError(record)


def _priority(levelno: int) -> int:
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_handler(identifier: str = "devcloud-agent") -> logging.Handler:
    """A logging handler that sends records to journald as SYSLOG_IDENTIFIER=`identifier`."""
    return _StructuredJournalHandler(identifier)
