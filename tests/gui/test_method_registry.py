"""A method is one module plus one registry line: a toy method registered here (and nowhere else)
shows up in `--list-methods`, `evaluate`, the app's method list (with its tooltip) and
benchmarks.methods. And a meta-learner in the app meta-trains once per category set, in the
background, not on every label change."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from protoshelf.core.cli import main
from protoshelf.core.evaluate import EmbeddedTree, Image
from protoshelf.core.fusion import ModalFeatures
from protoshelf.core.methods import METHODS, FewShotMethod
from protoshelf.core.methods.prototypes import l2_normalise
from protoshelf.gui import jobs as gui_jobs
from tests.gui.conftest import examples, wait_idle
from tests.gui.test_main_window import label_examples
from tests.test_methods_evaluate import COLOURS, make_tree


class NearestExample(FewShotMethod):
    """1-nearest-neighbour by cosine: the smallest method that keeps the contract."""

    name = "toy-nearest"
    description = "Each item gets the category of its single most similar example."

    def learn(self, support, y, unlabelled, progress):
        self.support_, self.y_ = l2_normalise(support), y
        progress(1, 1)

    def predict(self, queries):
        nearest = (l2_normalise(np.asarray(queries, np.float32)) @ self.support_.T).argmax(axis=1)
        scores = np.zeros((len(queries), len(self.classes_)), np.float32)
        scores[np.arange(len(queries)), self.y_[nearest]] = 0.9
        return scores


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, NearestExample.name, NearestExample)
    return NearestExample.name


def test_a_registered_method_is_listed_and_evaluated_by_the_cli(toy, tmp_path, capsys):
    assert main(["evaluate", "--list-methods"]) == 0
    assert toy in capsys.readouterr().out.split()
    tree = make_tree(tmp_path / "tree", COLOURS)
    argv = ["evaluate", str(tree), "--method", toy, "--shots", "2", "--episodes", "2", "--device", "cpu",
            "--cache", str(tmp_path / "c.sqlite"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == toy and result["accuracy"] >= 0.6


def test_a_registered_method_gets_a_benchmark_row(toy):
    from benchmarks.methods import SHOTS, method_rows

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    images = [Image(f"c{k}", f"c{k}/{i}.png", 12 * k + i) for k in range(3) for i in range(12)]
    x = np.repeat(centres, 12, axis=0) + 0.1 * rng.normal(size=(36, 8))
    tree = EmbeddedTree(images, ModalFeatures.of(image=x.astype(np.float32)))
    rows, _ = method_rows(tree, None, None, episodes=1, seed=0)
    assert set(rows[toy]) == set(SHOTS) and rows[toy][1].accuracy > 0.9


def test_a_registered_method_is_in_the_apps_list_with_its_tooltip_and_classifies(
    toy, qtbot, open_window, fake_catalog
):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session, controls = window.session, window.controls
    index = controls.method.findText(toy)
    assert index >= 0
    assert controls.method.itemData(index, Qt.ItemDataRole.ToolTipRole) == NearestExample.description
    tooltips = [controls.method.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(controls.method.count())]
    assert all(tooltips), "every method has a plain-words tooltip"
    controls.method.setCurrentText(toy)
    label_examples(qtbot, window, truth, categories)
    assert session.predictions.method == toy


def test_the_app_meta_trains_once_per_category_set_in_the_background(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    trained: list[frozenset] = []
    meta_train = gui_jobs.meta_train

    def counting(context, progress, backbone, method, labels):
        trained.append(frozenset(labels.values()))
        return meta_train(context, progress, backbone, method, labels)

    monkeypatch.setattr(gui_jobs, "meta_train", counting)
    window = open_window(path, method="relation")
    session = window.session
    first_two = categories[:2]
    for k, category in enumerate(first_two):
        session.label(examples(truth, k), category)
        wait_idle(qtbot, session)
    session.label(examples(truth, 0, n=6), first_two[0])  # more examples, same categories
    wait_idle(qtbot, session)
    assert trained == [frozenset(first_two[:1]), frozenset(first_two)]
    assert session.predictions.method == "relation"
    fitted_with = session.training.latest(session.backbone, "relation")
    assert fitted_with and fitted_with[0].method == "relation"

    session.label(examples(truth, 2), categories[2])  # a new category: one more meta-training
    wait_idle(qtbot, session)
    assert trained[-1] == frozenset(categories)
    assert trained.count(frozenset(first_two)) == 1


def test_meta_training_in_the_app_shows_progress_and_can_be_cancelled(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    started: list = []

    def slow(context, progress, backbone, method, labels):
        started.append(method)
        for step in range(500):
            progress(step, 500)
            time.sleep(0.02)
        return ()

    monkeypatch.setattr(gui_jobs, "meta_train", slow)
    window = open_window(path, method="matching")
    session = window.session
    session.label(examples(truth, 0), categories[0])
    qtbot.waitUntil(lambda: window.task_status.isVisible() and window.task_status.bar.value() > 0, timeout=10_000)
    task = next(t for t in session.jobs.pending if t.kind == "meta-train")
    with qtbot.waitSignal(session.notice, timeout=10_000) as notice:
        window.task_status.cancel_button.click()
    assert task.outcome == "cancelled" and "cancelled" in notice.args[0]
    session.label(examples(truth, 0, n=5), categories[0])  # same categories: not started again
    wait_idle(qtbot, session)
    assert started == ["matching"] and session.predictions.method == "matching"
