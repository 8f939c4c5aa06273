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

Invariant: `apply` is deterministic. Every replica computes the same result for the same entry; an
exception while applying (a corrupt or unknown command) leaves the map unchanged and becomes the
same error result everywhere, so replicas never diverge.

May not touch: Raft, IO, the wire envelope.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Union

import msgspec
import orjson

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

# A result: (None, value) on success, or (code, text) on a definite failure.
Result = tuple[int | None, Any]

VALUE_DEPTH_MAX = 64  # arrays/objects nested deeper are refused (12): decoders recurse per level

_decode_parts = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_key = msgspec.json.Decoder(Union[int, str]).decode
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_WRITE = b'"w"'
_CAS = b'"c"'


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


def encode_write(key: int | str, value: Any) -> bytes:
    """`value` (and `frm`, `to`): the JSON bytes as the client sent them (bytes or msgspec.Raw),
    spliced in, never re-encoded."""
    return b'["w",%b,%b]' % (orjson.dumps(key), value)


def encode_cas(key: int | str, frm: Any, to: Any) -> bytes:
    return b'["c",%b,%b,%b]' % (orjson.dumps(key), frm, to)


_decode_pairs = msgspec.json.Decoder(list[tuple[Union[int, str], msgspec.Raw]]).decode


class KVStore:
    __slots__ = ("data",)

    def serialize(self) -> bytes:
        """The map as a snapshot section: a JSON array of [key, value] pairs, values spliced in as
        the exact bytes they were written with."""
        dumps = orjson.dumps
        return b"[" + b",".join([b"[%b,%b]" % (dumps(k), v) for k, v in self.data.items()]) + b"]"

    def restore(self, section: bytes) -> None:
        """Replace the map with one `serialize` produced (raises on a malformed section)."""
        self.data = {k: bytes(v) for k, v in _decode_pairs(section)}

    def __init__(self) -> None:
        self.data: dict[int | str, bytes] = {}  # key -> the value's JSON bytes, as written

    def read(self, key: Any) -> Result:
        """(None, the value's JSON bytes) or a definite error."""
        try:
            return None, self.data[key]
        except KeyError:
            return ERR_KEY_DOES_NOT_EXIST, f"key {repr(key)[:100]} does not exist"

    def apply(self, command: bytes) -> Result:
        """Apply one committed log command. Never raises."""
        try:
            if command == NOOP:
                return None, None
            cmd = _decode_parts(command)
            op = bytes(cmd[0])
            if op == _WRITE and len(cmd) == 3:
                self.data[_decode_key(cmd[1])] = bytes(cmd[2])
                return None, None
            if op == _CAS and len(cmd) == 4:
                key = _decode_key(cmd[1])
                data = self.data
                if key not in data:
                    return ERR_KEY_DOES_NOT_EXIST, f"key {repr(key)[:100]} does not exist"
                cur = data[key]
                frm = bytes(cmd[2])
                if not json_equal(cur, frm):
                    return ERR_PRECONDITION_FAILED, f"expected {frm[:100].decode()} but had {cur[:100].decode()}"
                data[key] = bytes(cmd[3])
                return None, None
            raise ValueError(f"unknown command {op[:20]!r} of {len(cmd)} parts")
        except Exception as exc:  # deterministic: same bytes, same exception, on every replica
            log.error("applying command %r failed: %r", command[:200], exc)
            return ERR_CRASH, f"applying the command failed: {exc}"
