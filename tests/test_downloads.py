"""Image downloads against a real HTTP server on 127.0.0.1: slow, 404, redirect, truncated, HTML."""
from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest
from PIL import Image

from protoshelf.core.downloads import ImageDownloader
from tests.image_server import ImageServer


def jpeg(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def server():
    with ImageServer({"/a.jpg": jpeg(), "/b.jpg": jpeg((0, 90, 200))}, slow_seconds=1.5) as running:
        yield running


@pytest.fixture
def downloader(tmp_path):
    return ImageDownloader(tmp_path / "cache", workers=4, timeout=(2, 0.5), retries=2, backoff=0.01)


def test_download_lands_in_the_content_addressed_cache(server, downloader):
    result = downloader.fetch(f"{server.url}/a.jpg")
    assert not result.error
    digest = hashlib.sha256(jpeg()).hexdigest()
    assert result.path == downloader.cache_dir / "objects" / digest[:2] / digest
    assert result.path.read_bytes() == jpeg()
    assert not list((downloader.cache_dir / "partial").glob("*"))


def test_a_rerun_reads_the_cache_instead_of_the_server(server, tmp_path):
    url = f"{server.url}/a.jpg"
    assert not ImageDownloader(tmp_path / "cache").fetch(url).error
    again = ImageDownloader(tmp_path / "cache").fetch(url)  # a new process, as after an interruption
    assert not again.error and server.hits["/a.jpg"] == 1


@pytest.mark.parametrize("route, reason", [
    ("missing/a.jpg", "HTTP 404"),
    ("slow/a.jpg", "timed out"),
    ("truncated/a.jpg", "download cut short"),
    ("html/a.jpg", "not an image (the server sent text/html)"),
])
def test_failures_come_back_as_reasons(server, downloader, route, reason):
    result = downloader.fetch(f"{server.url}/{route}")
    assert result.path is None and reason in result.error
    assert not list((downloader.cache_dir / "partial").glob("*"))


def test_redirect_is_followed(server, downloader):
    result = downloader.fetch(f"{server.url}/redirect/b.jpg")
    assert not result.error and result.path.read_bytes() == jpeg((0, 90, 200))


def test_server_errors_are_retried(server, downloader):
    result = downloader.fetch(f"{server.url}/flaky/a.jpg")
    assert not result.error and server.hits["/flaky/a.jpg"] == 2


def test_size_limit_is_checked_on_the_announced_length_and_while_streaming(server, tmp_path):
    small = ImageDownloader(tmp_path / "cache", max_bytes=100)
    assert small.fetch(f"{server.url}/a.jpg").error.startswith("too large (0.0 MB")
    assert small.fetch(f"{server.url}/unsized/a.jpg").error.startswith("too large (over")
    assert not ImageDownloader(tmp_path / "cache").fetch(f"{server.url}/unsized/a.jpg").error


def test_a_server_that_keeps_failing_is_a_reason(tmp_path):
    with ImageServer({"/a.jpg": jpeg()}, flaky_failures=10) as running:
        result = ImageDownloader(tmp_path / "cache", retries=2, backoff=0.01).fetch(f"{running.url}/flaky/a.jpg")
        assert result.error == "server error after 2 retries (too many 503 error responses)"
        assert running.hits["/flaky/a.jpg"] == 3


def test_bytes_that_are_no_image_are_refused(tmp_path):
    with ImageServer({"/fake.jpg": b"<?php echo 'hello'; ?>" * 10}) as running:
        result = ImageDownloader(tmp_path / "cache").fetch(f"{running.url}/fake.jpg")
    assert "first bytes are no image format" in result.error


def test_refused_connection_is_a_reason(tmp_path):
    result = ImageDownloader(tmp_path / "cache", retries=0).fetch("http://127.0.0.1:9/a.jpg")
    assert result.error.startswith("cannot connect")


def test_fetch_all_downloads_each_url_once(server, downloader):
    urls = [f"{server.url}/a.jpg", f"{server.url}/b.jpg", f"{server.url}/a.jpg"]
    results = downloader.fetch_all(urls)
    assert set(results) == set(urls) and all(not r.error for r in results.values())
    assert server.hits["/a.jpg"] == 1


@pytest.mark.parametrize("asked, cap, at_least, below", [("1", 30, 0.9, 5.0), ("3", 1, 0.9, 2.5)])
def test_retry_after_is_obeyed_up_to_a_cap(tmp_path, asked, cap, at_least, below):
    """A 503 with Retry-After waits as asked (the back-off alone would be 0.01 s), but never longer than the cap."""
    with ImageServer({"/a.jpg": jpeg()}, retry_after=asked) as running:
        downloader = ImageDownloader(tmp_path / "cache", retries=2, backoff=0.01, max_retry_after=cap)
        started = time.monotonic()
        result = downloader.fetch(f"{running.url}/flaky/a.jpg")
        waited = time.monotonic() - started
    assert not result.error and running.hits["/flaky/a.jpg"] == 2
    assert at_least <= waited < below


def test_one_pool_serves_every_batch_and_keeps_its_connections(tmp_path):
    files = {f"/{i}.jpg": jpeg((i * 20, 0, 0)) for i in range(12)}
    with ImageServer(files) as running, ImageDownloader(tmp_path / "cache", workers=2) as downloader:
        for batch in range(3):
            results = downloader.fetch_all(f"{running.url}/{batch * 4 + i}.jpg" for i in range(4))
            assert not any(r.error for r in results.values())
        assert len(running.connections) <= 2  # a pool per batch opened new connections every batch
    assert not [t for t in threading.enumerate() if t.name.startswith("download")]
