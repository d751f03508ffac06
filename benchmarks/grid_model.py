"""The app's catalog grid at a million items: time to open, and time per scroll step.

Opening is what the app does on the GUI thread: read the item ids and labels, hand them to the
`CatalogModel`, show the `CatalogView` with its delegate and thumbnail loader, and paint the first
screen. Scrolling moves the scroll bar a page at a time from the top, then jumps to random places
(rows the model has never fetched), repainting synchronously after each move; a step slower than
one 60 Hz frame (16.7 ms) is a dropped frame, one over 50 ms a stall a user notices. Thumbnails
arrive from background threads between steps, as they would.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.grid_model [--items 1000000] [--pages 100 --jumps 50]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import report

FRAME_MS = 1000 / 60
STALL_MS = 50
OPEN_TARGET_S = 2.0


def run(items: int = 1_000_000, pages: int = 100, jumps: int = 50, keep: Path | None = None) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from benchmarks.gui_catalog import make_fake_catalog
    from protoshelf.core.store import Store
    from protoshelf.gui.catalog_model import CatalogModel
    from protoshelf.gui.catalog_view import CatalogView
    from protoshelf.gui.thumbnails import ThumbnailCache

    app = QApplication.instance() or QApplication([])
    folder = keep or Path(tempfile.mkdtemp(prefix="protoshelf-grid-"))
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "grid.sqlite"
    try:
        started = time.perf_counter()
        if not catalog.exists():
            make_fake_catalog(catalog, items, dim=8)
        build_s = time.perf_counter() - started

        started = time.perf_counter()
        store = Store(catalog)
        ids, labels = store.item_ids(), store.labels()
        read_s = time.perf_counter() - started
        model = CatalogModel(store)
        model.set_items(ids, labels)
        thumbnails = ThumbnailCache(store)
        view = CatalogView(thumbnails)
        view.setModel(model)
        view.resize(1280, 800)
        view.show()
        view.viewport().repaint()
        app.processEvents()
        open_s = time.perf_counter() - started

        bar = view.verticalScrollBar()
        rng = np.random.default_rng(0)
        targets = [min(bar.maximum(), (p + 1) * bar.pageStep()) for p in range(pages)]
        targets += rng.integers(0, bar.maximum() + 1, jumps).tolist()
        steps_ms = []
        for value in targets:
            begun = time.perf_counter()
            bar.setValue(int(value))
            view.viewport().repaint()
            app.processEvents()
            steps_ms.append((time.perf_counter() - begun) * 1000)
        thumbnails.shutdown()
        view.close()
        store.close()
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    steps = np.array(steps_ms)
    return {
        "items": items, "build_s": round(build_s, 1),
        "open_s": round(open_s, 3), "open_read_ids_and_labels_s": round(read_s, 3),
        "open_vs_target": round(open_s / OPEN_TARGET_S, 2),
        "scroll_steps": len(steps), "scroll_median_ms": round(float(np.median(steps)), 1),
        "scroll_p95_ms": round(float(np.percentile(steps, 95)), 1), "scroll_max_ms": round(float(steps.max()), 1),
        "scroll_p95_vs_frame": round(float(np.percentile(steps, 95)) / FRAME_MS, 2),
        "dropped_frames": int((steps > FRAME_MS).sum()), "stalls_over_50ms": int((steps > STALL_MS).sum()),
        "load_average": round(os.getloadavg()[0], 1),
    }


def print_figures(f: dict) -> None:
    print(f"grid of {f['items']:,} items (catalog built in {f['build_s']} s), {os.cpu_count()} CPUs, "
          f"load average {f['load_average']}")
    print(f"  open to first paint  {f['open_s']:6.2f} s  = {f['open_vs_target']:.0%} of the {OPEN_TARGET_S:.0f} s target "
          f"(ids and labels from SQLite: {f['open_read_ids_and_labels_s']:.2f} s)")
    print(f"  scroll step          median {f['scroll_median_ms']} ms, p95 {f['scroll_p95_ms']} ms "
          f"({f['scroll_p95_vs_frame']:.1f} frames), max {f['scroll_max_ms']} ms; "
          f"{f['dropped_frames']} of {f['scroll_steps']} steps over a frame, {f['stalls_over_50ms']} over {STALL_MS} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--jumps", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build the catalog in this folder (reused if there) and keep it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.items, args.pages, args.jumps, args.keep)
    return report(figures, args.json, print_figures)


if __name__ == "__main__":
    raise SystemExit(main())
