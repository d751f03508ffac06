"""The side panel's model settings: method, backbone, device, modality and the unassigned threshold.

Moving the threshold re-decides from the scores already computed (no refit), so the grid follows
the slider live; the other settings refit on the live lane. Choosing a backbone adapter ("finetune")
runs it as a job and then classifies with the backbone it yields; the pretrained one stays in the
backbone list. Each method's tooltip is its one-line description from the registry.
Until the session has loaded torch in the background, each list holds only the current choice.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QWidget

from protoshelf.gui.jobs import ModelInfo
from protoshelf.gui.session import CatalogSession

MODALITY_NAMES = {"fused": "Image + title", "image": "Image only", "text": "Title only"}


class ModelControls(QGroupBox):
    def __init__(self, session: CatalogSession, parent=None):
        super().__init__("Model", parent)
        self.session = session
        self.method = QComboBox()
        self.method.currentTextChanged.connect(self._on_method)
        self.backbone = QComboBox()
        self.backbone.currentTextChanged.connect(session.set_backbone)
        session.backbone_changed.connect(self._show_backbone)
        self.device = QComboBox()
        self.device.currentTextChanged.connect(self._on_device)
        self._fill(ModelInfo([session.method], [session.backbone], [session.device], "", {}))
        for combo in (self.method, self.backbone, self.device):
            combo.setEnabled(False)
        session.model_loaded.connect(self._on_model_loaded)
        self.device_label = QLabel(session.device_description())
        session.model_failed.connect(lambda: self.device_label.setText(session.device_description()))
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
        form.addRow("Assign when at least", threshold_row_widget)

    def _fill(self, info: ModelInfo) -> None:
        choices = ((self.method, info.methods, self.session.method),
                   (self.backbone, list(dict.fromkeys([self.session.backbone, *info.backbones])), self.session.backbone),
                   (self.device, info.devices, self.session.device))
        for combo, names, current in choices:
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentText(current)
            combo.blockSignals(False)
        for i, name in enumerate(info.methods):
            self.method.setItemData(i, info.descriptions.get(name, ""), Qt.ItemDataRole.ToolTipRole)
        self._tips, self._adapters = info.descriptions, info.backbone_adapters
        self.method.setToolTip(self._tips.get(self.session.method, ""))

    @Slot(object)
    def _on_model_loaded(self, info: ModelInfo) -> None:
        self._fill(info)
        for combo in (self.method, self.backbone, self.device):
            combo.setEnabled(True)
        self.device_label.setText(self.session.device_description())

    @Slot(str)
    def _on_method(self, method: str) -> None:
        """A backbone adapter is a one-off job that yields a backbone, not a method to keep selected."""
        self.method.setToolTip(self._tips.get(method, ""))
        if method not in self._adapters:
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
        self.threshold_label.setText(f"{value}% sure")
