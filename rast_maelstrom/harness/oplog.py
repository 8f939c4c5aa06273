"""The op lines of jepsen.log, written without the logging machinery when that changes nothing.

Owns: `fast_op_sink(handler)`: a function `(thread, message) -> None` that appends the line the
jar's layout gives an INFO record of logger `jepsen.util` from that thread
(`INFO [2026-12-01 11:33:00,123] jepsen worker 3 - jepsen.util <message>`, as `JarLogFormatter`
formats it, with the same clock and millisecond rounding as `logging.LogRecord`) straight to
`handler`'s stream, then calls the handler's `flush` (BufferedFileHandler's, which flushes at most
every few hundred ms); a failing write goes to the handler's `handleError`, as logging's would.
Building a LogRecord, finding its caller and formatting it through the
handler chain took about half of the runner's time per op (py-spy, one null node, 10 clients).

It returns None, and the caller keeps logging through `logging`, unless the fast line is exactly
what logging would produce and deliver: the op logger is enabled for INFO, has no handlers or
filters of its own and propagates; the root logger has no filters; `handler` is one of the root's
handlers, uses `JarLogFormatter`, has a level at most INFO and lets the record through its
filters; and every other root handler would drop the record (by level or filter, as the
console's filter does). A handler added later (e.g. by a test) is caught by `still_valid`, which
the caller may check; History checks it whenever the root's handler list changes.

May not touch: records of any other logger; the handler's configuration.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

OP_LOGGER = "jepsen.util"


def _probe(thread: str) -> logging.LogRecord:
    record = logging.LogRecord(OP_LOGGER, logging.INFO, __file__, 0, "probe", None, None)
    record.jthread = thread
    return record


def fast_op_sink(handler: logging.Handler | None) -> Callable[[str, str], None] | None:
    """The direct writer for op lines to `handler`, or None if it would differ from logging."""
    from .runner import JarLogFormatter   # the layout's one definition
    if handler is None or not equivalent(handler):
        return None
    if type(handler.formatter) is not JarLogFormatter:
        return None
    stream = getattr(handler, "stream", None)
    if stream is None:
        return None
    cache = [-1, ""]   # the second whose date text is cached, and that text

    def sink(thread: str, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != cache[0]:
            cache[0] = second
            cache[1] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        msecs = int((now - second) * 1000)
        handler.acquire()
        try:
            stream.write(f"INFO [{cache[1]},{msecs:03d}] {thread} - {OP_LOGGER} {message}\n")
            handler.flush()
        except Exception:  # noqa: BLE001 - as Handler.emit: report on stderr, keep running
            handler.handleError(logging.makeLogRecord(
                {"name": OP_LOGGER, "msg": message, "levelno": logging.INFO,
                 "levelname": "INFO", "jthread": thread}))
        finally:
            handler.release()
    sink.handler = handler   # type: ignore[attr-defined]
    return sink


def equivalent(handler: logging.Handler) -> bool:
    """Whether an INFO record of the op logger would reach `handler` and no other handler."""
    op_log = logging.getLogger(OP_LOGGER)
    root = logging.getLogger()
    if (logging.root.manager.disable >= logging.INFO or not op_log.isEnabledFor(logging.INFO)
            or op_log.handlers or op_log.filters or not op_log.propagate or root.filters):
        return False
    if op_log.parent is not root:
        return False   # a "jepsen" logger in between could have handlers
    if handler not in root.handlers:
        return False
    probe = _probe("jepsen worker 0")
    for h in root.handlers:
        passes = probe.levelno >= h.level and bool(h.filter(probe))
        if (h is handler) != passes:
            return False
    return True


def still_valid(sink: Callable[[str, str], None]) -> bool:
    return equivalent(sink.handler)   # type: ignore[attr-defined]
