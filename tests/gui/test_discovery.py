"""Finding items in the real window: similar items, suggestions to label, near-duplicates."""
from __future__ import annotations

import csv
import threading
from collections import Counter

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.methods import method_names
from protoshelf.core.methods import finetune as finetune_module
from protoshelf.core.similar import unit_rows
from protoshelf.core.store import Store
from protoshelf.core.suggest import suggest
from protoshelf.gui.catalog_model import FILTER_ALL, PredictionRole
from protoshelf.gui.main_window import SHOW_DUPLICATES, SHOW_SIMILAR, SHOW_SUGGESTED
from tests.gui.conftest import select_rows, wait_idle
from tests.gui.test_main_window import label_examples


def test_show_similar_from_the_context_menu_and_back(qtbot, open_window, fake_catalog):
    path, truth, _ = fake_catalog
    window = open_window(path)
    session, model = window.session, window.session.model
    wait_idle(qtbot, session)
    index = model.index(model.row_of(5))
    menu = window.view.item_menu(index)
    action = next(a for a in menu.actions() if a.text() == "Show similar")
    with qtbot.waitSignal(session.similar_found, timeout=10_000):
        action.trigger()

    vectors = Store(path).load_embeddings(DEFAULT_BACKBONE)
    unit = unit_rows(vectors.matrix)
    cosine = unit @ unit[vectors.item_ids == 5][0]
    cosine[vectors.item_ids == 5] = np.inf
    expected = vectors.item_ids[np.argsort(-cosine, kind="stable")][: model.rowCount()]
    assert window.filter.currentData() == SHOW_SIMILAR
    assert window.filter.currentText() == f"Similar to Product 5 of kind {truth[4]}"
    assert model.visible_ids().tolist() == expected.tolist()
    assert set(truth[model.visible_ids()[:10] - 1]) == {truth[4]}

    window.show_filter(FILTER_ALL)
    assert model.rowCount() == 90
    window.show_filter(SHOW_SIMILAR)
    assert model.visible_ids()[0] == 5


def test_suggested_view_lists_suggestions_in_order_and_a_key_accepts(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session, model = window.session, window.session.model
    wait_idle(qtbot, session)
    label_examples(qtbot, window, truth, categories)
    with qtbot.waitSignal(session.suggestions_ready, timeout=10_000):
        window.show_filter(SHOW_SUGGESTED)

    expected = suggest(session.predictions, Store(path).load_embeddings(DEFAULT_BACKBONE), 20, session.labels)
    assert model.visible_ids().tolist() == [s.item_id for s in expected]
    assert window.view.currentIndex().row() == 0
    first, second = expected[0], expected[1]
    window.view.setFocus()
    window.view.setCurrentIndex(model.index(0))
    qtbot.keyClick(window.view, Qt.Key.Key_A)
    assert session.labels[first.item_id] == first.category_id
    assert window.view.selected_ids() == [second.item_id]

    other = next(c for c in categories if c != second.category_id)
    qtbot.keyClick(window.view, str(categories.index(other) + 1))
    assert session.labels[second.item_id] == other
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert first.item_id not in session.labels
    wait_idle(qtbot, session)
    assert Store(path).labels() == session.labels


def test_a_accepts_what_the_badge_shows_now_and_only_in_the_suggested_view(qtbot, open_window, fake_catalog):
    """Labels refit the predictions while the suggestion list stays: A labelled the list's old guess,
    and Enter in All items accepted a suggestion from a list no longer on screen."""
    path, truth, categories = fake_catalog
    window = open_window(path)
    session, model = window.session, window.session.model
    label_examples(qtbot, window, truth, categories)
    with qtbot.waitSignal(session.suggestions_ready, timeout=10_000):
        window.show_filter(SHOW_SUGGESTED)
    guesses = Counter(s.category_id for s in window.suggestions.values())
    top = guesses.most_common(1)[0][0]
    other = next(c for c in categories if c != top)
    with qtbot.waitSignal(session.predictions_changed, timeout=10_000):  # every example of `top` becomes `other`
        session.label([i for i, c in session.labels.items() if c == top], other)
    wait_idle(qtbot, session)
    badges = {model.item_id(row): model.index(row).data(PredictionRole) for row in range(model.rowCount())}
    changed = [i for i, s in window.suggestions.items() if badges[i] != s.category_id and window.acceptable(s)]
    assert changed, "the refit changed no acceptable suggestion's badge"
    window.view.setFocus()
    select_rows(window, [model.row_of(changed[0])])
    qtbot.keyClick(window.view, Qt.Key.Key_A)
    badge = badges[changed[0]]  # a category, or Unassigned: then nothing is accepted
    assert session.labels.get(changed[0]) == (badge if badge in categories else None)

    corrected = next(i for i in window.suggestions if i not in session.labels and badges[i] in categories)
    mine = next(c for c in categories if c != badges[corrected])
    session.label([corrected], mine)  # the user's own choice, by a number key
    select_rows(window, [model.row_of(corrected)])
    qtbot.keyClick(window.view, Qt.Key.Key_A)  # the badge shows the label: A does not revert it
    assert session.labels[corrected] == mine

    window.show_filter(FILTER_ALL)
    wait_idle(qtbot, session)
    still_suggested = next(i for i in window.suggestions if i not in session.labels)
    select_rows(window, [model.row_of(still_suggested)])
    before = dict(session.labels)
    qtbot.keyClick(window.view, Qt.Key.Key_Return)
    assert session.labels == before and "Select a suggested item" in window.statusBar().currentMessage()


def test_near_duplicates_are_found_shown_and_exported(qtbot, open_window, fake_catalog, tmp_path, monkeypatch):
    path, _, _ = fake_catalog
    with Store(path) as store:
        vectors = store.load_embeddings(DEFAULT_BACKBONE)
        copy = vectors.matrix[vectors.item_ids == 7][0] * 1.01 + 0.001
        store.save_embeddings(DEFAULT_BACKBONE, [40], copy[None, :])
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *args, **kwargs: (0.99, True))
    with qtbot.waitSignal(session.duplicates_found, timeout=10_000) as found:
        window.duplicates_action.trigger()
    groups = found.args[0]
    assert [g.item_ids for g in groups] == [(7, 40)]

    dialog = window.duplicates_dialog
    assert dialog.tree.topLevelItemCount() == 1
    group = dialog.tree.topLevelItem(0)
    assert [group.child(i).text(0) for i in range(group.childCount())] == [
        Store(path).items([7])[7].title, Store(path).items([40])[40].title
    ]
    out = tmp_path / "duplicates.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(out), ""))
    with qtbot.waitSignal(session.export_finished, timeout=10_000):
        dialog.export_button.click()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["group"], r["item_id"]) for r in rows] == [("1", "7"), ("1", "40")]

    dialog.show_button.click()
    assert window.filter.currentData() == SHOW_DUPLICATES
    assert window.session.model.visible_ids().tolist() == [7, 40]
    dialog.close()


def fake_finetune(calls: list, until: threading.Event | None = None):
    """Stands in for core's fine-tuning: reports progress (given `until`, on and on until that is
    set or the task is cancelled, so there is time to cancel however slow the machine), then saves
    "fine-tuned" vectors (the pretrained ones, scaled) under a new name."""

    def run(store, labels=None, base=DEFAULT_BACKBONE, config=None, device="auto", progress=None):
        calls.append((base, device, labels))
        step = 0
        while step < 10 or (until is not None and not until.wait(0.01)):
            progress(min(step, 9), 10)  # raises Cancelled once the task is cancelled
            step += 1
        vectors = store.load_embeddings(base)
        name = f"{base}+ft-test"
        store.save_embeddings(name, vectors.item_ids, vectors.matrix * 2)
        progress(10, 10)
        return name

    return run


def test_choosing_finetune_switches_the_classifier_to_the_new_backbone(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    calls: list = []
    monkeypatch.setattr(finetune_module, "finetune_catalog", fake_finetune(calls))
    window = open_window(path)
    session, controls = window.session, window.controls
    label_examples(qtbot, window, truth, categories)
    assert [controls.method.itemText(i) for i in range(controls.method.count())] == method_names()

    with qtbot.waitSignal(session.backbone_changed, timeout=10_000) as changed:
        controls.method.setCurrentText(finetune_module.FineTuning.name)
    name = f"{DEFAULT_BACKBONE}+ft-test"
    assert changed.args == [name]
    assert calls == [(DEFAULT_BACKBONE, session.device, None)]
    assert controls.method.currentText() == session.method != finetune_module.FineTuning.name
    assert controls.backbone.currentText() == session.backbone == name
    wait_idle(qtbot, session)
    assert ("classifier", name) in session.live.context.cache
    predicted = session.predictions
    assert predicted is not None and sorted(predicted.item_ids.tolist()) == list(range(1, 91))

    controls.backbone.setCurrentText(DEFAULT_BACKBONE)
    wait_idle(qtbot, session)
    assert session.backbone == DEFAULT_BACKBONE and session.predictions is not predicted


def test_finetuning_can_be_cancelled(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    never_done = threading.Event()
    monkeypatch.setattr(finetune_module, "finetune_catalog", fake_finetune([], until=never_done))
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    task = session.adapt_backbone("finetune")
    try:
        qtbot.waitUntil(lambda: window.task_status.isVisible(), timeout=5_000)
        with qtbot.waitSignal(task.finished, timeout=10_000):
            window.task_status.cancel_button.click()
    finally:
        never_done.set()  # a fine-tune the cancel did not stop ends now, failing the outcome check
    assert task.outcome == "cancelled"
    assert session.backbone == DEFAULT_BACKBONE
    wait_idle(qtbot, session)


def test_a_worked_through_suggestion_list_is_followed_by_a_fresh_one(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    with qtbot.waitSignal(session.suggestions_ready, timeout=10_000):
        window.show_filter(SHOW_SUGGESTED)
    first_batch = list(window.suggestions)
    session.label(first_batch[:-1], categories[0])
    wait_idle(qtbot, session)
    assert list(window.suggestions) == first_batch  # not reshuffled while being worked through
    with qtbot.waitSignal(session.suggestions_ready, timeout=10_000):
        session.label(first_batch[-1:], categories[0])
    assert window.suggestions and not set(window.suggestions) & set(session.labels)
    assert window.session.model.visible_ids().tolist() == list(window.suggestions)
    wait_idle(qtbot, session)
