"""A fake of the Hugging Face Hub *bucket* HTTP API for offline tests.

The real ``huggingface_hub`` and the real ``hf_xet`` talk to it unchanged. The trick: the
xet token routes answer ``casUrl = "local://<dir>"``, which makes hf_xet use its built-in
file-backed CAS (the one hf_xet's own tests use). So chunking, dedup, the ndjson ``/batch``
payload, ``hf_raise_for_status`` and ``http_backoff`` all run for real; only the server side
is ours.

The server runs in a thread of the test process on ``127.0.0.1`` with an ephemeral port
(the local CAS is a redb database that one *process* locks, so reading sizes and contents
back from the same process is what makes this work).

Server semantics assumed here (our reading of the client code and of the Hub docs, not
the Hub's source):

* ``POST /api/buckets/{ns}/{name}`` creates (``me`` = the token's user); 409 with ``url``
  in the body when it exists; ``visibility: private`` makes it private, default public.
* Private buckets are invisible to other tokens: 404 ``X-Error-Code: RepoNotFound``
  (what ``hf_raise_for_status`` turns into ``BucketNotFoundError``).
* Write routes need a token of role ``write`` owning the namespace: 401 without a valid
  token, 403 with a read-only one or someone else's namespace.
* ``/batch`` rejects keys that break the bucket key rules as per-operation failures:
  200 with ``failed`` for a partial failure, 422 when every operation failed.
* Sizes are read back from the CAS (the ``/batch`` add carries no size).
* ``GET /api/buckets/{id}`` answers ``id``, ``private``, ``createdAt``, ``size``, ``totalFiles``
  (``BucketInfo``); ``DELETE`` removes the bucket and its files, and a bucket created again
  under the same id has a later ``createdAt``.

Test hooks (Python, same process): :meth:`FakeHub.fail_next` injects failures (a status
with headers, or ``0`` to drop the connection without an answer), :meth:`FakeHub.revoke`
invalidates a token, :meth:`FakeHub.read_file` reads a stored file back from the CAS, and
:meth:`FakeHub.cas_bytes` measures how much the uploads stored in the CAS.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

USER = "alice"
TOKEN = "hf_fake_write_token_0123456789abcdef"
READ_TOKEN = "hf_fake_read_token_0123456789abcdef"

# Key rules documented for buckets (hub-docs storage-buckets-s3.md, "Object key naming").
BAD_KEY = re.compile(r"(^/|/$|//|\.\./|^\./|\.\.$|\\|\x00)")


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass
class _Failure:
    pattern: re.Pattern[str]
    status: int  # 0: drop the connection; -1: stall, then answer normally
    headers: dict[str, str]
    times: int
    delay: float = 0.0


@dataclasses.dataclass
class StoredFile:
    """One file in a fake bucket."""

    path: str
    xet_hash: str
    mtime_ms: int
    uploaded_ms: float
    content_type: str | None
    size: int | None = None


@dataclasses.dataclass
class Bucket:
    """One fake bucket."""

    id: str
    private: bool
    created_ms: float
    files: dict[str, StoredFile] = dataclasses.field(default_factory=dict)


class FakeHub:
    """The fake server. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, cas_dir: str | os.PathLike[str]) -> None:
        self.cas_dir = os.path.abspath(cas_dir)
        os.makedirs(self.cas_dir, exist_ok=True)
        #: token -> (user, role)
        self.tokens: dict[str, tuple[str, str]] = {TOKEN: (USER, "write"), READ_TOKEN: (USER, "read")}
        self.buckets: dict[str, Bucket] = {}
        #: every request as "METHOD /path -> status"
        self.requests: list[str] = []
        #: bytes of request bodies the Hub API received (the CAS traffic is measured separately)
        self.api_bytes_received = 0
        self._failures: list[_Failure] = []
        self._rejected: list[re.Pattern[str]] = []
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._last_created_ms = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "FakeHub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        """Listen on 127.0.0.1 with an ephemeral port, serving from a daemon thread."""
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakehub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket and every open connection (so that a client's
        keep-alive connection can never reach this server's handler after a new fake took
        over the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test hooks
    def fail_next(
        self, pattern: str, status: int, headers: dict[str, str] | None = None, *, times: int = 1
    ) -> None:
        """Make the next ``times`` requests matching ``pattern`` (a regex searched in
        ``"METHOD /path"``) fail with ``status`` (``0``: close the connection unanswered)."""
        with self._lock:
            self._failures.append(_Failure(re.compile(pattern), status, dict(headers or {}), times))

    def stall_next(self, pattern: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` matching requests wait ``seconds`` before being handled
        normally (the client may time out meanwhile; the request still takes effect)."""
        with self._lock:
            self._failures.append(_Failure(re.compile(pattern), -1, {}, times, seconds))

    def clear_failures(self) -> None:
        """Forget pending injected failures."""
        with self._lock:
            self._failures.clear()

    def revoke(self, token: str) -> None:
        """Make ``token`` invalid from now on (the next request with it gets a 401)."""
        with self._lock:
            self.tokens.pop(token, None)

    def add_token(self, token: str, user: str = USER, role: str = "write") -> None:
        """Accept ``token`` for ``user`` with ``role`` ("write" or "read")."""
        with self._lock:
            self.tokens[token] = (user, role)

    def create_bucket(self, bucket_id: str, *, private: bool) -> Bucket:
        """Create a bucket directly (e.g. a public one, to test refusal).

        Its ``createdAt`` is its identity, as on the Hub: ``bucket_info`` answers the same
        ``id`` for a bucket deleted and created again, but a later creation time (kept
        strictly increasing here, so two creations in one millisecond still differ).
        """
        with self._lock:
            created = max(time.time() * 1000, self._last_created_ms + 1)
            self._last_created_ms = created
            bucket = Bucket(bucket_id, private, created)
            self.buckets[bucket_id] = bucket
            return bucket

    def delete_bucket(self, bucket_id: str) -> None:
        """Make a bucket vanish (as if deleted on the website)."""
        with self._lock:
            self.buckets.pop(bucket_id, None)

    def count(self, pattern: str) -> int:
        """How many requests matched ``pattern`` (regex searched in "METHOD /path -> status")."""
        rx = re.compile(pattern)
        with self._lock:
            return sum(1 for r in self.requests if rx.search(r))

    def files(self, bucket_id: str) -> dict[str, StoredFile]:
        """The files of a bucket, by path."""
        with self._lock:
            return dict(self.buckets[bucket_id].files)

    def size_of(self, xet_hash: str) -> int:
        """Size of a stored file, read back from the CAS."""
        if xet_hash not in self._sizes:
            self._sizes[xet_hash] = len(self.read_hash(xet_hash))
        return self._sizes[xet_hash]

    def read_hash(self, xet_hash: str) -> bytes:
        """The bytes of the file with this xet hash, reconstructed from the local CAS."""
        import hf_xet

        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "f")
            group = hf_xet.XetSession().new_file_download_group(endpoint=f"local://{self.cas_dir}")
            group.start_download_file(hf_xet.XetFileInfo(xet_hash, None), out)
            group.wait_to_finish()
            return Path(out).read_bytes()

    def read_file(self, bucket_id: str, path: str) -> bytes:
        """The bytes stored at ``path`` in a bucket."""
        stored = self.files(bucket_id)[path]
        return self.read_hash(stored.xet_hash)

    def cas_bytes(self) -> int:
        """Total size of everything in the CAS directory (xorbs, shards, index, caches)."""
        return sum(p.stat().st_size for p in _walk(Path(self.cas_dir)))

    def cas_stored_bytes(self) -> int:
        """Bytes the uploads stored in the CAS: xorbs (compressed chunks) and shards (file
        reconstruction metadata) - what a client sends to the real Xet CAS over the network."""
        store = Path(self.cas_dir, "xet", "xorbs")
        return sum(
            p.stat().st_size
            for sub in ("xorbs", "shards")
            for p in _walk(store / sub)
            if not p.name.endswith(".tagset")
        )

    def reject_paths(self, pattern: str) -> None:
        """Make ``/batch`` refuse (per operation, "Invalid path") keys matching ``pattern``."""
        with self._lock:
            self._rejected.append(re.compile(pattern))

    # ------------------------------------------------------------------ internals
    def _take_failure(self, line: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.pattern.search(line):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _entry(self, f: StoredFile) -> dict[str, Any]:
        if f.size is None:
            f.size = self.size_of(f.xet_hash)
        return {
            "type": "file",
            "path": f.path,
            "size": f.size,
            "xetHash": f.xet_hash,
            "mtime": _iso(f.mtime_ms),
            "uploadedAt": _iso(f.uploaded_ms),
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: nothing to report

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            if p.is_file():
                yield p


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -------------------------------------------------------------- helpers
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        # Record before answering: a client that has its answer must already be counted
        # (recording afterwards raced with tests asserting on count()).
        with self.fake._lock:
            self.fake.requests.append(f"{self.command} {urlsplit(self.path).path} -> {status}")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _caller(self) -> tuple[str, str] | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with self.fake._lock:
            return self.fake.tokens.get(auth[len("Bearer ") :])

    def _not_found(self) -> None:
        # hf_raise_for_status maps X-Error-Code: RepoNotFound on /api/buckets/... to BucketNotFoundError
        self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    def _may_write(self, ns: str) -> bool:
        """Answer 401/403 and return False when the caller may not write to ``ns``."""
        caller = self._caller()
        if caller is None:
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return False
        user, role = caller
        if role != "write" or user != ns:
            self._send(403, {"error": "You don't have the rights to write to this bucket"})
            return False
        return True

    # -------------------------------------------------------------- dispatch
    def handle_any(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with self.fake._lock:
            self.fake.api_bytes_received += len(body)
        failure = self.fake._take_failure(f"{self.command} {path}")
        if failure is not None and failure.status == -1:
            with self.fake._lock:
                self.fake.requests.append(f"{self.command} {path} -> stalled")
            time.sleep(failure.delay)
            failure = None
        if failure is not None:
            if failure.status == 0:  # drop the connection: the client sees a protocol/network error
                with self.fake._lock:
                    self.fake.requests.append(f"{self.command} {path} -> dropped")
                self.close_connection = True
                self.connection.shutdown(2)
                return
            return self._send(failure.status, {"error": "injected failure"}, failure.headers)
        try:
            self._route(path, query, body)
        except Exception as e:  # a bug in the fake: make it visible as a 599
            self._send(599, {"error": f"fake hub crashed: {e!r}"})

    def _route(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        host = self.headers["Host"]
        fake = self.fake

        if path == "/api/whoami-v2":
            caller = self._caller()
            if caller is None:
                return self._send(401, {"error": "Invalid credentials in Authorization header"})
            user, role = caller
            return self._send(
                200,
                {
                    "type": "user",
                    "name": user,
                    "fullname": user.title(),
                    "auth": {"accessToken": {"role": role}},
                },
            )

        m = re.match(r"^/api/buckets/([^/]+)/([^/]+)(/.*)?$", path)
        if m:
            caller = self._caller()
            ns = (caller[0] if caller else "me") if m.group(1) == "me" else m.group(1)
            bid, rest = f"{ns}/{m.group(2)}", m.group(3) or ""
            with fake._lock:
                bucket = fake.buckets.get(bid)
            if self.command == "POST" and rest == "":
                if not self._may_write(ns):
                    return None
                if bucket is not None:  # create_bucket(exist_ok=True) reads "url" from the 409 body too
                    return self._send(
                        409,
                        {"error": "You already created this bucket", "url": f"http://{host}/buckets/{bid}"},
                    )
                payload = json.loads(body or b"{}")
                private = payload.get("visibility") == "private" or payload.get("private") is True
                fake.create_bucket(bid, private=private)
                return self._send(200, {"url": f"http://{host}/buckets/{bid}", "name": bid, "id": bid})
            if bucket is None or (bucket.private and (caller is None or caller[0] != ns)):
                return self._not_found()
            if self.command == "DELETE" and rest == "":
                if not self._may_write(ns):
                    return None
                fake.delete_bucket(bid)
                return self._send(200, {})
            if self.command == "GET" and rest == "":
                entries = [fake._entry(f) for f in list(bucket.files.values())]
                return self._send(
                    200,
                    {
                        "id": bid,
                        "private": bucket.private,
                        "createdAt": _iso(bucket.created_ms),
                        "size": sum(e["size"] for e in entries),
                        "totalFiles": len(entries),
                    },
                )
            if self.command == "PUT" and rest == "/settings":
                if not self._may_write(ns):
                    return None
                bucket.private = bool(json.loads(body).get("private"))
                return self._send(200, {})
            if self.command == "GET" and rest in ("/xet-write-token", "/xet-read-token"):
                if rest == "/xet-write-token" and not self._may_write(ns):
                    return None
                exp, cas = int(time.time()) + 3600, f"local://{fake.cas_dir}"
                # hf_xet reads the JSON body; huggingface_hub's own helper reads the X-Xet-* headers.
                return self._send(
                    200,
                    {"accessToken": "xet-access", "exp": exp, "casUrl": cas},
                    {
                        "X-Xet-Cas-Url": cas,
                        "X-Xet-Access-Token": "xet-access",
                        "X-Xet-Token-Expiration": str(exp),
                    },
                )
            if self.command == "POST" and rest == "/batch":
                if not self._may_write(ns):
                    return None
                return self._batch(bucket, body)
            if self.command == "POST" and rest == "/paths-info":
                wanted = json.loads(body)["paths"]
                return self._send(200, [fake._entry(bucket.files[p]) for p in wanted if p in bucket.files])
            if self.command == "GET" and (rest == "/tree" or rest.startswith("/tree/")):
                return self._tree(bucket, rest, query)
            return self._send(404, {"error": "no such route in the fake"})

        m = re.match(r"^/buckets/([^/]+)/([^/]+)/resolve/(.+)$", path)
        if m and self.command in ("HEAD", "GET"):
            bid = f"{m.group(1)}/{m.group(2)}"
            with fake._lock:
                bucket = fake.buckets.get(bid)
            p = unquote(m.group(3))
            if bucket is None or p not in bucket.files:
                return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            entry = fake._entry(bucket.files[p])
            return self._send(
                200,
                None,
                {
                    "X-Xet-Hash": entry["xetHash"],
                    "X-Linked-Size": str(entry["size"]),
                    "X-Xet-Refresh-Route": f"http://{host}/api/buckets/{bid}/xet-read-token",
                },
            )
        return self._send(404, {"error": "no such route in the fake"})

    def _batch(self, bucket: Bucket, body: bytes) -> None:
        failed: list[dict[str, str]] = []
        ok = 0
        for line in body.splitlines():
            if not line.strip():
                continue
            op = json.loads(line)
            p = op["path"]
            with self.fake._lock:
                rejected = any(rx.search(p) for rx in self.fake._rejected)
            if not p or BAD_KEY.search(p) or rejected:
                failed.append({"path": p, "error": "Invalid path"})
                continue
            ok += 1
            with self.fake._lock:
                if op["type"] in ("addFile", "copyFile"):
                    bucket.files[p] = StoredFile(
                        path=p,
                        xet_hash=op["xetHash"],
                        mtime_ms=int(op["mtime"]),
                        uploaded_ms=time.time() * 1000,
                        content_type=op.get("contentType"),
                    )
                elif op["type"] == "deleteFile":
                    bucket.files.pop(p, None)
        # partial failure -> 200 with "failed"; all failed -> 422 (both become BucketBatchError in >=1.33)
        return self._send(422 if failed and not ok else 200, {"failed": failed})

    def _tree(self, bucket: Bucket, rest: str, query: dict[str, list[str]]) -> None:
        prefix = unquote(rest[len("/tree/") :]).rstrip("/") if rest.startswith("/tree/") else ""
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        out: list[dict[str, Any]] = []
        seen_dirs: set[str] = set()
        for p, f in sorted(bucket.files.items()):
            if prefix and not (p == prefix or p.startswith(prefix + "/")):
                continue
            rel = p[len(prefix) + 1 :] if prefix and p != prefix else p
            if not recursive and "/" in rel:
                d = (prefix + "/" if prefix else "") + rel.split("/")[0]
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    out.append({"type": "directory", "path": d, "uploadedAt": _iso(f.uploaded_ms)})
                continue
            out.append(self.fake._entry(f))
        return self._send(200, out)

    def do_GET(self) -> None:
        self.handle_any()

    def do_POST(self) -> None:
        self.handle_any()

    def do_PUT(self) -> None:
        self.handle_any()

    def do_DELETE(self) -> None:
        self.handle_any()

    def do_HEAD(self) -> None:
        self.handle_any()
