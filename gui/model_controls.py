"""The side panel's model settings: method, backbone, device, modality and the unassigned threshold.

Moving the threshold re-decides from the scores already computed (no refit), so the grid follows
the slider live; the other settings refit on the live lane. Choosing a backbone adapter ("finetune")
runs it as a job and then classifies with the backbone it yields; the pretrained one stays in the
backbone list. Each method's tooltip is its one-line description from the registry.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QWidget

from core.backbones import BackboneError, available_backbones, resolve_device
from core.methods import describe, is_backbone_adapter, method_names
from gui.session import CatalogSession

DEVICES = ("auto", "cpu", "cuda", "mps")
MODALITY_NAMES = {"fused": "Image + title", "image": "Image only", "text": "Title only"}


def usable_devices() -> list[str]:
    usable = []
    for device in DEVICES:
        try:
            resolve_device(device)
        except BackboneError:
            continue
        usable.append(device)
    return usable


class ModelControls(QGroupBox):
    def __init__(self, session: CatalogSession, parent=None):
        super().__init__("Model", parent)
        self.session = session
        self.method = QComboBox()
        for index, name in enumerate(method_names()):
            self.method.addItem(name)
            self.method.setItemData(index, describe(name), Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentText(session.method)
        self.method.currentTextChanged.connect(self._on_method)

        self.backbone = QComboBox()
        self.backbone.addItems(list(dict.fromkeys([session.backbone, *available_backbones()])))
        self.backbone.setCurrentText(session.backbone)
        self.backbone.currentTextChanged.connect(session.set_backbone)
        session.backbone_changed.connect(self._show_backbone)

        self.device = QComboBox()
        self.device.addItems(usable_devices())
        self.device.setCurrentText(session.device)
        self.device.currentTextChanged.connect(self._on_device)
        self.device_label = QLabel(session.device_description())
        self.device_label.setStyleSheet("color: palette(mid);")

        self.modality = QComboBox()
        self.modality.currentIndexChanged.connect(self._on_modality)
        self.modality_label = QLabel("Features")
        session.modalities_changed.connect(self._set_modalities)
        self._set_modalities(session.modalities)

        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold.setValue(round(session.threshold * 100))
        self.threshold.valueChanged.connect(self._on_threshold)
        self.threshold_label = QLabel()
        self.threshold_label.setMinimumWidth(40)
        self._show_threshold(self.threshold.value())
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold, 1)
        threshold_row.addWidget(self.threshold_label)
        threshold_row_widget = QWidget()
        threshold_row.setContentsMargins(0, 0, 0, 0)
        threshold_row_widget.setLayout(threshold_row)

        form = QFormLayout(self)
        form.addRow("Method", self.method)
        form.addRow("Backbone", self.backbone)
        form.addRow("Device", self.device)
        form.addRow("", self.device_label)
        form.addRow(self.modality_label, self.modality)
        form.addRow("Unassigned below", threshold_row_widget)

    @Slot(str)
    def _on_method(self, method: str) -> None:
        """A backbone adapter is a one-off job that yields a backbone, not a method to keep selected."""
        if not is_backbone_adapter(method):
            self.session.set_method(method)
            return
        self.method.blockSignals(True)
        self.method.setCurrentText(self.session.method)
        self.method.blockSignals(False)
        self.session.adapt_backbone(method)

    @Slot(str)
    def _show_backbone(self, backbone: str) -> None:
        self.backbone.blockSignals(True)
        if self.backbone.findText(backbone) < 0:
            self.backbone.addItem(backbone)
        self.backbone.setCurrentText(backbone)
        self.backbone.blockSignals(False)

    @Slot(str)
    def _on_device(self, device: str) -> None:
        self.session.set_device(device)
        self.device_label.setText(self.session.device_description())

    @Slot(list)
    def _set_modalities(self, modalities: list[str]) -> None:
        """Offered once the catalog has title vectors: the first is the default (fused)."""
        self.modality.blockSignals(True)
        self.modality.clear()
        for name in modalities:
            self.modality.addItem(MODALITY_NAMES.get(name, name), name)
        if self.session.modality in modalities:
            self.modality.setCurrentIndex(modalities.index(self.session.modality))
        self.modality.blockSignals(False)
        visible = len(modalities) > 1
        self.modality.setVisible(visible)
        self.modality_label.setVisible(visible)

    @Slot(int)
    def _on_modality(self, index: int) -> None:
        if index >= 0:
            self.session.set_modality(self.modality.itemData(index))

    @Slot(int)
    def _on_threshold(self, value: int) -> None:
        self._show_threshold(value)
        self.session.set_threshold(value / 100)

    def _show_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"{value}%")
