"""How responsive the app stays: UI event-loop lateness while the worker embeds, and the time from a
label change to updated predictions in the grid's model at 10k and 100k items.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.gui_responsiveness [--images 192] [--sizes 10000 100000]

Lateness is measured with a 10 ms repeating QTimer on the GUI thread: each tick records how much
later than 10 ms after the previous one it fired. A frozen UI shows up as a large maximum.
Label-to-prediction latency is measured in the real window (offscreen): `session.label()` is called
as a key press would, and the clock stops when the model has the new predictions. A lone change
refits at once; a burst of changes is coalesced (150 ms debounce) into one more fit, timed from the
burst's last change.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from benchmarks.gui_catalog import make_fake_catalog
from benchmarks.screenshot import pump, wait_until
from protoshelf.core.importer import import_images
from protoshelf.core.store import Store
from protoshelf.gui.main_window import MainWindow
from protoshelf.gui.session import CatalogSession

TICK_MS = 10


class LatenessProbe(QObject):
    """A repeating timer on the GUI thread that records how late each tick fires."""

    def __init__(self):
        super().__init__()
        self.timer = QTimer(self, interval=TICK_MS)
        self.timer.setTimerType(self.timer.timerType().PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.clock = QElapsedTimer()
        self.late_ms: list[float] = []

    def start(self) -> None:
        self.late_ms.clear()
        self.clock.start()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.late_ms)

    @Slot()
    def _tick(self) -> None:
        self.late_ms.append(max(0.0, self.clock.nsecsElapsed() / 1e6 - TICK_MS))
        self.clock.restart()


def describe(late: list[float]) -> str:
    if not late:
        return "no ticks"
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (f"{len(late)} ticks, lateness mean {statistics.mean(late):.1f} ms, p99 {p99:.1f} ms, "
            f"max {max(late):.1f} ms")


def make_images(folder: Path, count: int, side: int = 160) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        base = rng.integers(0, 255, 3)
        pixels = np.clip(base + rng.integers(-40, 40, (side, side, 3)), 0, 255).astype(np.uint8)
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def embedding_lateness(app: QApplication, tmp: Path, images: int) -> None:
    path = tmp / "embed.sqlite"
    with Store(path) as store:
        import_images(store, make_images(tmp / "images", images))
    session = CatalogSession(path, embed_titles=False)
    window = MainWindow(session)
    window.resize(1280, 800)
    window.show()
    pump(app, 0.3)
    probe = LatenessProbe()
    probe.start()
    wait_until(app, lambda: len(probe.late_ms) >= 100, 10)
    print(f"idle UI, for reference: {describe(probe.stop())}")
    probe.start()
    started = time.perf_counter()
    task = session.embed()
    wait_until(app, lambda: task.outcome is not None, 1800)
    elapsed = time.perf_counter() - started
    late = probe.stop()
    report = task.result.images
    print(f"embedding {report.embedded} images ({report.backbone} on {report.device}, including loading "
          f"the backbone) took {elapsed:.1f} s = {report.embedded / elapsed:.1f} images/s")
    print(f"UI event loop while the worker embeds: {describe(late)}")
    window.close()


def label_latency(app: QApplication, tmp: Path, items: int, repeats: int) -> None:
    path = tmp / f"fake{items}.sqlite"
    started = time.perf_counter()
    truth = make_fake_catalog(path, items, dim=1280, categories=5)
    print(f"\n{items:,} items (fake 1280-d embeddings, built in {time.perf_counter() - started:.0f} s)")
    with Store(path) as store:
        categories = [store.create_category(f"Category {k}") for k in range(5)]
        for k in range(5):
            store.set_labels([int(i) + 1 for i in np.flatnonzero(truth == k)[:3]], categories[k])
    candidates = iter(int(i) + 1 for i in np.flatnonzero(truth == 0)[3:])
    session = CatalogSession(path, embed_titles=False)
    window = MainWindow(session)
    window.resize(1280, 800)
    window.show()
    session.start()
    started = time.perf_counter()
    wait_until(app, lambda: session.predictions is not None and not session.busy, 600)
    print(f"opening: first predictions after {time.perf_counter() - started:.1f} s "
          "(loads every embedding into the classifier)")
    fits, arrivals = [], []
    session.live.task_finished.connect(_record_fit(fits))
    session.predictions_changed.connect(lambda: arrivals.append(time.perf_counter()))

    probe = LatenessProbe()
    probe.start()
    single = []
    for _ in range(repeats):
        pump(app, 0.3)
        before = len(arrivals)
        start = time.perf_counter()
        session.label([next(candidates)], categories[0])
        wait_until(app, lambda: len(arrivals) > before and not session.busy, 60)
        single.append(arrivals[-1] - start)
    bursts = []
    for _ in range(max(2, repeats // 4)):
        pump(app, 0.3)
        for _ in range(5):
            session.label([next(candidates)], categories[0])
            last = time.perf_counter()
            pump(app, 0.04)
        wait_until(app, lambda: not session.busy, 60)
        bursts.append(arrivals[-1] - last)
    late = probe.stop()
    print(f"one label change → updated predictions in the model: median {statistics.median(single) * 1000:.0f} ms, "
          f"max {max(single) * 1000:.0f} ms ({repeats} changes); of which fit + score on the worker: "
          f"median {statistics.median(fits) * 1000:.0f} ms")
    print(f"burst of 5 changes 40 ms apart → predictions with all of them: median "
          f"{statistics.median(bursts) * 1000:.0f} ms after the last change ({len(bursts)} bursts)")
    print(f"  UI event loop during those refits: {describe(late)}")
    window.show_filter("unassigned")
    started = time.perf_counter()
    window.controls.threshold.setValue(80)
    print(f"  threshold slider (re-decide {items:,} items + refilter the grid, GUI thread): "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    window.close()


def _record_fit(times: list[float]):
    def record(task) -> None:
        if task.kind == "fit" and task.outcome == "succeeded":
            times.append(task.duration)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192, help="real images to embed for the lateness test")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        embedding_lateness(app, Path(tmp), args.images)
        for items in args.sizes:
            label_latency(app, Path(tmp), items, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
