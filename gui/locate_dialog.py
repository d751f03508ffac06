"""File ▸ Locate missing images: point the catalog at a folder that moved.

The dialog looks for the first item whose image file is gone (on the jobs lane: it may stat many
files), proposes that file's folder as the old place, and asks where the files are now. The
relocation itself is `protoshelf.core.importer.relocate` on the same lane: an item moves only when a file of
its recorded size is at the new place, so a wrong folder changes nothing. Items that move and have
no vectors yet are embedded next.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout,
    QWidget,
)

from protoshelf.core.errors import user_message
from protoshelf.core.importer import relocate
from protoshelf.gui.workers import Task


def first_missing(context, progress) -> list[str]:
    return context.store.missing_files(limit=1)


def relocate_job(context, progress, old_prefix: str, new_prefix: str):
    return relocate(context.store, old_prefix, new_prefix)


class LocateMissingDialog(QDialog):
    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Locate missing images")
        self.status = QLabel("Looking for images that are no longer where they were imported from…")
        self.status.setWordWrap(True)
        self.old_folder = QLineEdit()
        self.new_folder = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        new_row = QHBoxLayout()
        new_row.addWidget(self.new_folder)
        new_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Folder recorded in the catalog:", self.old_folder)
        form.addRow("Where those files are now:", new_row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.relocate_button = self.buttons.addButton("Relocate", QDialogButtonBox.ButtonRole.ApplyRole)
        self.relocate_button.clicked.connect(self.start_relocate)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.result_text = ""
        session.jobs.run("Looking for missing images", first_missing, kind="locate", after=self._on_found)

    @Slot(object)
    def _on_found(self, task: Task) -> None:
        if task.outcome != "succeeded":
            self.status.setText(f"Could not look for missing images: {user_message(task.error) if task.error else 'cancelled'}")
        elif not task.result:
            self.status.setText("Every image is where it was imported from.")
        else:
            missing = task.result[0]
            self.status.setText(f"{missing} is missing, with perhaps others in its folder. "
                                "Give the folder the images are in now.")
            if not self.old_folder.text():
                self.old_folder.setText(os.path.dirname(missing))

    @Slot()
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where are the images now?", self.new_folder.text())
        if folder:
            self.new_folder.setText(folder)

    @Slot()
    def start_relocate(self) -> None:
        old, new = self.old_folder.text().strip(), self.new_folder.text().strip()
        if not old or not new:
            self.status.setText("Give both folders: where the images were, and where they are now.")
            return
        self.relocate_button.setEnabled(False)
        self.session.jobs.run("Relocating images", relocate_job, old, new, kind="locate", after=self._on_relocated)

    @Slot(object)
    def _on_relocated(self, task: Task) -> None:
        self.relocate_button.setEnabled(True)
        if task.outcome != "succeeded":
            self.result_text = f"Nothing was changed: {user_message(task.error) if task.error else 'cancelled'}"
        else:
            moved, not_found = task.result.moved, len(task.result.not_found)
            self.result_text = f"Relocated {moved} images; {not_found} were not found at the new place."
            if moved:
                self.session.embed()  # items that failed to embed while their files were missing
        self.status.setText(self.result_text)
