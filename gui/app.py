"""Starting the desktop app: which catalog to open, remembered settings, and errors in dialogs.

`protoshelf` opens the catalog given with --db, else the last one used, else (first run) the demo
catalog, which is built from resources/demo on first use.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QEventLoop, QObject, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog, QWidget

from protoshelf.core.demo import build_demo_catalog
from protoshelf.core.desktop import APP_ID, ICON
from protoshelf.core.errors import user_message
from protoshelf.core.store import Store, default_catalog_path, needs_upgrade
from protoshelf.gui.main_window import MainWindow
from protoshelf.gui.session import CatalogSession

log = logging.getLogger(__name__)
T = TypeVar("T")
INTERRUPTED = 128 + signal.SIGINT
"""The exit status of a start ended by Ctrl-C, as a shell reports it."""


def choose_catalog(db_path: str | Path | None, demo: bool, settings: QSettings) -> Path:
    if db_path:
        return Path(db_path)
    last = settings.value("catalog/last")
    if not demo and last and Path(last).exists():
        return Path(last)
    try:
        return behind_busy_dialog(build_demo_catalog, "Building the demo catalog (first start)…", "ProtoShelf", None)
    except FileNotFoundError as exc:
        log.warning("%s Opening an empty catalog instead.", exc)
        return default_catalog_path()


def upgrade_off_the_gui_thread(path: Path, parent: QWidget | None) -> None:
    """Migrate an older catalog's schema before it opens, since rebuilding the items table of a
    million-item catalog takes minutes; raises what opening it raised."""
    if needs_upgrade(path):
        behind_busy_dialog(lambda: Store(path).close(), "Updating the catalog to this version of ProtoShelf…\n"
                           "A big catalog takes a few minutes; nothing in it is lost.", "Updating the catalog", parent)


def behind_busy_dialog(work: Callable[[], T], text: str, title: str, parent: QWidget | None) -> T:
    """`work()` on a worker thread while the GUI thread keeps handling events behind a busy dialog;
    its result, or what it raised."""
    dialog = QProgressDialog(text, None, 0, 0, parent)
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.setMinimumDuration(0)
    loop, poll = QEventLoop(), QTimer(interval=50)
    with ThreadPoolExecutor(1, thread_name_prefix="busy-dialog") as pool:
        done = pool.submit(work)
        poll.timeout.connect(lambda: done.done() and loop.quit())
        poll.start()
        dialog.show()
        if not done.done():
            loop.exec()
        poll.stop()
    dialog.close()
    return done.result()


class App(QObject):
    """Owns the window of the open catalog; opening another catalog replaces the window.
    `stopping()` says the app is ending (Ctrl-C, say during the first start's demo build or an
    upgrade): the catalog then opens no window."""

    def __init__(self, settings: QSettings, stopping: Callable[[], bool] = lambda: False, **session_options):
        super().__init__()
        self.settings = settings
        self.stopping = stopping
        self.session_options = session_options
        self.window: MainWindow | None = None

    @Slot(str)
    def open_catalog(self, path: str | Path) -> MainWindow | None:
        """The new window, or None (after saying why) when the file is not a catalog we can open."""
        previous = self.window
        try:
            upgrade_off_the_gui_thread(Path(path), previous)
            if self.stopping():  # Ctrl-C while the demo was built or the catalog upgraded: open nothing
                return None
            session = CatalogSession(path, **self.session_options)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: say so, keep what is open
            log.exception("cannot open %s", path)
            QMessageBox.warning(previous, "Cannot open the catalog", f"{path}:\n{user_message(exc)}")
            return None
        self.window = MainWindow(session, self.settings)
        self.window.catalog_requested.connect(self.open_catalog)
        if previous is not None:
            previous.close()
            self.window.restoreGeometry(self.settings.value("window/geometry"))
        self.window.show()
        session.start()
        return self.window


class UncaughtDialogs(QObject):
    """The application's excepthook (`report`): Qt swallows exceptions raised in slots after
    printing them, so they are shown to the user too, on the GUI thread whichever thread raised
    them (a message box built on a worker thread crashed the application)."""

    raised = Signal(str, str)
    """(the message, the traceback)"""

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.raised.connect(self._show)  # queued when emitted from another thread

    def report(self, exc_type, exc, tb) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Uncaught exception:\n%s", text)
        self.raised.emit(user_message(exc), text)

    @Slot(str, str)
    def _show(self, message: str, details: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Something went wrong", message)
        box.setDetailedText(details)
        box.exec()


def run_app(db_path: str | Path | None = None, demo: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv)
    app.setOrganizationName("ProtoShelf")
    app.setApplicationName("ProtoShelf")
    app.setDesktopFileName(APP_ID)  # the window joins the launcher entry `protoshelf install-desktop` wrote
    app.setWindowIcon(QIcon(str(ICON)))
    sys.excepthook = UncaughtDialogs(app).report
    interrupted = threading.Event()
    signal.signal(signal.SIGINT, lambda *_signal: (interrupted.set(), close_windows()))
    wake = QTimer(interval=250)  # lets Python run the Ctrl-C handler while Qt's loop waits
    wake.timeout.connect(lambda: None)
    wake.start()
    settings = QSettings()
    controller = App(settings, stopping=interrupted.is_set)
    window = controller.open_catalog(choose_catalog(db_path, demo, settings))
    if interrupted.is_set():  # Ctrl-C during the demo build or an upgrade (no window then), or as it opened
        if window is not None:
            window.close()
        return INTERRUPTED
    return 2 if window is None else app.exec()


def close_windows() -> None:
    """Ctrl-C in the terminal closes the window properly: work is stopped and settings saved."""
    QApplication.closeAllWindows()
