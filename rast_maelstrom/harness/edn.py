"""A small EDN writer for the runner's human-facing outputs (results.edn, history.txt values).

Owns: turning plain Python data (the shapes orjson reads and writes) into EDN text the way the
Maelstrom jar prints it: `{:valid? true, :count 3}`, `[0 nil]`, `#{"n0"}`, `:nemesis`.

Mapping (invariants):
- dict -> map; a str key that is a legal keyword name becomes a keyword (`"valid?"` -> `:valid?`),
  any other key is written as its value (ints stay ints, odd strings stay strings).
- str -> string, unless wrapped in `Keyword`, which prints as `:name`; a key wrapped in `Str`
  stays a string.
- None -> nil, bool -> true/false, int -> int, float -> shortest repr (NaN/inf as ##NaN/##Inf).
- list/tuple -> vector, `Seq` -> seq `(...)`, set/frozenset -> set (sorted when its items sort,
  so output is stable); a `Tagged` map prints with its record tag, `#tag{...}`.
- Anything else is a programming error: TypeError, never a silent `str()`.

It only writes; nothing here reads EDN back (tests carry their own tiny reader). It imports only
the standard library and touches no files.
"""

from __future__ import annotations

import math
import re

__all__ = ["Keyword", "Seq", "Str", "Tagged", "dumps", "from_json", "is_keyword_name"]

# A conservative subset of EDN's symbol grammar: what we ever need for map keys and enum-ish
# values such as `valid?`, `ok-count`, `precondition-failed`, `n1`, `start-partition`.
_KEYWORD_NAME = re.compile(r"[A-Za-z*+!_?<>=.\-][A-Za-z0-9*+!_?<>=.\-/#']*\Z")
# Nesting bound: results and op values are a handful of levels deep; anything deeper is a cycle.
depth_max = 64

_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\n\t\r]')


class Keyword(str):
    """A str that EDN prints as a keyword: Keyword("ok") -> `:ok`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Keyword({str.__repr__(self)})"


class Str(str):
    """A str that EDN always prints as a string, even as a map key: {Str("n1"): ...} -> {"n1" ...}."""

    __slots__ = ()


class Seq(list):
    """A list that EDN prints as a seq, `(1 2)`, as Clojure prints lazy sequences (JSON: a list)."""

    __slots__ = ()


class Tagged(dict):
    """A map that EDN prints as a record, `#knossos.model.CASRegister{:value 3}` (JSON: the map)."""

    __slots__ = ("tag",)

    def __init__(self, tag: str, fields: dict):
        super().__init__(fields)
        self.tag = tag


def from_json(value: object) -> object:
    """Decoded JSON as Clojure holds it after parsing: object keys stay strings at every depth
    (wrapped in `Str`), so `dumps` prints `{"a" 1}`, not `{:a 1}`."""
    if isinstance(value, dict):
        return {Str(k): from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def is_keyword_name(text: str) -> bool:
    """True when `text` can be printed as `:text` and read back as the same keyword."""
    if not _KEYWORD_NAME.match(text):
        return False
    # `:1x`-like names are legal after a letter only; a leading '-'/'+'/'.' followed by a digit
    # reads as a number.
    return not (text[0] in "-+." and len(text) > 1 and text[1].isdigit())


def _string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _STRING_ESCAPES[m.group(0)], text) + '"'


def _float(x: float) -> str:
    if math.isnan(x):
        return "##NaN"
    if math.isinf(x):
        return "##Inf" if x > 0 else "##-Inf"
    return repr(x)


def _key(key: object, depth: int, readably: bool) -> str:
    if isinstance(key, str) and not isinstance(key, (Keyword, Str)) and is_keyword_name(key):
        return ":" + key
    return _dump(key, depth, readably)


def _sorted_if_possible(items: list) -> list:
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def _dump(obj: object, depth: int, readably: bool = True) -> str:
    if depth > depth_max:
        raise ValueError(f"EDN nesting deeper than {depth_max} levels (a cycle?)")
    # Order matters: bool is an int, Keyword is a str.
    if obj is None:
        return "nil"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, Keyword):
        assert is_keyword_name(obj), f"not a keyword name: {str(obj)!r}"
        return ":" + obj
    if isinstance(obj, str):
        return _string(obj) if readably else obj
    if isinstance(obj, int):
        return str(int(obj))
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, dict):
        inner = depth + 1
        parts = [f"{_key(k, inner, readably)} {_dump(v, inner, readably)}" for k, v in obj.items()]
        tag = f"#{obj.tag}" if isinstance(obj, Tagged) else ""
        return tag + "{" + ", ".join(parts) + "}"
    if isinstance(obj, Seq):
        inner = depth + 1
        return "(" + " ".join(_dump(x, inner, readably) for x in obj) + ")"
    if isinstance(obj, (list, tuple)):
        inner = depth + 1
        return "[" + " ".join(_dump(x, inner, readably) for x in obj) + "]"
    if isinstance(obj, (set, frozenset)):
        inner = depth + 1
        return "#{" + " ".join(_dump(x, inner, readably)
                               for x in _sorted_if_possible(list(obj))) + "}"
    raise TypeError(f"cannot write {type(obj).__name__} as EDN: {obj!r}")


def dumps(obj: object, *, readably: bool = True) -> str:
    """EDN text for `obj` on one line (maps use `, ` between entries, as Clojure prints them).
    With readably=False strings print bare at every depth, as Clojure's `print` (not `pr`) does."""
    return _dump(obj, 0, readably)
