"""Re-scoring the fitted catalog from its centred bfloat16 copy agrees with the float32 path."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from protoshelf.core.methods import centred_rows
from protoshelf.core.methods.centred_rows import CentredRows
from protoshelf.core.methods.prototypes import PrototypeClassifier, scores_with_rejection

ROWS, DIM, CLASSES = 3000, 64, 4


@pytest.fixture
def catalog(monkeypatch):
    """A read-only catalog big enough for the copy (the threshold lowered), on any CPU."""
    monkeypatch.setattr(centred_rows, "MIN_ROWS", 1000)
    monkeypatch.setattr(centred_rows, "fast_bfloat16", lambda: True)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, CLASSES, ROWS)
    centres = rng.normal(size=(CLASSES, DIM)).astype(np.float32) + 3.0
    matrix = centres[truth] + rng.normal(size=(ROWS, DIM)).astype(np.float32)
    matrix.flags.writeable = False
    return matrix, truth


def fitted(matrix, truth) -> PrototypeClassifier:
    support = np.concatenate([np.flatnonzero(truth == c)[:5] for c in range(CLASSES)])
    return PrototypeClassifier().fit(matrix[support], truth[support], unlabelled=matrix)


def test_the_fitted_catalog_is_scored_from_the_copy_and_agrees_with_float32(catalog, monkeypatch):
    matrix, truth = catalog
    model = fitted(matrix, truth)
    used = []
    original = CentredRows.cosine
    monkeypatch.setattr(CentredRows, "cosine", lambda self, p: used.append(1) or original(self, p))
    fast = model.predict(matrix)
    exact = scores_with_rejection(model.cosine(matrix), model.temperature, model.reject_similarity_)
    assert used, "the catalog's own rows should be scored from the bfloat16 copy"
    assert model.centre_ is CentredRows.of(matrix).mean  # one centre for the fit and the copy
    np.testing.assert_allclose(fast, exact, atol=0.02)
    top_two = np.sort(exact, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 0.05
    assert (fast.argmax(axis=1)[clear] == exact.argmax(axis=1)[clear]).all()
    assert np.abs(model.cosine(matrix) - CentredRows.of(matrix).cosine(model.prototypes_)).max() < 0.01


def test_other_queries_and_writable_matrices_take_the_float32_path(catalog, monkeypatch):
    matrix, truth = catalog
    model = fitted(matrix, truth)
    monkeypatch.setattr(CentredRows, "cosine", lambda *a: pytest.fail("copy used for other rows"))
    writable = np.array(matrix)
    assert CentredRows.of(writable) is None  # it could change under the copy
    exact = scores_with_rejection(model.cosine(writable), model.temperature, model.reject_similarity_)
    np.testing.assert_array_equal(model.predict(writable), exact)
    other = np.array(matrix[:1500])
    other.flags.writeable = False
    assert CentredRows.of(other).mean is not model.centre_  # centred on its own mean, not the fit's
    model.predict(other)


def test_the_copy_is_dropped_with_its_matrix(catalog):
    matrix = np.array(catalog[0])  # one this test alone holds
    matrix.flags.writeable = False
    assert CentredRows.of(matrix) is CentredRows.of(matrix)  # built once
    key = id(matrix)
    assert key in centred_rows._prepared
    del matrix
    gc.collect()
    assert key not in centred_rows._prepared


def test_small_catalogs_get_no_copy(catalog, monkeypatch):
    matrix, _ = catalog
    monkeypatch.setattr(centred_rows, "MIN_ROWS", ROWS + 1)
    assert CentredRows.of(matrix) is None


def test_no_memory_for_the_copy_means_float32_scores_not_a_failed_fit(catalog, monkeypatch):
    matrix, truth = catalog
    attempts = []

    def no_room(*args, **kwargs):
        attempts.append(1)
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(centred_rows.torch, "empty", no_room)
    model = fitted(matrix, truth)
    exact = scores_with_rejection(model.cosine(matrix), model.temperature, model.reject_similarity_)
    np.testing.assert_array_equal(model.predict(matrix), exact)
    fitted(matrix, truth)
    assert len(attempts) == 1  # tried once per matrix, not on every fit
