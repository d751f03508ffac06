"""The catalog model over a real catalog file: Qt's model contract, filters, search and sorting."""
from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import Qt

from protoshelf.core.classify import CatalogClassifier
from protoshelf.core.store import Store
from protoshelf.gui.drops import dropped_item_ids
from protoshelf.gui.catalog_model import (
    FILTER_LABELLED, FILTER_NOT_CLASSIFIED, FILTER_UNASSIGNED, NOT_CLASSIFIED, SORT_LEAST_CONFIDENT,
    SORT_MOST_CONFIDENT, CatalogModel, ConfidenceRole, ItemIdRole, LabelRole, PredictionRole,
)
from tests.gui.conftest import examples


@pytest.fixture
def classified(fake_catalog):
    """A model with labels and real predictions from the prototype classifier."""
    path, truth, categories = fake_catalog
    store = Store(path)
    labels = {i: categories[k] for k in range(3) for i in examples(truth, k)}
    for k in range(3):
        store.set_labels(examples(truth, k), categories[k])
    predictions = CatalogClassifier(store).run(labels)
    model = CatalogModel(store)
    model.set_items(store.item_ids(), labels)
    model.set_predictions(predictions)
    yield model, truth, categories, labels
    store.close()


def test_model_passes_qt_model_tester(qtmodeltester, classified):
    model, *_ = classified
    qtmodeltester.check(model, force_py=True)
    model.set_view(filter=FILTER_UNASSIGNED, sort=SORT_LEAST_CONFIDENT)
    qtmodeltester.check(model, force_py=True)


def test_rows_show_predictions_labels_and_titles(classified):
    model, truth, categories, labels = classified
    assert model.rowCount() == 90
    for row in range(model.rowCount()):
        index = model.index(row)
        item_id = index.data(ItemIdRole)
        assert index.data(LabelRole) == labels.get(item_id)
        assert index.data(PredictionRole) == categories[truth[item_id - 1]]
        assert 0.5 <= index.data(ConfidenceRole) <= 1
        assert index.data(Qt.ItemDataRole.DisplayRole) == f"Product {item_id} of kind {truth[item_id - 1]}"


def test_filters_search_and_sort(classified):
    model, truth, categories, labels = classified
    model.set_view(filter=FILTER_LABELLED)
    assert sorted(model.visible_ids().tolist()) == sorted(labels)
    model.set_view(filter=categories[1])
    assert set(model.visible_ids().tolist()) == {i + 1 for i in np.flatnonzero(truth == 1)}
    model.add_search_texts({1: "Red Kettle", 2: "blue kettle", 3: "Spoon"})
    model.set_view(filter="all", search="KETTLE")
    assert model.visible_ids().tolist() == [1, 2]
    model.set_view(search="", sort=SORT_LEAST_CONFIDENT)
    confidence = [model.index(r).data(ConfidenceRole) for r in range(model.rowCount())]
    assert confidence == sorted(confidence)
    model.set_view(sort=SORT_MOST_CONFIDENT)
    confidence = [model.index(r).data(ConfidenceRole) for r in range(model.rowCount())]
    assert confidence == sorted(confidence, reverse=True)


def test_threshold_moves_items_to_unassigned_without_refitting(classified):
    model, truth, categories, labels = classified
    model.set_view(filter=FILTER_UNASSIGNED)
    assert model.rowCount() == 0
    surer_than_any = float(np.nextafter(model.predictions.confidence.max(), 2))  # calibrated: ~1 on clean clusters
    model.set_predictions(model.predictions.with_threshold(surer_than_any))
    assert model.rowCount() > 0
    assert all(model.index(r).data(PredictionRole) == -1 for r in range(model.rowCount()))
    counts = model.counts()
    assert counts.unassigned == model.rowCount()
    assert counts.examples == {c: 3 for c in categories}


def test_unembedded_items_are_not_classified(fake_catalog):
    path, truth, categories = fake_catalog
    store = Store(path)
    model = CatalogModel(store)
    model.set_items(store.item_ids(), {})
    model.set_view(filter=FILTER_NOT_CLASSIFIED)
    assert model.rowCount() == 90
    assert model.index(0).data(PredictionRole) == NOT_CLASSIFIED
    assert model.index(0).data(ConfidenceRole) is None
    assert model.counts().not_classified == 90
    store.close()


def test_drag_carries_item_ids(classified):
    model, *_ = classified
    mime = model.mimeData([model.index(4), model.index(2)])
    assert dropped_item_ids(mime, model.store.path) == [model.item_id(4), model.item_id(2)]
    assert dropped_item_ids(mime, model.store.path.with_name("other.sqlite")) == []  # another catalog's window


def test_the_qt_binding_keeps_none_alive(classified):
    """PySide6 6.12.0 on Python < 3.12 drops a reference to None for every empty QVariant it
    converts, in either direction, and the app aborts after a few thousand repaints."""
    import sys

    model, *_ = classified
    index = model.index(0)
    before = sys.getrefcount(None)
    for _ in range(2000):
        index.data(Qt.ItemDataRole.FontRole)
        model.index(1).data(LabelRole)
    assert sys.getrefcount(None) >= before - 100
