"""Prototype maths on hand-made vectors."""
from __future__ import annotations

import numpy as np
import pytest

from protoshelf.core.methods import UNASSIGNED, decide, make_method, top_k
from protoshelf.core.methods.prototypes import PrototypeClassifier, class_sums, l2_normalise


def test_prototype_is_normalised_mean_of_centred_normalised_support():
    support = np.array([[2.0, 0.0], [4.0, 2.0], [0.0, 2.0]], np.float32)
    model = PrototypeClassifier().fit(support, ["a", "a", "b"])
    centre = support.mean(axis=0)
    np.testing.assert_allclose(model.centre_, centre)
    expected_a = l2_normalise(l2_normalise(support[:2] - centre).sum(axis=0))
    np.testing.assert_allclose(model.prototypes_[0], expected_a, rtol=1e-6)
    assert list(model.classes_) == ["a", "b"]


def test_class_sums_add_each_class_s_rows_and_leave_a_class_without_rows_at_zero():
    rows = np.random.default_rng(0).standard_normal((40, 7)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 40)
    y[y == 2] = 3  # class 2 has no row
    expected = np.zeros((5, 7), np.float32)
    np.add.at(expected, y, rows)
    sums = class_sums(rows, y, 5)
    assert isinstance(sums, np.ndarray) and sums.dtype == np.float32
    np.testing.assert_allclose(sums, expected, atol=1e-5)
    assert not sums[[2, 4]].any()


def test_unlabelled_pool_sets_the_centre():
    support = np.eye(3, dtype=np.float32)
    pool = np.full((10, 3), 5.0, np.float32)
    model = PrototypeClassifier().fit(support, [0, 1, 2], unlabelled=pool)
    np.testing.assert_allclose(model.centre_, [5, 5, 5])


def test_cosine_matches_the_direct_formula_without_materialising_centred_queries():
    rng = np.random.default_rng(0)
    support, queries = rng.normal(size=(6, 16)), rng.normal(size=(50, 16))
    model = PrototypeClassifier().fit(support, [0, 0, 1, 1, 2, 2])
    direct = l2_normalise(queries - model.centre_) @ model.prototypes_.T
    np.testing.assert_allclose(model.cosine(queries), direct, atol=1e-5)


def test_scores_are_softmax_of_negative_squared_distance_with_a_none_option():
    model = PrototypeClassifier(temperature=0.5, reject_similarity=0.0)
    model.fit(np.array([[1, 0], [-1, 0]], np.float32), ["left", "right"], unlabelled=np.zeros((1, 2)))
    scores = model.predict(np.array([[1, 0]], np.float32))
    logits = np.array([0.0, -4.0, -2.0]) / 0.5  # d² to left, right, and the none option
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(scores[0], expected[:2], rtol=1e-5)
    assert scores.sum() < 1


def test_nearest_prototype_wins_on_separated_clusters():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 5
    support = np.repeat(centres, 3, axis=0) + rng.normal(size=(12, 32)) * 0.3
    queries = np.repeat(centres, 10, axis=0) + rng.normal(size=(40, 32)) * 0.3
    model = PrototypeClassifier().fit(support, np.repeat(["w", "x", "y", "z"], 3), unlabelled=queries)
    predicted = model.classes_[model.predict(queries).argmax(axis=1)]
    assert (predicted == np.repeat(["w", "x", "y", "z"], 10)).all()


def test_something_unlike_every_class_is_unassigned_not_100_percent():
    rng = np.random.default_rng(2)
    catalog = rng.normal(size=(200, 256))
    support = np.vstack([catalog[0] + rng.normal(size=(3, 256)) * 0.1, catalog[1] + rng.normal(size=(3, 256)) * 0.1])
    model = PrototypeClassifier().fit(support, ["a"] * 3 + ["b"] * 3, unlabelled=catalog)
    stranger = catalog[100:101]
    best, confidence = decide(model.predict(stranger), threshold=0.5)
    assert best[0] == UNASSIGNED and confidence[0] < 0.5
    best, confidence = decide(model.predict(catalog[:1]), threshold=0.5)
    assert best[0] == 0 and confidence[0] > 0.5


def test_one_category_alone_still_rejects_most_unrelated_items():
    rng = np.random.default_rng(3)
    catalog = rng.normal(size=(1000, 128))
    support = catalog[0] + rng.normal(size=(2, 128)) * 0.2
    model = PrototypeClassifier().fit(support, ["only", "only"], unlabelled=catalog)
    best, _ = decide(model.predict(catalog[1:]), threshold=0.5)
    assert (best == UNASSIGNED).mean() > 0.8  # one standard deviation above background: ~84%
    assert model.predict(catalog[:1])[0, 0] > 0.9


def test_rejection_level_is_calibrated_on_the_catalog_background():
    rng = np.random.default_rng(5)
    catalog = rng.normal(size=(500, 64))
    model = PrototypeClassifier(reject_sigmas=1.0).fit(catalog[:4], [0, 0, 1, 1], unlabelled=catalog)
    background = model.cosine(catalog)
    assert model.reject_similarity_ == pytest.approx(background.mean() + background.std(), rel=1e-4)


def test_imbalanced_shots_do_not_pull_predictions_to_the_big_class():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(2, 32)) * 3
    support = np.vstack([centres[0] + rng.normal(size=(20, 32)) * 0.5, centres[1] + rng.normal(size=(2, 32)) * 0.5])
    queries = np.vstack([centres[0] + rng.normal(size=(50, 32)) * 0.5, centres[1] + rng.normal(size=(50, 32)) * 0.5])
    model = PrototypeClassifier().fit(support, ["big"] * 20 + ["small"] * 2, unlabelled=queries)
    predicted = model.classes_[model.predict(queries).argmax(axis=1)]
    assert (predicted[50:] == "small").mean() > 0.9


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.5, 0.3], [0.6, 0.2, 0.15]])
    index, values = top_k(scores, 2)
    assert index.tolist() == [[1, 2], [0, 1]]
    np.testing.assert_allclose(values, [[0.5, 0.3], [0.6, 0.2]])


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown method"):
        make_method("nope")
