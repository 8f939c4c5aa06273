"""`maelstrom-py serve`: the store in a browser, as the jar's `serve` shows it.

Owns a small HTTP server (the standard library's, one thread per request) over a store directory:
- `/` lists every stored test, newest first: its name, start time, verdict (from results.json,
  coloured as the jar's web page colours valid, invalid and unknown) and links to its folder and
  its most read files (results.edn, history.txt, timeline.html, messages.svg, latency plots).
- `/files/<path>` serves a file under the store (html, svg, png, json and text types; EDN, logs
  and histories as plain text) or, for a directory, a listing with links.
Nothing outside the store is served: a path that resolves outside it (`..`, a symlink pointing
away) is a 404. Read-only: no method but GET (and HEAD).

Invariants: never writes; each response is bounded by the file it sends (read in chunks of
`chunk_bytes`). May not touch: the runner, the checkers.
"""
from __future__ import annotations

import html
import logging
import mimetypes
import urllib.parse
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

log = logging.getLogger("maelstrom.web")

chunk_bytes = 1 << 16
listed_tests_max = 1000
TEXT_SUFFIXES = {".edn", ".txt", ".log", ".jsonl", ".py", ""}
KEY_FILES = ("results.edn", "history.txt", "timeline.html", "messages.svg", "latency-raw.png",
             "rate.png", "jepsen.log")
VERDICT_COLOURS = {True: "#ADF6A7", False: "#F6AEAD", "unknown": "#F3F6AD"}


def stored_tests(store: Path) -> list[Path]:
    """Every stored test directory (store/<name>/<timestamp>), newest first."""
    tests = []
    if store.is_dir():
        for name_dir in store.iterdir():
            if not name_dir.is_dir() or name_dir.is_symlink():
                continue
            tests += [d for d in name_dir.iterdir() if d.is_dir() and not d.is_symlink()
                      and (d / "test.json").is_file()]
    return sorted(tests, key=lambda d: d.name, reverse=True)[:listed_tests_max]


def _verdict(test_dir: Path):
    try:
        return orjson.loads((test_dir / "results.json").read_bytes()).get("valid?", "unknown")
    except (OSError, orjson.JSONDecodeError):
        return None   # crashed or not analysed: no results


def _page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>body{{font-family:sans-serif}} td{{padding:2px 8px}}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def index_page(store: Path) -> bytes:
    rows = []
    for d in stored_tests(store):
        rel = d.relative_to(store).as_posix()
        verdict = _verdict(d)
        colour = VERDICT_COLOURS.get(verdict, "#eeeeee")
        shown = {True: "valid", False: "invalid", "unknown": "unknown", None: "no results"}.get(
            verdict, str(verdict))
        links = " ".join(f"<a href='/files/{urllib.parse.quote(rel)}/{f}'>{f}</a>"
                         for f in KEY_FILES if (d / f).is_file())
        rows.append(f"<tr style='background:{colour}'><td>{html.escape(d.parent.name)}</td>"
                    f"<td><a href='/files/{urllib.parse.quote(rel)}/'>{html.escape(d.name)}</a>"
                    f"</td><td>{shown}</td><td>{links}</td></tr>")
    table = ("<table><tr><th>Name</th><th>Time</th><th>Valid?</th><th>Files</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>No tests in the store yet.</p>"
    return _page("Jepsen", table)


def listing_page(store: Path, directory: Path) -> bytes:
    rel = directory.relative_to(store).as_posix()
    items = sorted(directory.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    lines = [f"<li><a href='/files/{urllib.parse.quote((Path(rel) / p.name).as_posix())}"
             f"{'/' if p.is_dir() else ''}'>{html.escape(p.name)}{'/' if p.is_dir() else ''}"
             f"</a></li>" for p in items]
    up = "<p><a href='/'>all tests</a></p>"
    return _page(f"store/{rel}", up + "<ul>" + "".join(lines) + "</ul>")


class StoreHandler(BaseHTTPRequestHandler):
    server_version = "maelstrom-py"

    def __init__(self, *args, store: Path, **kwargs):
        self.store = store
        super().__init__(*args, **kwargs)

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, ctype: str, body: bytes | None, length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if body is not None else length))
        self.end_headers()
        if body is not None and self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self, url_path: str) -> Path | None:
        rel = urllib.parse.unquote(url_path[len("/files/"):])
        target = (self.store / rel).resolve()
        root = self.store.resolve()
        if target != root and root not in target.parents:
            return None
        return target if target.exists() else None

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(200, "text/html; charset=utf-8", index_page(self.store))
        if not path.startswith("/files/"):
            return self._send(404, "text/plain", b"not found\n")
        target = self._resolve(path)
        if target is None:
            return self._send(404, "text/plain", b"not found\n")
        if target.is_dir():
            return self._send(200, "text/html; charset=utf-8", listing_page(self.store, target))
        ctype = ("text/plain; charset=utf-8" if target.suffix in TEXT_SUFFIXES
                 else mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        size = target.stat().st_size
        self._send(200, ctype, None, size)
        if self.command == "HEAD":
            return
        with open(target, "rb") as f:
            while chunk := f.read(chunk_bytes):
                self.wfile.write(chunk)


def make_server(store: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A server for `store` bound to host:port (port 0: any free port); call serve_forever()."""
    server = ThreadingHTTPServer((host, port), partial(StoreHandler, store=Path(store)))
    server.daemon_threads = True
    return server
