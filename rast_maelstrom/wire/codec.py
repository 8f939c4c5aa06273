"""Maelstrom JSON-lines framing and envelope codec.

Owns: splitting a byte stream into lines (bounded), decoding an envelope into (src, dest, body) with
typed errors for malformed input, and encoding outgoing envelopes. Incoming lines carry an extra
network `id`, which is ignored; outgoing lines carry exactly `src`, `dest`, `body` (spec §1.1: the
node-to-Maelstrom schema is closed).

May not touch: Raft, the key-value map, file descriptors (the runtime feeds bytes in).
"""

from __future__ import annotations

from typing import Any

import orjson

LINE_BYTES_MAX = 16 * 1024 * 1024  # a longer line is dropped (and reported), never buffered whole


class MalformedMessage(Exception):
    """An input line that cannot be a Maelstrom message. `body` is set when the envelope decoded but
    the body is unusable, so the sender can still be answered."""

    def __init__(self, text: str, src: str | None = None, body: dict | None = None) -> None:
        super().__init__(text)
        self.src = src
        self.body = body


class LineSplitter:
    """Accumulates bytes and yields complete lines. A line longer than `line_bytes_max` is skipped up
    to its newline and counted in `oversized` (the caller reports it); it is never buffered whole."""

    __slots__ = ("_parts", "_size", "_skipping", "line_bytes_max", "oversized")

    def __init__(self, line_bytes_max: int = LINE_BYTES_MAX) -> None:
        self._parts: list[bytes] = []  # a partial line, in chunks (joined once its newline arrives)
        self._size = 0
        self._skipping = False
        self.line_bytes_max = line_bytes_max
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        nl = data.find(b"\n")
        if nl < 0:
            if not self._skipping:
                self._parts.append(data)
                self._size += len(data)
                if self._size > self.line_bytes_max:
                    self._drop_partial()
            return []
        if self._skipping:
            self._skipping = False
            data = data[nl + 1 :]
        elif self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts = []
            self._size = 0
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._parts.append(rest)
            self._size = len(rest)
            if self._size > self.line_bytes_max:
                self._drop_partial()
        limit = self.line_bytes_max
        if len(data) > limit and any(len(ln) > limit for ln in lines):
            self.oversized += sum(1 for ln in lines if len(ln) > limit)
            lines = [ln for ln in lines if len(ln) <= limit]
        return lines

    def _drop_partial(self) -> None:
        self.oversized += 1
        self._skipping = True
        self._parts = []
        self._size = 0

    def pending(self) -> bytes:
        """What is buffered without a newline yet (a last line at EOF)."""
        return b"".join(self._parts)


def diagnose(line: bytes) -> tuple[str, str, dict[str, Any]]:
    """Decode one envelope generically (the slow path, for lines the typed schema refused): returns
    (src, dest, body) if the envelope is sound, else raises MalformedMessage saying what is wrong."""
    try:
        msg = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if type(msg) is not dict:
        raise MalformedMessage("the message is not a JSON object")
    src = msg.get("src")
    dest = msg.get("dest")
    body = msg.get("body")
    if type(src) is not str or type(dest) is not str:
        raise MalformedMessage("src and dest must be strings", src if type(src) is str else None)
    if type(body) is not dict:
        raise MalformedMessage("body must be a JSON object", src)
    if type(body.get("type")) is not str:
        raise MalformedMessage("body has no string 'type'", src, body)
    return src, dest, body


def encode(src: str, dest: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"src": src, "dest": dest, "body": body}) + b"\n"


_NAME_JSON: dict[str, bytes] = {}  # node or client name -> its JSON string (`name_json`)
NAME_JSON_MAX = 4096  # ... cleared when full


def name_json(name: str) -> bytes:
    """A name as a JSON string, cached: the hot paths format whole lines from byte templates,
    `b'{"src":%b,"dest":%b,"body":{...}}\\n' % (name_json(src), name_json(dest), ...)`, which make
    the bytes `encode` would (compact, keys in order) at half its cost (no dict per message)."""
    j = _NAME_JSON.get(name)
    if j is None:
        if len(_NAME_JSON) >= NAME_JSON_MAX:
            _NAME_JSON.clear()
        j = _NAME_JSON[name] = orjson.dumps(name)
    return j


def encode_body(src: str, dest: str, body: bytes) -> bytes:
    """As `encode`, byte for byte, for a body already encoded as compact JSON."""
    return b'{"src":%b,"dest":%b,"body":%b}\n' % (name_json(src), name_json(dest), body)
