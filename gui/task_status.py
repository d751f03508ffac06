"""The status bar's view of long work: a line per running task with a progress bar, the time left, and Cancel.

Only work a user waits for is shown (import, embedding, export); refits and edits take a fraction
of a second and would make the bar flicker.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from protoshelf.gui.session import CatalogSession
from protoshelf.gui.workers import Task

SHOWN_KINDS = {"import", "embed", "export", "save-for-export", "duplicates", "backbone", "meta-train"}


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TaskRow(QWidget):
    """One running task: what it does, a progress bar, the time left, and its own Cancel."""

    def __init__(self, task: Task, parent=None):
        super().__init__(parent)
        self.task = task
        self.label = QLabel(f"{task.label}…")
        self.bar = QProgressBar()
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 0)
        self.eta = QLabel()
        self.eta.setMinimumWidth(110)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.label, self.bar, self.eta, self.cancel_button):
            layout.addWidget(widget)
        self._started = time.monotonic()
        task.progressed.connect(self.show_progress)
        task.staged.connect(self.show_stage)

    @Slot(str)
    def show_stage(self, text: str) -> None:
        self.label.setText(f"{text}…")
        self._started = time.monotonic()
        self.bar.setRange(0, 0)
        self.eta.clear()

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.bar.setFormat(f"{done:,} / {total:,}")
        elapsed = time.monotonic() - self._started
        if 0 < done < total and elapsed > 1.0:
            self.eta.setText(f"about {format_duration(elapsed / done * (total - done))} left")

    @Slot()
    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.task.cancel()


class TaskStatus(QWidget):
    """One line per running task, so an import and the embedding after it never overwrite each other."""

    def __init__(self, session: CatalogSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.rows: dict[Task, TaskRow] = {}
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(2)
        for runner in (session.jobs, session.live):
            runner.task_started.connect(self._on_started)
            runner.task_finished.connect(self._on_finished)
        self.setVisible(False)

    @property
    def cancel_button(self) -> QPushButton | None:
        """The newest line's Cancel."""
        return next(reversed(self.rows.values())).cancel_button if self.rows else None

    @property
    def bar(self) -> QProgressBar | None:
        """The newest line's progress bar."""
        return next(reversed(self.rows.values())).bar if self.rows else None

    @Slot(object)
    def _on_started(self, task: Task) -> None:
        if task.kind not in SHOWN_KINDS or task in self.rows:
            return
        self.rows[task] = TaskRow(task, self)
        self.layout_.addWidget(self.rows[task])
        self.setVisible(True)

    @Slot(object)
    def _on_finished(self, task: Task) -> None:
        row = self.rows.pop(task, None)
        if row is not None:
            self.layout_.removeWidget(row)
            row.deleteLater()
        self.setVisible(bool(self.rows))
