"""The status bar's view of long work: what runs, a progress bar, the time left, and Cancel.

Only work a user waits for is shown (import, embedding, export); refits and edits take a fraction
of a second and would make the bar flicker.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from gui.session import CatalogSession
from gui.workers import Task

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


class TaskStatus(QWidget):
    def __init__(self, session: CatalogSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(True)
        self.eta = QLabel()
        self.eta.setMinimumWidth(110)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.label, self.bar, self.eta, self.cancel_button):
            layout.addWidget(widget)
        self.task: Task | None = None
        self._started = 0.0
        self._running: list[Task] = []
        for runner in (session.jobs, session.live):
            runner.task_submitted.connect(self._on_submitted)
            runner.task_started.connect(self._on_started)
            runner.task_finished.connect(self._on_finished)
        self.setVisible(False)

    @Slot(object)
    def _on_submitted(self, task: Task) -> None:
        if task.kind in SHOWN_KINDS:
            task.progressed.connect(self._on_progress)
            task.staged.connect(self._on_staged)

    @Slot(object)
    def _on_started(self, task: Task) -> None:
        if task.kind not in SHOWN_KINDS:
            return
        self._running.append(task)
        self._show(task)

    def _show(self, task: Task) -> None:
        self.task = task
        self._started = time.monotonic()
        self.label.setText(f"{task.label}…")
        self.bar.setRange(0, 0)
        self.eta.clear()
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    @Slot(str)
    def _on_staged(self, text: str) -> None:
        if self.sender() is self.task:
            self.label.setText(f"{text}…")
            self._started = time.monotonic()
            self.bar.setRange(0, 0)
            self.eta.clear()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self.sender() is not self.task:
            return
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.bar.setFormat(f"{done:,} / {total:,}")
        elapsed = time.monotonic() - self._started
        if 0 < done < total and elapsed > 1.0:
            self.eta.setText(f"about {format_duration(elapsed / done * (total - done))} left")

    @Slot(object)
    def _on_finished(self, task: Task) -> None:
        if task in self._running:
            self._running.remove(task)
        if task is self.task:
            self.task = None
            if self._running:
                self._show(self._running[-1])
            else:
                self.setVisible(False)

    @Slot()
    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.session.cancel()
