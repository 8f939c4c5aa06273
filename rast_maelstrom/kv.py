"""The lin-kv state machine: read, write and compare-and-set on a map, and its result codes.

Owns: the map, the meaning of a log command and what it means for two values to be equal. Commands
are encoded once, by the leader, as compact JSON bytes (`encode_write`, `encode_cas`, `NOOP`); those
bytes are what the log, the wire and the disk carry, and `apply` decodes them only when the entry is
applied.

Values are kept as the exact JSON bytes the client sent and read back as those bytes (a big integer
is never rounded through a float). `cas` compares values as JSON values, the way the Maelstrom
jar's checker does (Clojure `=` on what Cheshire parses): `1`, `1.0` and `true` all differ, `0` is not
`false`, integers are exact at any size (`1` equals `1`, `-0` equals `0`), floats compare as doubles
(`1e2` equals `100.0`, `0.0` equals `-0.0`), strings compare after unescaping, arrays element by
element, and objects as unordered maps (key order does not matter; a repeated key keeps its last
value). A value may nest at most `VALUE_DEPTH_MAX` deep, so every comparison and every message that
carries it is decoded the same way on every replica.

A write or cas proposed for a client carries the client's identity (`src`, `msg_id`) as two more
parts; `apply` consults the session table (`sessions.py`) with it, so a request already applied is
not applied again and gets its first result. Commands without the identity apply as before.

Invariant: `apply` is deterministic. Every replica computes the same result for the same entry; an
exception while applying (a corrupt or unknown command) leaves the map unchanged and becomes the
same error result everywhere, so replicas never diverge.

May not touch: Raft, IO, the wire envelope.
"""

from __future__ import annotations

import json
import logging
import re
from itertools import islice
from typing import Any, Iterator, Union

import msgspec
import orjson

from . import sessions

log = logging.getLogger(__name__)

# Maelstrom error codes (spec §1.6).
ERR_TIMEOUT = 0
ERR_NOT_SUPPORTED = 10
ERR_TEMPORARILY_UNAVAILABLE = 11
ERR_MALFORMED_REQUEST = 12
ERR_CRASH = 13
ERR_KEY_DOES_NOT_EXIST = 20
ERR_PRECONDITION_FAILED = 22

NOOP = b"null"  # what a new leader appends to commit its term
# A configuration entry's data starts with this (core.membership.CONF_PREFIX; the core reads it, the
# state machine applies it as a no-op).
CONFIG_PREFIX = b'["cfg",'

# A result: (None, value) on success, or (code, text) on a definite failure.
Result = tuple[int | None, Any]

VALUE_DEPTH_MAX = 64  # arrays/objects nested deeper are refused (12): decoders recurse per level



class _Write(msgspec.Struct, array_like=True, tag="w"):
    """["w", key, value] or, for a client's request, ["w", key, value, src, msg_id]."""

    key: Union[int, str]
    value: msgspec.Raw
    src: Union[str, None] = None
    msg_id: int = 0


class _Cas(msgspec.Struct, array_like=True, tag="c"):
    """["c", key, from, to] or ["c", key, from, to, src, msg_id]."""

    key: Union[int, str]
    frm: msgspec.Raw
    to: msgspec.Raw
    src: Union[str, None] = None
    msg_id: int = 0


_decode_command = msgspec.json.Decoder(Union[_Write, _Cas]).decode
_crc32 = sessions.crc32
_EVICT_PAST = sessions.EVICT_PAST
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def value_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in one well-formed JSON value (0 for a scalar)."""
    if b"[" not in raw and b"{" not in raw:
        return 0
    if b'"' in raw:
        raw = _STRING.sub(b"", raw)  # brackets inside strings do not nest
    depth = deepest = 0
    for c in raw.translate(None, _NOT_BRACKETS):
        if c == 0x5B or c == 0x7B:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def check_value(raw: bytes) -> None:
    """Raise ValueError for a client value the store refuses."""
    if value_depth(raw) > VALUE_DEPTH_MAX:
        raise ValueError(f"value nests deeper than {VALUE_DEPTH_MAX}")


def _exact_int(text: str) -> tuple[str, str]:
    return ("i", "0" if text == "-0" else text)  # the literal: exact at any size, never int()-parsed


def _double(text: str) -> tuple[str, float]:
    return ("f", float(text))  # what a JVM double makes of it (overflow becomes infinity)


_KIND = {c: "number" for c in b"-0123456789"} | {ord("t"): "true", ord("f"): "false", ord("n"): "null",
                                                  ord('"'): "string", ord("["): "array", ord("{"): "object"}
_INT = re.compile(rb"-?[0-9]+")


def json_equal(a: bytes, b: bytes) -> bool:
    """Are two well-formed JSON values equal as the jar's checker sees them (see the module doc)?
    Scalars are told apart by their first byte and number syntax; otherwise both are parsed, with
    numbers as tagged tuples, which never equal a list, bool, string or another tag."""
    if a == b:
        return True
    kind = _KIND[a[0]]
    if kind != _KIND[b[0]]:
        return False  # different JSON types are never equal
    if kind == "number":
        a_int, b_int = _INT.fullmatch(a) is not None, _INT.fullmatch(b) is not None
        if a_int and b_int:
            return a in (b"0", b"-0") and b in (b"0", b"-0")  # distinct literals: only 0 and -0 agree
        return not a_int and not b_int and float(a) == float(b)
    if kind in ("true", "false", "null"):
        return False  # one spelling each, and the bytes differ
    return json.loads(a, parse_int=_exact_int, parse_float=_double) == json.loads(
        b, parse_int=_exact_int, parse_float=_double
    )


def encode_write(key: int | str, value: Any, src: str | bytes | None = None, msg_id: int = 0) -> bytes:
    """`value` (and `frm`, `to`): the JSON bytes as the client sent them (bytes or msgspec.Raw),
    spliced in, never re-encoded. With `src`, the command carries the client's identity (sessions):
    its name, or that name already encoded as a JSON string (bytes; the node passes its cached one)."""
    if src is None:
        return b'["w",%b,%b]' % (orjson.dumps(key), value)
    return b'["w",%b,%b,%b,%d]' % (orjson.dumps(key), value, _src_json(src), msg_id)


def encode_cas(key: int | str, frm: Any, to: Any, src: str | bytes | None = None, msg_id: int = 0) -> bytes:
    if src is None:
        return b'["c",%b,%b,%b]' % (orjson.dumps(key), frm, to)
    return b'["c",%b,%b,%b,%b,%d]' % (orjson.dumps(key), frm, to, _src_json(src), msg_id)


def _src_json(src: str | bytes) -> bytes:
    return src if type(src) is bytes else orjson.dumps(src)


def client_request(command: bytes) -> tuple[str, int, bytes] | None:
    """For a command carrying a client's identity: (src, msg_id, the request body as a client
    would send it, marked forwarded once), so a node can hand it to another leader; else None."""
    try:
        cmd = _decode_command(command)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if cmd.src is None:
        return None
    key = orjson.dumps(cmd.key)
    if type(cmd) is _Write:
        body = b'{"type":"write","msg_id":%d,"key":%b,"value":%b,"fwd":1}' % (cmd.msg_id, key, cmd.value)
    else:
        body = b'{"type":"cas","msg_id":%d,"key":%b,"from":%b,"to":%b,"fwd":1}' % (
            cmd.msg_id, key, cmd.frm, cmd.to)
    return cmd.src, cmd.msg_id, body


_DUPLICATE_TEXT = "a copy of this request was applied before; this is its result"


_decode_pairs = msgspec.json.Decoder(list[tuple[Union[int, str], msgspec.Raw]]).decode


LAYER_ITEMS_MAX = 16384  # writes one overlay layer takes before a new layer is stacked on it


class Overlay(dict):
    """One layer of the live map while a snapshot serializes the map as it was: writes land in the
    top layer, reads look there first and then down through `base` (an older layer, and under the
    last one the frozen map; lin-kv never deletes a key).

    Layers, not one overlay: a dict grows by copying itself into a table twice its size, so one
    overlay of n entries costs O(n) in the pass whose write makes it resize (at 175,000 entries
    17 ms in fresh memory, on a process's first snapshot, and 6-8 ms later; bench/snapshots.md).
    A layer stops at LAYER_ITEMS_MAX entries, so no resize copies more than about 11,000 of
    them."""

    __slots__ = ("base",)

    def __missing__(self, key: Any) -> bytes:
        return self.base[key]

    def __contains__(self, key: Any) -> bool:
        return dict.__contains__(self, key) or key in self.base


def serialize_parts(data: dict, items_max: int, bytes_max: int) -> Iterator[bytes]:
    """The map's snapshot section in parts, each of at most `items_max` pairs and, once the values'
    size is known, about `bytes_max` bytes (the next part's count is scaled by the last one's size).
    Joined, the parts are `KVStore.serialize`'s bytes. `data` must not change meanwhile."""
    dumps = orjson.dumps
    it = iter(data.items())
    n = items_max
    sep = b"["
    while True:
        batch = list(islice(it, n))
        if not batch:
            break
        part = sep + b",".join([b"[%b,%b]" % (dumps(k), v) for k, v in batch])
        yield part
        sep = b","
        n = max(1, min(items_max, n * bytes_max // len(part)))
    yield b"]" if sep == b"," else b"[]"


class KVStore:
    __slots__ = ("data", "sessions", "dedup")

    def serialize(self) -> bytes:
        """The map as a snapshot section: a JSON array of [key, value] pairs, values spliced in as
        the exact bytes they were written with."""
        return b"".join(serialize_parts(self.data, 1 << 30, 1 << 62))

    def freeze(self) -> dict:
        """Start a snapshot of the map as it is: returns it, frozen (never written again), and
        sends later writes to an `Overlay` over it until `fold` has moved them back."""
        base = self.data
        assert type(base) is dict, "one frozen map at a time"
        self.data = overlay = Overlay()
        overlay.base = base
        return base

    def stack(self, layer_max: int) -> None:
        """Once the top overlay holds `layer_max` entries, later writes go to a new layer over it
        (called once per loop pass while an overlay is in use; see `Overlay`)."""
        top = self.data
        if type(top) is Overlay and len(top) >= layer_max:
            self.data = layer = Overlay()
            layer.base = top

    def fold(self, items_max: int) -> bool:
        """Move up to `items_max` entries of the oldest overlay layer into the map under it (no
        longer frozen once its snapshot is serialized), dropping the layer once it is empty;
        True once the map is one plain dict again. (Newer layers still shadow what moves.)"""
        above, layer = None, self.data
        if type(layer) is not Overlay:
            return True  # (a restore replaced the map meanwhile)
        while type(layer.base) is Overlay:
            above, layer = layer, layer.base
        base = layer.base
        pop = layer.popitem
        for _ in range(min(items_max, len(layer))):
            k, v = pop()
            base[k] = v
        if layer:
            return False
        if above is None:
            self.data = base
            return True
        above.base = base
        return False

    def items(self) -> dict:
        """The whole map as one dict (a copy while an overlay is in use)."""
        layer = self.data
        if type(layer) is not Overlay:
            return layer
        layers = []
        while type(layer) is Overlay:
            layers.append(layer)
            layer = layer.base
        merged = dict(layer)
        for layer in reversed(layers):
            merged.update(layer)
        return merged

    def restore(self, section: bytes) -> None:
        """Replace the map with one `serialize` produced (raises on a malformed section)."""
        self.data = {k: bytes(v) for k, v in _decode_pairs(section)}

    def __init__(self, dedup: bool = True) -> None:
        self.data: dict[int | str, bytes] = {}  # key -> the value's JSON bytes, as written
        self.sessions = sessions.SessionTable()  # replicated state too (a snapshot section)
        self.dedup = dedup  # False only for the planted test bug `sessions.BUG_NO_DEDUP`

    def read(self, key: Any) -> Result:
        """(None, the value's JSON bytes) or a definite error."""
        try:
            return None, self.data[key]
        except KeyError:
            return ERR_KEY_DOES_NOT_EXIST, f"key {repr(key)[:100]} does not exist"

    def apply(self, command: bytes) -> Result:
        """Apply one committed log command. Never raises."""
        try:
            if command == NOOP or command[:7] == CONFIG_PREFIX:
                return None, None
            cmd = _decode_command(command)
            src = cmd.src
            if src is None:
                return self._write(cmd) if type(cmd) is _Write else self._cas(cmd)
            # A client's request: its stored result if a copy was applied, else apply and record.
            # (`SessionTable.touch`, `Session.prior` and `Session.add` inline: this runs for every write and cas on
            # every replica, and the calls were most of its cost.)
            msg_id = cmd.msg_id
            crc = _crc32(command)
            clients = self.sessions.clients
            try:  # (subscripts and `in`, not .get(): method calls were much of the cost)
                session = clients[src]
            except KeyError:
                session = self.sessions.touch(src)
            else:
                clients.move_to_end(src)
                frozen = self.sessions.frozen  # a snapshot is serializing the table: copy on write
                if frozen is not None and frozen.get(src) is session:
                    session = clients[src] = session.copy()
                if self.dedup:
                    if msg_id in session.results:
                        v = session.results[msg_id]
                        if v >> 8 == crc:
                            return self._prior(v & 0xFF, src, msg_id)
                    elif session.floor is not None and msg_id <= session.floor:
                        return self._prior(sessions.EVICTED, src, msg_id)
            if type(cmd) is _Write:
                code, text = self._write(cmd)
            else:
                code, text = self._cas(cmd)
            results = session.results
            results[msg_id] = crc << 8 | (0 if code is None else code)  # sessions.OK is 0
            if len(results) > _EVICT_PAST:
                session.evict()
            return code, text
        except Exception as exc:  # deterministic: same bytes, same exception, on every replica
            log.error("applying command %r failed: %r", command[:200], exc)
            return ERR_CRASH, f"applying the command failed: {exc}"

    @staticmethod
    def _prior(prior: int, src: str, msg_id: int) -> Result:
        """The answer to a copy of a request the session table decided (`sessions.Session.prior`)."""
        if prior == sessions.OK:
            return None, None
        if prior == sessions.EVICTED:
            return ERR_CRASH, (f"msg_id {msg_id} is older than the last {sessions.WINDOW_MAX} "
                               f"requests of {src[:100]} applied; not applied now (a copy may "
                               "have been applied before)")
        return prior, _DUPLICATE_TEXT

    def _write(self, cmd: Any) -> Result:
        self.data[cmd.key] = bytes(cmd.value)
        return None, None

    def _cas(self, cmd: Any) -> Result:
        key = cmd.key
        data = self.data
        if key not in data:
            return ERR_KEY_DOES_NOT_EXIST, f"key {repr(key)[:100]} does not exist"
        cur = data[key]
        frm = bytes(cmd.frm)
        if not json_equal(cur, frm):
            return ERR_PRECONDITION_FAILED, f"expected {frm[:100].decode()} but had {cur[:100].decode()}"
        data[key] = bytes(cmd.to)
        return None, None
