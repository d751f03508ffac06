"""Downloading product images by URL into a content-addressed cache.

requests with urllib3's `Retry` does the retries with exponential back-off (connection errors,
429 and 5xx), waiting as long as a 429 or 503 answer's `Retry-After` asks, up to a cap (a CDN asking
for an hour must not stall the import); what is ours is the checks a catalog needs: a size limit
counted while streaming (a lying or missing Content-Length cannot fill the disk), the server's
content type and the file's first bytes must both say "image", and a short body is refused.
Files are stored under their sha256 in the user cache folder, and each URL remembers the hash it
gave, so a rerun of an interrupted import fetches only what it lacks. One pool of `workers` threads
serves every batch of an import, so its connections are kept from batch to batch; closing the
downloader (Ctrl-C, Cancel) ends a retry's wait and a transfer at once, so a server asking to wait
cannot hold the import up.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from protoshelf.core.images import MAX_FILE_BYTES

MAGIC = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)
"""First bytes of the formats core/images.py reads (WebP is checked apart: RIFF....WEBP)."""
ACCEPTED_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
"""Some CDNs serve pictures as octet-stream; the magic check still has the last word."""
CHUNK = 64 * 1024
USER_AGENT = "ProtoShelf image fetcher"
TICK_S = 0.25
"""How often `fetch_all` reports while downloads are under way, so a Cancel is heard even while
every transfer waits on a slow server."""


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("protoshelf")) / "images"


def looks_like_image(head: bytes) -> bool:
    return head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


@dataclass(frozen=True)
class Download:
    """A URL's local file, or the reason there is none."""

    url: str
    path: Path | None = None
    error: str = ""


class DownloadError(Exception):
    pass


class _StoppableRetry(Retry):
    """urllib3's Retry whose waits (back-off, a server's Retry-After) end as soon as `stopping` is set."""

    stopping = threading.Event()

    def new(self, **kwargs) -> "_StoppableRetry":
        retry = super().new(**kwargs)
        retry.stopping = self.stopping
        return retry

    def sleep(self, response=None) -> None:
        seconds = self.get_retry_after(response) if self.respect_retry_after_header and response else None
        if self.stopping.wait(seconds or self.get_backoff_time()):
            raise DownloadError("cancelled")


class ImageDownloader:
    """Fetches image URLs, a bounded number at a time, into `cache_dir`; `close` ends its threads."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        workers: int = 8,
        timeout: tuple[float, float] = (5.0, 20.0),
        retries: int = 3,
        backoff: float = 0.5,
        max_bytes: int = MAX_FILE_BYTES,
        max_retry_after: int = 30,
    ):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.workers = workers
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.max_retry_after = max_retry_after
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stopping = threading.Event()

    def fetch_all(self, urls: Iterable[str], progress: Callable[[int, int], None] | None = None) -> dict[str, Download]:
        """Each distinct URL once, `workers` at a time; failures come back as reasons, never raised.

        `progress(done, of)` hears from the calling thread every TICK_S and after each download; an
        exception it raises (a Cancel) leaves at once, as does Ctrl-C, and `close` stops the rest."""
        unique = list(dict.fromkeys(urls))
        if not unique:
            return {}
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="download")
            pool = self._pool
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        for url in unique:
            pool.submit(self.fetch, url).add_done_callback(finished.put)
        results: dict[str, Download] = {}
        while len(results) < len(unique):
            try:
                download = finished.get(timeout=TICK_S).result()
                results[download.url] = download
            except queue.Empty:
                pass
            if progress is not None:
                progress(len(results), len(unique))
        return {url: results[url] for url in unique}

    def close(self) -> None:
        """End the download threads: queued downloads are dropped, running ones stop at their next
        chunk or retry wait. A later `fetch_all` starts new threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            self._stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._stopping.clear()

    def __enter__(self) -> "ImageDownloader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def fetch(self, url: str) -> Download:
        if self._stopping.is_set():
            return Download(url, error="cancelled")
        cached = self.cached(url)
        if cached:
            return Download(url, cached)
        try:
            return Download(url, self._download(url))
        except DownloadError as exc:
            return Download(url, error=str(exc))
        except requests.exceptions.Timeout:
            return Download(url, error=f"timed out (no answer within {self.timeout[1]:g} s)")
        except requests.exceptions.TooManyRedirects:
            return Download(url, error="too many redirects")
        except requests.exceptions.RetryError as exc:
            return Download(url, error=f"server error after {self.retries} retries ({_reason(exc)})")
        except requests.exceptions.ChunkedEncodingError:
            return Download(url, error="download cut short (the server sent less than it announced)")
        except requests.exceptions.ConnectionError as exc:
            return Download(url, error=f"cannot connect ({_reason(exc)})")
        except requests.exceptions.RequestException as exc:
            return Download(url, error=f"download failed ({_reason(exc)})")
        except OSError as exc:
            return Download(url, error=f"cannot write to the image cache ({exc.strerror or exc})")

    def cached(self, url: str) -> Path | None:
        """The file an earlier run downloaded from `url`, if it is still in the cache."""
        try:
            digest = self._url_entry(url).read_text().strip()
        except OSError:
            return None
        path = self._object(digest)
        return path if path.is_file() else None

    def _session(self) -> requests.Session:
        """One session per thread: connections are reused, and requests sessions are not shared."""
        session = getattr(self._local, "session", None)
        if session is None:
            retry = _StoppableRetry(
                total=self.retries, backoff_factor=self.backoff, status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=frozenset({"GET"}),
                respect_retry_after_header=True, retry_after_max=self.max_retry_after,
            )
            retry.stopping = self._stopping
            session = requests.Session()
            session.max_redirects = 5
            session.headers["User-Agent"] = USER_AGENT
            adapter = HTTPAdapter(max_retries=retry, pool_maxsize=2)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def _download(self, url: str) -> Path:
        with self._session().get(url, stream=True, timeout=self.timeout) as response:
            if response.status_code >= 400:
                raise DownloadError(f"HTTP {response.status_code} {response.reason or ''}".strip())
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind and not kind.startswith(ACCEPTED_TYPES):
                raise DownloadError(f"not an image (the server sent {kind})")
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > self.max_bytes:
                raise DownloadError(f"too large ({int(announced) / 2**20:.1f} MB; the limit is {self._limit()})")
            digest = hashlib.sha256()
            size = 0
            (self.cache_dir / "partial").mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=self.cache_dir / "partial")
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        if self._stopping.is_set():
                            raise DownloadError("cancelled")
                        if size == 0 and not looks_like_image(chunk[:16]):
                            raise DownloadError("not an image (its first bytes are no image format)")
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise DownloadError(f"too large (over {self._limit()})")
                        digest.update(chunk)
                        out.write(chunk)
                if size == 0:
                    raise DownloadError("empty response")
                target = self._object(digest.hexdigest())
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, target)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        entry = self._url_entry(url)
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(digest.hexdigest())
        return target

    def _object(self, digest: str) -> Path:
        return self.cache_dir / "objects" / digest[:2] / digest

    def _url_entry(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_dir / "urls" / key[:2] / key

    def _limit(self) -> str:
        return f"{self.max_bytes / 2**20:g} MB"


_CAUSE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)|(too many \d+ error responses)|(Read timed out)")


def _reason(exc: Exception) -> str:
    """The part of urllib3's long message that names what went wrong (refused, unknown host, 503…)."""
    text = str(exc)
    found = _CAUSE.search(text)
    if found:
        return next(g for g in found.groups() if g).strip()
    return text if len(text) < 160 else text[:157] + "…"
