"""The Hugging Face Storage Bucket sink: ``hf://buckets/<namespace>/<bucket>[/<prefix>]``.

Uploads go through ``huggingface_hub``'s ``batch_bucket_files`` (hf_xet underneath, so an
appended session only sends its new chunks). Each item is uploaded *by path* from the
spool, after ``os.utime`` gave the spool file the source's mtime: the bucket then records
the same mtime as ``hf sync`` would, and a later ``hf sync`` sees the file as up to date.

Every failure is funnelled into one :class:`~traceagent.sinks.base.SinkError` whose
:class:`~traceagent.sinks.base.ErrorKind` the engine acts on (the table is in
:mod:`traceagent.hub.api`; the URI and key rules are :mod:`traceagent.sinks.keys`).

``huggingface_hub`` is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from traceagent.hub.api import (
    bucket_vanished,
    classify_error,
    hub_errors,
    install_http_timeouts,
    key_problem,
    parse_bucket_uri,
)
from traceagent.hub.auth import scrub
from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = ["BATCH_SIZE", "MAX_FILE_SIZE", "HfSink", "ViewerRoutes"]

logger = logging.getLogger(__name__)

#: Files larger than this are refused (PER_FILE): session traces are a few MB.
MAX_FILE_SIZE = 1 << 30
#: Operations per ``batch_bucket_files`` call (the library's own chunk size).
BATCH_SIZE = 1000
#: Re-check that the bucket is still private at most this often (seconds).
PRIVACY_RECHECK_S = 900.0
#: Words in a server's per-file refusal that say the file itself is the problem (not retried).
_PER_FILE_WORDS = re.compile(
    r"invalid|not allowed|forbidden|too (large|long|big)|illegal|reserved|unsupported|malformed",
    re.IGNORECASE,
)
# --------------------------------------------------------------------------- the sink
#: A plain path segment: where it lands in a rendered URL is where a file's path goes.
_PATH_MARK = "traceagent-path-7f3a9c"


class ViewerRoutes(NamedTuple):
    """How the Hub addresses a bucket's pages: a file's page is ``file_prefix + quoted path
    + file_suffix``; ``bucket`` is the landing page."""

    file_prefix: str
    file_suffix: str
    bucket: str


class HfSink(Sink):
    """Publish spool files into a private Hugging Face Storage Bucket.

    ``uri`` is ``hf://buckets/<namespace>/<bucket>[/<prefix>]``; every item's key lands at
    ``<prefix>/<key>``. ``token`` may be ``None`` (not signed in): every call then fails
    with an ``AUTH`` :class:`SinkError`. ``endpoint`` overrides the Hub URL (tests, mirrors).
    ``url_template`` overrides the viewer link; its format fields are ``{namespace}``,
    ``{bucket}``, ``{path}`` (percent-encoded, ``/`` kept) and ``{endpoint}``.
    ``api`` injects a ready ``HfApi`` (tests).
    """

    kind = "Hugging Face bucket"

    def __init__(
        self,
        uri: str,
        *,
        token: str | None,
        endpoint: str | None = None,
        allow_public: bool = False,
        url_template: str | None = None,
        api: HfApi | None = None,
        max_file_size: int = MAX_FILE_SIZE,
        privacy_recheck_s: float = PRIVACY_RECHECK_S,
    ) -> None:
        self._parsed = parse_bucket_uri(uri)
        self._uri = self._parsed.uri  # the canonical spelling (a pasted web URL becomes hf://...)
        self._token = token or None
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self.allow_public = allow_public
        self._url_template = url_template or None  # "" in a config file means "the default"
        self._api = api
        self.max_file_size = max_file_size
        self.privacy_recheck_s = privacy_recheck_s
        self._ensured_at: float | None = None
        self._routes: ViewerRoutes | None = None
        if self._url_template is not None:
            try:
                self._url_template.format(namespace="ns", bucket="b", path="p", endpoint="https://e")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    f"invalid viewer URL template {url_template!r}: use only {{namespace}}, {{bucket}}, "
                    f"{{path}} and {{endpoint}} ({e})"
                ) from None

    def __repr__(self) -> str:
        return f"HfSink({self._uri!r}, endpoint={self._endpoint!r}, allow_public={self.allow_public})"

    # ------------------------------------------------------------------ properties
    @property
    def location(self) -> str:
        """The destination URI as configured."""
        return self._uri

    @property
    def bucket_id(self) -> str:
        """``namespace/bucket``."""
        return self._parsed.bucket_id

    @property
    def namespace(self) -> str:
        """The bucket's namespace (user or organization)."""
        return self._parsed.namespace

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._parsed.bucket

    @property
    def prefix(self) -> str:
        """The folder inside the bucket every key goes under ("" for the root)."""
        return self._parsed.prefix

    @property
    def endpoint(self) -> str:
        """The Hub URL in use (``HF_ENDPOINT`` or https://huggingface.co when not given)."""
        if self._endpoint:
            return self._endpoint
        from huggingface_hub import constants

        return constants.ENDPOINT.rstrip("/")

    def remote_key(self, key: str) -> str:
        """Where ``key`` lands in the bucket (``<prefix>/<key>``)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    # ------------------------------------------------------------------ links
    def url_for(self, key: str) -> str:
        """The browser page of ``key`` (the trace viewer): ``.../buckets/<ns>/<b>/tree/<path>``.

        The shape is what ``parse_hf_uri(...).to_url()`` gives, learned in :meth:`ensure` (or
        :meth:`learn_viewer_routes`); until then the same route is built here, so that a
        status request never imports huggingface_hub into the daemon (15 MB).
        """
        key = key.strip("/")
        path = quote(self.remote_key(key) if key else self.prefix, safe="/")  # "": the prefix folder
        if self._url_template is not None:
            return self._url_template.format(
                namespace=self.namespace, bucket=self.bucket, path=path, endpoint=self.endpoint
            )
        if self._routes is not None:
            return self._routes.file_prefix + path + self._routes.file_suffix
        return f"{self.endpoint}/buckets/{self.bucket_id}/tree/{path}"

    def browse_url(self) -> str:
        """The destination's page: the bucket's landing page, or its prefix folder."""
        return self.url_for("") if self.prefix else self.bucket_page()

    def bucket_page(self) -> str:
        """The bucket's landing page."""
        if self._routes is not None:
            return self._routes.bucket
        return f"{self.endpoint}/buckets/{self.bucket_id}"

    @property
    def viewer_routes(self) -> ViewerRoutes | None:
        """The link shapes huggingface_hub gave (``None`` before :meth:`learn_viewer_routes`)."""
        return self._routes

    def adopt_viewer_routes(self, routes: ViewerRoutes) -> None:
        """Use link shapes learned elsewhere (the upload worker's copy of this sink)."""
        self._routes = routes

    def learn_viewer_routes(self) -> ViewerRoutes | None:
        """Ask ``parse_hf_uri(...).to_url()`` how this bucket's pages are addressed."""
        from huggingface_hub import parse_hf_uri

        endpoint = self.endpoint
        try:
            page = parse_hf_uri(f"hf://buckets/{self.bucket_id}/{_PATH_MARK}").to_url(endpoint=endpoint)
            bucket = parse_hf_uri(f"hf://buckets/{self.bucket_id}").to_url(endpoint=endpoint)
        except ValueError as e:  # a name the parser dislikes: keep the built route
            logger.debug("parse_hf_uri refused %s: %s", self.bucket_id, e)
            return None
        if page.count(_PATH_MARK) != 1:
            return None
        prefix, suffix = page.split(_PATH_MARK)
        self._routes = ViewerRoutes(prefix, suffix, bucket)
        return self._routes

    # ------------------------------------------------------------------ API
    def _get_api(self) -> HfApi:
        if self._token is None:
            raise SinkError(
                "Not signed in to Hugging Face: run `traceagent login` or set HF_TOKEN.", kind=ErrorKind.AUTH
            )
        if self._api is None:
            from huggingface_hub import HfApi
            from huggingface_hub.utils.tqdm import disable_progress_bars

            from traceagent import __version__

            disable_progress_bars()  # a daemon has no terminal to draw them on
            install_http_timeouts()
            self._api = HfApi(
                endpoint=self._endpoint,
                token=self._token,
                library_name="traceagent",
                library_version=__version__,
            )
        return self._api

    def ensure(self) -> None:
        """Create the bucket (private) if needed and refuse a public one unless allowed.

        Raises :class:`SinkError`: ``FATAL`` for a public bucket (without ``allow_public``)
        or an unusable name, ``AUTH`` for a rejected token, ``TRANSIENT`` for network trouble.
        """
        api = self._get_api()
        errors = hub_errors()
        try:
            api.create_bucket(self.bucket_id, private=True, exist_ok=True)
            info = api.bucket_info(self.bucket_id)
        except errors as e:
            err = classify_error(e, bucket_id=self.bucket_id, token=self._token, during="ensure")
            logger.warning("preparing bucket %s failed: %s", self.bucket_id, err.message)
            raise err from None
        self._accept(info)
        if self._routes is None:
            self.learn_viewer_routes()

    def _accept(self, info: Any) -> str:
        """Check a ``bucket_info`` answer (privacy) and return the bucket's identity."""
        if not info.private and not self.allow_public:
            raise SinkError(
                f"Bucket {self.bucket_id} is public: traceagent will not upload session traces (they hold "
                f"prompts, code and maybe secrets) to a public bucket. Make it private in its settings "
                f"({self.bucket_page()}/settings), or set allow_public = true if you really mean it.",
                kind=ErrorKind.FATAL,
            )
        if not info.private:
            logger.warning(
                "bucket %s is public; uploading anyway because allow_public is set", self.bucket_id
            )
        self._ensured_at = time.monotonic()
        # A bucket deleted and created again has the same id but a new creation time.
        created: Any = getattr(info, "created_at", None)
        when = created.isoformat() if isinstance(created, datetime.datetime) else str(created)
        return f"{getattr(info, 'id', self.bucket_id)} created {when}"

    def identity(self) -> str:
        """The bucket's own ``id`` and ``created_at`` (one ``bucket_info`` call), which change
        when the bucket is deleted and created again. A vanished bucket is created again
        (private) first. Also re-checks that the bucket is private."""
        api = self._get_api()
        try:
            info = api.bucket_info(self.bucket_id)
        except hub_errors() as e:
            if not bucket_vanished(e):
                raise classify_error(
                    e, bucket_id=self.bucket_id, token=self._token, during="ensure"
                ) from None
            logger.warning("bucket %s has vanished; creating it again", self.bucket_id)
            self._ensured_at = None
            self.ensure()
            try:
                info = api.bucket_info(self.bucket_id)
            except hub_errors() as e2:
                raise classify_error(
                    e2, bucket_id=self.bucket_id, token=self._token, during="ensure"
                ) from None
        return self._accept(info)

    def list_files(self) -> dict[str, int]:
        """``key -> size`` of every file under the prefix (``list_bucket_tree``, recursive)."""
        api = self._get_api()
        prefix = self.prefix
        found: dict[str, int] = {}
        try:
            for entry in api.list_bucket_tree(self.bucket_id, prefix=prefix or None, recursive=True):
                size = getattr(entry, "size", None)
                if size is None:  # a folder
                    continue
                path = str(entry.path)
                if prefix:
                    if not path.startswith(prefix + "/"):
                        continue
                    path = path[len(prefix) + 1 :]
                found[path] = int(size)
        except hub_errors() as e:
            if bucket_vanished(e):
                return {}
            raise classify_error(e, bucket_id=self.bucket_id, token=self._token, during="ensure") from None
        return found

    def make_private(self) -> None:
        """Switch the bucket to private (the "Make it private" answer to a refused public
        bucket). Raises :class:`SinkError` like :meth:`ensure`."""
        api = self._get_api()
        try:
            api.update_bucket_settings(self.bucket_id, private=True)
        except hub_errors() as e:
            raise classify_error(e, bucket_id=self.bucket_id, token=self._token, during="ensure") from None
        logger.info("bucket %s is now private", self.bucket_id)
        self._ensured_at = None

    def _ensure_fresh(self) -> None:
        if self._ensured_at is None or time.monotonic() - self._ensured_at > self.privacy_recheck_s:
            self.ensure()

    def upload(self, items: Sequence[UploadItem]) -> None:
        """Upload ``items`` (by path, with their mtimes) in batches of up to :data:`BATCH_SIZE`.

        On any failure raises :class:`SinkError` whose ``failed_keys`` lists every item key
        (``UploadItem.key``, without the prefix) that did not land; the others did.
        """
        if not items:
            return
        last: dict[str, UploadItem] = {}
        for item in items:  # the same key twice in one batch: the later snapshot wins
            last.pop(item.key, None)
            last[item.key] = item
        per_file: dict[str, str] = {}
        ready: list[tuple[UploadItem, str]] = []
        for item in last.values():
            problem = self._prepare(item)
            if problem is None:
                ready.append((item, self.remote_key(item.key)))
            else:
                per_file[item.key] = problem
                logger.warning("not uploading %s: %s", item.key, problem)

        if ready:
            try:
                self._ensure_fresh()
            except SinkError as e:
                raise self._with_failed(e, [it.key for it, _ in ready] + list(per_file)) from None

        for start in range(0, len(ready), BATCH_SIZE):
            chunk = ready[start : start + BATCH_SIZE]
            try:
                per_file.update(self._upload_chunk(chunk))
            except SinkError as e:
                chunk_failed = list(e.failed_keys) or [it.key for it, _ in chunk]
                later = [it.key for it, _ in ready[start + BATCH_SIZE :]]
                raise self._with_failed(e, chunk_failed + later + list(per_file)) from None

        if per_file:
            keys = list(per_file)
            first = keys[0]
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise SinkError(
                f"{len(keys)} file(s) could not be uploaded: {first}: {per_file[first]}{more}",
                kind=ErrorKind.PER_FILE,
                failed_keys=keys,
            )

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _with_failed(err: SinkError, keys: Sequence[str]) -> SinkError:
        seen = dict.fromkeys(keys)
        return SinkError(err.message, kind=err.kind, retry_after=err.retry_after, failed_keys=list(seen))

    def _prepare(self, item: UploadItem) -> str | None:
        """Check one item and stamp its spool file's mtime. Returns why it can't go, or None."""
        problem = key_problem(item.key) or key_problem(self.remote_key(item.key))
        if problem:
            return f"invalid bucket key {item.key!r}: {problem}"
        try:
            st = os.stat(item.spool_path)
        except OSError as e:
            return f"spool file unreadable ({type(e).__name__}: {e.strerror or e})"
        if st.st_size > self.max_file_size:
            return (
                f"file too large for traceagent ({st.st_size / 1e9:.2f} GB; the limit is "
                f"{self.max_file_size / 1e9:.2f} GB)"
            )
        if not os.access(item.spool_path, os.R_OK):
            return "spool file unreadable (permission denied)"
        try:
            os.utime(item.spool_path, (st.st_atime, item.mtime))
        except OSError as e:
            logger.debug("could not set the mtime of %s: %s", item.spool_path, e)
        return None

    def _upload_chunk(
        self, chunk: Sequence[tuple[UploadItem, str]], *, retried: bool = False
    ) -> dict[str, str]:
        """Send one ``batch_bucket_files`` call. Returns per-file failures (key -> reason)
        reported by the server; raises :class:`SinkError` when the whole call failed."""
        from huggingface_hub.errors import BucketBatchError

        api = self._get_api()
        by_remote = {remote: item.key for item, remote in chunk}
        try:
            api.batch_bucket_files(
                self.bucket_id, add=[(str(item.spool_path), remote) for item, remote in chunk]
            )
        except BucketBatchError as e:
            return self._batch_failures(e, by_remote)
        except hub_errors() as e:
            if bucket_vanished(e) and not retried:
                logger.warning("bucket %s seems to have vanished; creating it again", self.bucket_id)
                self._ensured_at = None
                self.ensure()
                return self._upload_chunk(chunk, retried=True)
            err = classify_error(e, bucket_id=self.bucket_id, token=self._token)
            logger.warning("upload of %d file(s) to %s failed: %s", len(chunk), self.bucket_id, err.message)
            if err.kind is ErrorKind.PER_FILE:
                return dict.fromkeys((item.key for item, _ in chunk), err.message)
            raise err from None
        total = sum(item.size for item, _ in chunk)
        logger.info("uploaded %d file(s), %d bytes, to %s", len(chunk), total, self.location)
        return {}

    def _batch_failures(self, exc: Any, by_remote: Mapping[str, str]) -> dict[str, str]:
        """Per-file failures from a ``BucketBatchError``; raises TRANSIENT when the server's
        reasons don't look like something wrong with the files themselves."""
        failures: list[dict[str, str]] = list(getattr(exc, "failures", None) or [])
        failed: dict[str, str] = {}
        transient = False
        for f in failures:
            key = by_remote.get(str(f.get("path", "")))
            reason = scrub(str(f.get("error") or "refused by the server"), self._token)
            if key is None:
                continue
            failed[key] = f"refused by Hugging Face: {reason}"
            if not _PER_FILE_WORDS.search(reason):
                transient = True
        if not failed:  # the server named nothing we sent: consider the whole chunk failed
            failed = dict.fromkeys(by_remote.values(), "refused by Hugging Face")
            transient = True
        logger.warning("%d of %d file(s) refused by bucket %s", len(failed), len(by_remote), self.bucket_id)
        if transient:
            first = next(iter(failed))
            raise SinkError(
                f"Hugging Face did not store {len(failed)} file(s) in bucket {self.bucket_id} "
                f"(e.g. {first}: {failed[first]}); will retry them.",
                kind=ErrorKind.TRANSIENT,
                failed_keys=list(failed),
            )
        return failed
