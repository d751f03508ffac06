"""The one-pass, threaded prototype scoring gives the direct formula's numbers on every path."""
from __future__ import annotations

import numpy as np
import pytest

from protoshelf.core.methods import prototypes
from protoshelf.core.methods.prototypes import PrototypeClassifier, centred_cosine, l2_normalise


def direct(queries, model):
    return l2_normalise(np.asarray(queries, np.float64) - model.centre_) @ model.prototypes_.T


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    catalog = (rng.normal(size=(1000, 48)) + 3).astype(np.float32)
    model = PrototypeClassifier().fit(catalog[:27], np.arange(27) % 9, unlabelled=catalog)
    return catalog, model


@pytest.mark.parametrize("parallel_rows", [10**9, 100], ids=["one product", "threads and chunks"])
def test_cosine_matches_the_direct_formula(fitted, monkeypatch, parallel_rows):
    catalog, model = fitted
    monkeypatch.setattr(prototypes, "PARALLEL_ROWS", parallel_rows)
    monkeypatch.setattr(prototypes, "CHUNK_ROWS", 7)  # chunks that do not divide the rows
    np.testing.assert_allclose(model.cosine(catalog), direct(catalog, model), atol=2e-6)


def test_float16_float64_and_read_only_mapped_queries(fitted, tmp_path, monkeypatch):
    catalog, model = fitted
    monkeypatch.setattr(prototypes, "PARALLEL_ROWS", 100)
    np.save(tmp_path / "m.npy", catalog)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    np.testing.assert_allclose(model.cosine(mapped), direct(catalog, model), atol=2e-6)
    np.testing.assert_allclose(model.cosine(catalog.astype(np.float64)), direct(catalog, model), atol=2e-6)
    half = catalog.astype(np.float16)
    np.testing.assert_allclose(model.cosine(half), direct(half, model), atol=2e-6)


def test_any_number_of_classes_and_no_rows():
    rng = np.random.default_rng(1)
    for classes in (1, 7, 8, 16, 17):
        prototypes_ = l2_normalise(rng.normal(size=(classes, 20))).astype(np.float32)
        centre = rng.normal(size=20).astype(np.float32)
        queries = rng.normal(size=(30, 20)).astype(np.float32)
        expected = l2_normalise(queries - centre) @ prototypes_.T
        np.testing.assert_allclose(centred_cosine(queries, prototypes_, centre), expected, atol=2e-6)
    assert centred_cosine(np.empty((0, 20), np.float32), prototypes_, centre).shape == (0, 17)
