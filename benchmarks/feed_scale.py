"""Product feeds at scale: import, embed and export rates of a big feed of file:// images, and image
downloads from a local HTTP server.

A feed of ROWS products, each a distinct small picture on disk behind a file:// URL, is imported
into a new catalog, re-imported (every row unchanged), exported in ProtoShelf's and Google's formats;
a subset is embedded on the CPU (embedding 100k pictures on 2 cores takes hours, and its rate does not
depend on the feed). Downloads fetch distinct 50-200 KB JPEGs from a server on 127.0.0.1, first
alone and then as a whole URL feed import. Peak memory is the process's resident maximum.

    python -m benchmarks.feed_scale [--rows 100000] [--embed 300] [--downloads 400]
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.image_server import ImageServer  # noqa: E402


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def small_pictures(folder: Path, count: int) -> list[Path]:
    """Distinct 48x48 BMPs (quick to write): a colour per row plus a few noisy pixels, so no two hash alike."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    base = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for i in range(count):
        pixels = base.copy()
        pixels[0, :4] = np.frombuffer(i.to_bytes(12, "little"), np.uint8).reshape(4, 3)
        path = folder / f"{i}.bmp"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def realistic_jpegs(count: int) -> list[bytes]:
    """Distinct photos-sized JPEGs of 50-200 KB (smooth gradients with noise, like product shots)."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        side = int(rng.integers(400, 720))
        gradient = np.linspace(0, 255, side, dtype=np.float32)
        pixels = gradient[None, :, None] * rng.uniform(0.3, 1, 3) + rng.normal(0, 18, (side, side, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def timed(label: str, count: int, run):
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(f"{label}: {count:,} in {seconds:.1f} s = {count / seconds:,.0f}/s (peak RSS {max_rss_mb():.0f} MB)",
          flush=True)
    return result, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feed_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--embed", type=int, default=300, help="items embedded (on the CPU)")
    parser.add_argument("--downloads", type=int, default=400)
    args = parser.parse_args(argv)

    from protoshelf.core.downloads import ImageDownloader
    from protoshelf.core.export import export_csv
    from protoshelf.core.feed_import import import_feed
    from protoshelf.core.store import Store

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores, load average {load} before starting")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths, _ = timed("pictures written", args.rows, lambda: small_pictures(folder / "img", args.rows))
        feed = folder / "feed.csv"
        with feed.open("w", encoding="utf-8") as handle:
            handle.write("id,title,image_link,product_type\n")
            for i, path in enumerate(paths):
                handle.write(f"SKU-{i},Product {i},{path.as_uri()},{'Examples' if i < 20 else ''}\n")
        del paths
        store = Store(folder / "catalog.sqlite")
        downloader = ImageDownloader(folder / "cache")
        report, _ = timed("feed import (file:// pictures)", args.rows, lambda: import_feed(store, feed, downloader=downloader))
        print(f"  {report.summary()}")
        report, _ = timed("re-import, all unchanged", args.rows, lambda: import_feed(store, feed, downloader=downloader))
        print(f"  {report.summary()}")
        timed("export, ProtoShelf format", args.rows, lambda: export_csv(store, folder / "out.csv"))
        timed("export, Google supplemental feed (--include-unassigned)", args.rows,
              lambda: export_csv(store, folder / "google.csv", format="google", include_unassigned=True))
        if args.embed:
            keep = store.item_ids()[args.embed:]
            with closing(sqlite3.connect(store.path)) as db, db:  # only the first EMBED items are left to embed
                db.execute("CREATE TEMP TABLE skip (id INTEGER PRIMARY KEY)")
                db.executemany("INSERT INTO skip VALUES (?)", ((int(i),) for i in keep))
                db.execute("INSERT INTO embeddings (model, item_id, vector) "
                           "SELECT 'efficientnet_lite0', id, zeroblob(5120) FROM skip")
            from protoshelf.core.embedding import embed_catalog  # torch: after the memory figures above

            timed(f"embed (CPU, {args.embed} of the feed's pictures)", args.embed,
                  lambda: embed_catalog(store, device="cpu", workers=0))
        store.close()

        if args.downloads:
            jpegs = realistic_jpegs(args.downloads)
            sizes = [len(j) / 1024 for j in jpegs]
            print(f"{len(jpegs)} JPEGs of {min(sizes):.0f}-{max(sizes):.0f} KB (mean {np.mean(sizes):.0f} KB) "
                  "on a local HTTP server")
            with ImageServer({f"/{i}.jpg": data for i, data in enumerate(jpegs)}) as server:
                urls = [f"{server.url}/{i}.jpg" for i in range(len(jpegs))]
                fetched, _ = timed("downloads alone (8 at a time)", len(urls),
                                   lambda: ImageDownloader(folder / "dl-cache").fetch_all(urls))
                assert not any(d.error for d in fetched.values())
                url_feed = folder / "urls.csv"
                url_feed.write_text("id,title,image_link\n" + "".join(f"U{i},Photo {i},{u}\n" for i, u in enumerate(urls)))
                with Store(folder / "urls.sqlite") as store:
                    report, _ = timed("URL feed import (download, check, hash, decode, write)", len(urls),
                                      lambda: import_feed(store, url_feed, downloader=ImageDownloader(folder / "feed-cache")))
                    print(f"  {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
