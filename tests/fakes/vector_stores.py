"""A loopback server speaking the OpenAI vector stores API (and so Llama Stack's):
``/v1/files``, ``/v1/vector_stores``, ``/v1/vector_stores/{id}/files``,
``/v1/vector_stores/{id}/search``, with OpenAI's ids (``vs_...``, ``file-...``),
objects, statuses and error JSON.

It does the managed part honestly: an attached file is ``in_progress`` for
``ingest_polls`` status reads, then ``completed`` (or ``failed`` with ``last_error``
when it is not UTF-8 text); it is chunked into word windows and searched by lexical
cosine similarity (term-frequency vectors of lowercased words), so tests can tell
right answers from wrong ones. Filters follow OpenAI's comparison / compound format.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeVectorStores"]

_WORD = re.compile(r"[a-z0-9]+")
CHUNK_WORDS = 40


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lexical_score(query: str, text: str) -> float:
    """Cosine similarity of the term-frequency vectors of two texts (0..1)."""
    q, d = Counter(_words(query)), Counter(_words(text))
    dot = sum(q[w] * d[w] for w in q)
    if not dot:
        return 0.0
    return dot / (math.sqrt(sum(v * v for v in q.values())) *
                  math.sqrt(sum(v * v for v in d.values())))


def same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _holds(flt: dict[str, Any], attrs: dict[str, Any]) -> bool:
    kind = flt.get("type")
    if kind in ("and", "or"):
        parts = [_holds(f, attrs) for f in flt["filters"]]
        return all(parts) if kind == "and" else any(parts)
    key, value = flt["key"], flt["value"]
    if key not in attrs:
        return False
    have = attrs[key]
    if kind == "eq":
        return same(have, value)
    if kind == "ne":
        return not same(have, value)
    if kind == "in":
        return any(same(have, v) for v in value)
    if kind == "nin":
        return not any(same(have, v) for v in value)
    if isinstance(have, bool) or not isinstance(have, int | float):
        return False
    return {"gt": have > value, "gte": have >= value, "lt": have < value,
            "lte": have <= value}[kind]


@dataclass
class _File:
    id: str
    filename: str
    data: bytes
    created_at: int


@dataclass
class _StoreFile:
    file: _File
    attributes: dict[str, Any]
    created_at: int
    seq: int
    polls_left: int
    chunks: list[str] = field(default_factory=list)
    status: str = "in_progress"
    last_error: dict[str, str] | None = None


@dataclass
class _Store:
    id: str
    name: str
    created_at: int
    metadata: dict[str, Any]
    files: dict[str, _StoreFile] = field(default_factory=dict)


class FakeVectorStores:
    """``with FakeVectorStores(api_key="sk-...") as fake: fake.url`` (``.../v1``).
    ``searches`` counts search calls (what OpenAI bills); ``requests`` records
    ``(method, path, json_body)``."""

    def __init__(self, *, api_key: str | None = None, ingest_polls: int = 1) -> None:
        self.api_key = api_key
        self.ingest_polls = ingest_polls
        self.files: dict[str, _File] = {}
        self.stores: dict[str, _Store] = {}
        self.searches = 0
        self.requests: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeVectorStores:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = fake.dispatch(self.command, self.path, dict(self.headers),
                                                body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ routing

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        lower = {k.lower(): v for k, v in headers.items()}
        is_json = lower.get("content-type", "").startswith("application/json")
        payload = json.loads(body) if body and is_json else None
        with self._lock:
            self.requests.append((method, path, payload))
            if self.api_key is not None and lower.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
            if not path.startswith("/v1/"):
                return _error(404, f"Invalid URL ({method} {path})", "unknown_url")
            seg = path[len("/v1/"):].strip("/").split("/")
            try:
                return self._route(method, seg, query, payload, lower, body)
            except KeyError as exc:
                return _error(404, f"No such object: {exc.args[0]}", "not_found")
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc), "invalid_request_error")

    def _route(self, method: str, seg: list[str], query: dict[str, str], payload: Any,
               headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if seg[0] == "files":
            if method == "POST" and len(seg) == 1:
                return 200, self._upload(headers.get("content-type", ""), body)
            file = self.files[seg[1]]
            if method == "DELETE":
                del self.files[file.id]
                return 200, {"id": file.id, "object": "file", "deleted": True}
            return 200, _file_json(file)
        if seg[0] != "vector_stores":
            return _error(404, f"Invalid URL ({method} /v1/{'/'.join(seg)})", "unknown_url")
        if len(seg) == 1:
            if method == "POST":
                return 200, self._create_store(payload or {})
            return 200, _page([_store_json(s) for s in self.stores.values()], query)
        store = self.stores[seg[1]]
        if len(seg) == 2:
            return 200, _store_json(store)
        if seg[2] == "search":
            self.searches += 1
            return 200, self._search(store, payload or {})
        if seg[2] != "files":
            return _error(404, "Invalid URL", "unknown_url")
        if len(seg) == 3:
            if method == "POST":
                return 200, self._attach(store, payload or {})
            items = sorted(store.files.values(), key=lambda f: f.seq)
            if query.get("order", "desc") == "desc":
                items.reverse()
            return 200, _page([_vsfile_json(store, f) for f in items], query)
        item = store.files[seg[3]]
        if method == "DELETE":
            del store.files[item.file.id]
            return 200, {"id": item.file.id, "object": "vector_store.file.deleted",
                         "deleted": True}
        self._progress(item)
        return 200, _vsfile_json(store, item)

    # ------------------------------------------------------------------ handlers

    def _upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        purpose, file = None, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            if name == "purpose":
                purpose = bytes(data).decode() if isinstance(data, bytes) else None
            elif name == "file" and isinstance(data, bytes):
                file = (part.get_filename() or "upload", data)
        if purpose not in ("assistants", "user_data"):
            raise ValueError(f"'purpose' must be assistants or user_data, got {purpose!r}")
        if file is None:
            raise ValueError("'file' is required")
        made = _File("file-" + secrets.token_hex(12), file[0], file[1], int(time.time()))
        self.files[made.id] = made
        return _file_json(made)

    def _create_store(self, body: dict[str, Any]) -> dict[str, Any]:
        store = _Store("vs_" + secrets.token_hex(12), str(body.get("name") or ""),
                       int(time.time()), dict(body.get("metadata") or {}))
        self.stores[store.id] = store
        for file_id in body.get("file_ids") or []:
            self._attach(store, {"file_id": file_id})
        return _store_json(store)

    def _attach(self, store: _Store, body: dict[str, Any]) -> dict[str, Any]:
        file = self.files[str(body.get("file_id"))]
        attrs = dict(body.get("attributes") or {})
        if len(attrs) > 16:
            raise ValueError("attributes: at most 16 keys")
        self._seq += 1
        item = _StoreFile(file, attrs, int(time.time()), self._seq, self.ingest_polls)
        store.files[file.id] = item
        return _vsfile_json(store, item)

    def _progress(self, item: _StoreFile) -> None:
        if item.status != "in_progress":
            return
        if item.polls_left > 0:
            item.polls_left -= 1
            return
        try:
            words = item.file.data.decode("utf-8").split()
        except UnicodeDecodeError:
            item.status = "failed"
            item.last_error = {"code": "unsupported_file",
                               "message": "The file could not be parsed as text."}
            return
        step = CHUNK_WORDS - 10
        item.chunks = [" ".join(words[i:i + CHUNK_WORDS])
                       for i in range(0, max(len(words) - 10, 1), step)] or [""]
        item.status = "completed"

    def _search(self, store: _Store, body: dict[str, Any]) -> dict[str, Any]:
        query = body.get("query")
        if not isinstance(query, str) or not query:
            raise ValueError("'query' must be a non-empty string")
        limit = int(body.get("max_num_results", 10))
        if not 1 <= limit <= 50:
            raise ValueError("'max_num_results' must be between 1 and 50")
        flt = body.get("filters")
        hits = []
        for item in store.files.values():
            if item.status != "completed" or (flt and not _holds(flt, item.attributes)):
                continue
            for text in item.chunks:
                hits.append((lexical_score(query, text), item, text))
        hits.sort(key=lambda h: -h[0])
        data = [{"file_id": item.file.id, "filename": item.file.filename, "score": score,
                 "attributes": item.attributes, "content": [{"type": "text", "text": text}]}
                for score, item, text in hits[:limit]]
        return {"object": "vector_store.search_results.page", "search_query": [query],
                "data": data, "has_more": False, "next_page": None}


def _error(status: int, message: str, code: str) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": "invalid_request_error",
                              "param": None, "code": code}}


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    after = query.get("after")
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = int(query.get("limit", 20))
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}


def _file_json(file: _File) -> dict[str, Any]:
    return {"id": file.id, "object": "file", "bytes": len(file.data),
            "created_at": file.created_at, "filename": file.filename,
            "purpose": "assistants", "status": "processed", "expires_at": None}


def _store_json(store: _Store) -> dict[str, Any]:
    counts = Counter(f.status for f in store.files.values())
    return {"id": store.id, "object": "vector_store", "created_at": store.created_at,
            "name": store.name, "usage_bytes": sum(len(f.file.data) for f in store.files.values()),
            "file_counts": {"in_progress": counts["in_progress"],
                            "completed": counts["completed"], "failed": counts["failed"],
                            "cancelled": 0, "total": len(store.files)},
            "status": "completed", "expires_after": None, "expires_at": None,
            "last_active_at": store.created_at, "metadata": store.metadata}


def _vsfile_json(store: _Store, item: _StoreFile) -> dict[str, Any]:
    return {"id": item.file.id, "object": "vector_store.file", "created_at": item.created_at,
            "vector_store_id": store.id, "status": item.status,
            "last_error": item.last_error, "usage_bytes": len(item.file.data),
            "attributes": item.attributes,
            "chunking_strategy": {"type": "static", "static": {
                "max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}}
