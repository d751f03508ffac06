"""Take docs/screenshot.png: the app on a freshly built demo catalog, after embedding and predictions.

Run it under a real X server so fonts and styles are the ones users see:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m benchmarks.screenshot

It builds the demo catalog in a temporary folder, opens the window, waits until the worker has
embedded everything and the live predictions are shown, then grabs the window with QWidget.grab().
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSize, QTimer
from PySide6.QtWidgets import QApplication

from protoshelf.core.demo import build_demo_catalog, intended_categories
from protoshelf.gui.main_window import MainWindow
from protoshelf.gui.session import CatalogSession

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"


def pump(app: QApplication, seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(app: QApplication, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        pump(app, 0.1)
    return condition()


def agreement(session: CatalogSession) -> str:
    """How the unlabelled demo items' predictions compare with the categories they were chosen for."""
    intended = intended_categories()
    names = {c.id: c.name for c in session.categories}
    predictions = session.predictions
    right = wrong = unassigned = 0
    for item_id, category in zip(predictions.item_ids.tolist(), predictions.category_ids.tolist()):
        if item_id in session.labels:
            continue
        if category < 0:
            unassigned += 1
        elif names[category] == intended[session.model.item_info(item_id).path]:
            right += 1
        else:
            wrong += 1
    return (f"unlabelled items: {right} predicted as intended, {wrong} otherwise, {unassigned} unassigned "
            f"(threshold {session.threshold:.0%}, {predictions.modality} features)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--size", default="1440x900")
    args = parser.parse_args(argv)
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        path = build_demo_catalog(Path(tmp) / "demo.sqlite")
        session = CatalogSession(path)
        window = MainWindow(session)
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(QSize(width, height))
        window.show()
        started = time.monotonic()
        session.start()
        if not wait_until(app, lambda: session.predictions is not None and not session.busy
                          and session.model.counts().not_classified == 0, timeout=600):
            print("Timed out waiting for predictions.", file=sys.stderr)
            return 1
        print(f"Embedded and classified the demo catalog in {time.monotonic() - started:.1f} s")
        wait_until(app, lambda: window.thumbnails.in_flight == 0, timeout=10)
        pump(app, 0.5)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.out))
        print(f"{agreement(session)}; saved {args.out}")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
