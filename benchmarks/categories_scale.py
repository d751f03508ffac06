"""The app with 500 categories: panel, picker, badges and export stay quick.

A real shop has 20-200 categories; this builds a fake catalog with `--categories` of them (items
labelled and predicted across all), opens the real window offscreen, and times what a user waits
for: rebuilding the categories panel (after a rename or reorder), refreshing its counts (after each
label), one keystroke in the category picker, one label change through the window (key press to
panel and grid updated), painting a screenful of grid cells with distinct badges, and the CSV export.
Each figure is also given per category, and the 10-category time as the baseline ratio.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.categories_scale [--categories 500] [--items 20000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np



def best_ms(fn, repeats: int = 7) -> tuple[float, float]:
    """Median and spread (max - min) of `repeats` runs, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times) - min(times)


def measure(categories: int, items: int, folder: Path) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from benchmarks.gui_catalog import make_fake_catalog
    from protoshelf.core.export import export_csv
    from protoshelf.core.store import Store
    from protoshelf.gui.category_picker import CategoryPicker
    from protoshelf.gui.main_window import MainWindow
    from protoshelf.gui.session import CatalogSession

    app = QApplication.instance() or QApplication([])
    path = folder / f"c{categories}.sqlite"
    truth = make_fake_catalog(path, items, dim=64, categories=categories, seed=1, noise=0.3)
    with Store(path) as store:
        ids = [store.create_category(f"Category number {k} with a longish name") for k in range(categories)]
        for k, category_id in enumerate(ids):
            store.set_labels((np.flatnonzero(truth == k)[:2] + 1).tolist(), category_id)
    session = CatalogSession(path, embed_titles=False)
    window = MainWindow(session)
    window.resize(1400, 900)
    window.show()
    session.start()
    deadline = time.monotonic() + 300
    while (session.busy or session.predictions is None) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()

    figures = {}
    figures["panel_rebuild_ms"] = best_ms(window.panel.refresh)
    figures["panel_counts_ms"] = best_ms(window.panel.refresh_counts)
    figures["filter_list_ms"] = best_ms(window._on_categories_changed)
    picker = CategoryPicker(session.categories, session.recent_categories, 1, window)
    figures["picker_keystroke_ms"] = best_ms(lambda: (picker.query.setText("numbr 4"), picker.query.setText("")))
    picker.close()

    window.view.setFocus()
    rows = iter(range(0, 10_000, 3))

    def label_by_key() -> None:
        row = next(rows)
        window.view.setCurrentIndex(session.model.index(row))
        QTest.keyClick(window.view, Qt.Key.Key_2)
        app.processEvents()

    figures["label_key_to_panel_ms"] = best_ms(label_by_key)
    figures["grid_repaint_ms"] = best_ms(lambda: window.view.viewport().repaint())
    session.save_predictions()
    session.live.wait()
    figures["export_ms"] = best_ms(lambda: export_csv(Store(path), folder / "out.csv", top=3), repeats=3)
    window.close()
    return {k: {"median": round(m, 2), "spread": round(s, 2)} for k, (m, s) in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=500)
    parser.add_argument("--items", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = measure(10, args.items, Path(tmp))
        many = measure(args.categories, args.items, Path(tmp))
    print(f"{args.items:,} items; ms, median of 7 (± spread); ratio to 10 categories")
    print(f"{'':<24}{'10 categories':>18}{f'{args.categories} categories':>20}{'ratio':>8}")
    for name in many:
        b, m = base[name], many[name]
        print(f"{name:<24}{b['median']:>10.2f} ± {b['spread']:<5.1f}{m['median']:>12.2f} ± {m['spread']:<5.1f}"
              f"{m['median'] / max(b['median'], 1e-6):>8.1f}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
