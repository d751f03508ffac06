"""Fine-tuning in the app, through the real finetune_catalog (only the training step is stood in for):
when early stopping restored the pretrained weights the app says so and keeps its backbone; a real
fine-tuned backbone is saved, and is still in the Backbone list after a restart."""
import copy

import numpy as np
import pytest
import torch

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.importer import import_images
from protoshelf.core.methods import finetune as finetune_module
from protoshelf.core.store import Store
from tests.conftest import write_image
from tests.gui.conftest import wait_idle

COLOURS = {"Red": (220, 30, 30), "Green": (30, 200, 40), "Blue": (30, 40, 220)}


@pytest.fixture
def colour_catalog(tmp_path, monkeypatch):
    """Nine real pictures, three labelled per colour; fine-tuned weights go to a tmp folder."""
    monkeypatch.setattr(finetune_module, "default_weights_dir", lambda: tmp_path / "weights")
    path = tmp_path / "colours.sqlite"
    with Store(path) as store:
        for name, colour in COLOURS.items():
            paths = [write_image(tmp_path / "img" / f"{name}{i}.png", colour, size=(48, 48)) for i in range(3)]
            report = import_images(store, paths)
            store.set_labels([report.ids_by_path[str(p.resolve())] for p in paths], store.ensure_category(name))
    return path


def trained(improved: bool):
    """Stands in for the training loop: the held-out loss either never beats the pretrained start
    (early stopping restores it, best epoch 0) or does at epoch 2, with changed head weights."""

    def run(backbone, images, labels, config=finetune_module.FineTuneConfig(), device="auto", progress=None):
        model = copy.deepcopy(backbone).eval()
        if improved:
            with torch.no_grad():
                model.trunk.conv_head.weight.mul_(1.05)
        classes = np.array(sorted(set(labels)))
        losses = [0.5, 0.4, 0.3] if improved else [0.5, 0.6, 0.7]
        return finetune_module.FineTuneResult(model, classes, [1.0, 0.9], losses, best_epoch=2 if improved else 0)

    return run


def test_finetuning_that_beat_nothing_says_so_and_keeps_the_pretrained_backbone(qtbot, open_window, colour_catalog,
                                                                                 monkeypatch):
    monkeypatch.setattr(finetune_module, "finetune", trained(improved=False))
    window = open_window(colour_catalog)
    session = window.session
    wait_idle(qtbot, session, timeout=120_000)
    changed = []
    session.backbone_changed.connect(changed.append)
    with qtbot.waitSignal(session.notice, timeout=120_000,
                          check_params_cb=lambda text: "pretrained" in text or "now classifying" in text) as notice:
        window.controls.method.setCurrentText(finetune_module.FineTuning.name)
    assert "did not beat the pretrained weights" in notice.args[0] and DEFAULT_BACKBONE in notice.args[0]
    assert "did not beat the pretrained weights" in window.statusBar().currentMessage()
    assert changed == [] and session.backbone == DEFAULT_BACKBONE
    assert window.controls.backbone.currentText() == DEFAULT_BACKBONE
    assert [window.controls.backbone.itemText(i) for i in range(window.controls.backbone.count())] == [DEFAULT_BACKBONE]
    assert finetune_module.finetuned_backbones() == []
    wait_idle(qtbot, session, timeout=60_000)
    assert not any(finetune_module.is_finetuned(m) for m in session.store.embedding_models())  # nothing re-embedded


def test_a_real_fine_tuned_backbone_is_used_and_still_listed_after_a_restart(qtbot, open_window, colour_catalog,
                                                                              monkeypatch):
    monkeypatch.setattr(finetune_module, "finetune", trained(improved=True))
    window = open_window(colour_catalog)
    session = window.session
    wait_idle(qtbot, session, timeout=120_000)
    with qtbot.waitSignal(session.backbone_changed, timeout=180_000) as changed:
        window.controls.method.setCurrentText(finetune_module.FineTuning.name)
    name = changed.args[0]
    assert finetune_module.is_finetuned(name) and name.startswith(DEFAULT_BACKBONE)
    assert finetune_module.finetuned_backbones() == [name]
    wait_idle(qtbot, session, timeout=120_000)
    assert {DEFAULT_BACKBONE, name} <= set(session.store.embedding_models())
    assert session.predictions is not None
    window.close()

    again = open_window(colour_catalog)  # a restart: a new session and window on the same catalog
    wait_idle(qtbot, again.session, timeout=120_000)
    listed = [again.controls.backbone.itemText(i) for i in range(again.controls.backbone.count())]
    assert DEFAULT_BACKBONE in listed and name in listed
    again.controls.backbone.setCurrentText(name)
    wait_idle(qtbot, again.session, timeout=120_000)
    assert again.session.backbone == name and again.session.predictions is not None
