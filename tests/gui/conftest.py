"""GUI fixtures: windows on real catalog files, and a guard against work left running.

Like napari's conftest, every test fails if it leaves a QTimer active, a QThread running or a
QThreadPool job unfinished: such leftovers make later tests flaky and hide shutdown bugs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, QThread, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog

from benchmarks.gui_catalog import make_fake_catalog
from protoshelf.core.store import Store


@pytest.fixture(autouse=True)
def no_leftover_work(monkeypatch):
    timers: weakref.WeakSet = weakref.WeakSet()
    threads: weakref.WeakSet = weakref.WeakSet()
    pools: weakref.WeakSet = weakref.WeakSet()

    def tracking(cls, registry):
        original = cls.start

        def start(self, *args, **kwargs):
            registry.add(self)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "start", start)

    tracking(QTimer, timers)
    tracking(QThread, threads)
    tracking(QThreadPool, pools)
    yield
    leftovers = [f"{t!r} (QTimer) still active" for t in list(timers) if _alive(t) and t.isActive()]
    leftovers += [f"{t!r} (QThread) still running" for t in list(threads) if _alive(t) and t.isRunning()]
    leftovers += [f"{p!r} has {p.activeThreadCount()} jobs running" for p in list(pools)
                  if _alive(p) and p.activeThreadCount()]
    if leftovers:
        pytest.fail("Test left work running:\n" + "\n".join(leftovers))


def _alive(obj) -> bool:
    from shiboken6 import Shiboken

    return Shiboken.isValid(obj)


FAKE_DIM = 64
CLUSTERS = 3


@pytest.fixture
def fake_catalog(tmp_path: Path):
    """A catalog of 90 items in three clusters of fake vectors, each cluster with a category.

    Returns (path, truth, category_ids): truth[i] is the cluster of the i-th item (ids start at 1).
    """
    path = tmp_path / "fake.sqlite"
    truth = make_fake_catalog(path, 90, dim=FAKE_DIM, categories=CLUSTERS, seed=3, noise=0.4)
    with Store(path) as store:
        categories = [store.create_category(name) for name in ("Red", "Green", "Blue")]
    return path, truth, categories


def examples(truth: np.ndarray, cluster: int, n: int = 3) -> list[int]:
    """Ids of the first n items of a cluster."""
    return [int(i) + 1 for i in np.flatnonzero(truth == cluster)[:n]]


@pytest.fixture
def open_window(qtbot):
    """Factory: a MainWindow on a catalog file, started; closed (and its work awaited) afterwards."""
    from protoshelf.gui.main_window import MainWindow
    from protoshelf.gui.session import CatalogSession

    windows = []

    def make(path, settings=None, **session_options):
        session_options.setdefault("embed_titles", False)
        session = CatalogSession(path, **session_options)
        window = MainWindow(session, settings)
        qtbot.addWidget(window)
        if settings is None:
            window.resize(1000, 700)
        window.show()
        session.start()
        windows.append(window)
        # torch loads on the live lane behind the window; the first import takes seconds on a busy machine
        qtbot.waitUntil(lambda: session.model_info is not None, timeout=120_000)
        return window

    yield make
    for window in windows:
        window.close()


@contextmanager
def busy_dialog_ticks() -> Iterator[list[bool]]:
    """Ticks of a 20 ms timer on the GUI thread while the block runs, each saying whether a busy
    dialog was on screen: is the GUI thread free, and what does it show?"""
    ticks, heartbeat = [], QTimer(interval=20)
    heartbeat.timeout.connect(lambda: ticks.append(
        any(isinstance(w, QProgressDialog) and w.isVisible() for w in QApplication.topLevelWidgets())))
    heartbeat.start()
    try:
        yield ticks
    finally:
        heartbeat.stop()


WINDOW_BUILT = "main window built"
_SAYS_WHEN_A_WINDOW_IS_BUILT = f"""
import sys
from protoshelf.gui import app

built = app.MainWindow

def main_window(*args, **kwargs):
    print({WINDOW_BUILT!r}, file=sys.stderr)
    return built(*args, **kwargs)

app.MainWindow = main_window
"""


def start_app(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`script` (which ends by calling `app.run_app`) in a fresh interpreter, as a user's shell
    starts the app: offscreen, with data and settings folders of its own under `tmp_path`. Its
    stderr says WINDOW_BUILT for each main window built."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([sys.executable, "-c", _SAYS_WHEN_A_WINDOW_IS_BUILT + script, *args], env=env,
                          timeout=120, capture_output=True, text=True)


def wait_idle(qtbot, session, timeout: int = 20_000) -> None:
    """Until every lane is idle and no refit is pending."""
    qtbot.waitUntil(lambda: not session.busy, timeout=timeout)


def label_all(qtbot, session, labels: dict[int, int]) -> None:
    """Label {item id: category id} one category at a time, each waiting for its refit, then idle."""
    for category in dict.fromkeys(labels.values()):
        with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
            session.label([i for i, c in labels.items() if c == category], category)
    wait_idle(qtbot, session)


def select_rows(window, rows) -> None:
    """Select these grid rows, the first one current, as a user's clicks would."""
    view = window.view
    selection = view.selectionModel()
    selection.clearSelection()
    for row in rows:
        selection.select(view.model().index(row), QItemSelectionModel.SelectionFlag.Select)
    selection.setCurrentIndex(view.model().index(rows[0]), QItemSelectionModel.SelectionFlag.NoUpdate)


def two_selected(qtbot, window):
    """The window once settled, the grid focused and its first two items selected: (window, their ids)."""
    wait_idle(qtbot, window.session)
    window.view.setFocus()
    select_rows(window, [0, 1])
    return window, window.view.selected_ids()
