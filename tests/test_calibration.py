"""Calibrated confidence on synthetic sets where the right answer is known."""
import numpy as np
import pytest

from protoshelf.core.calibration import (
    DEFAULT_TEMPERATURES, Calibrated, catalog_weights, default_temperature, expected_calibration_error, expected_precision,
    fit_temperature,
    precision_coverage, tempered,
)
from protoshelf.core.fusion import LateFusion, ModalFeatures


def blobs(rng, classes: int, per_class: int, dim: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(classes, dim)) * 10
    x = np.repeat(centres, per_class, axis=0) + rng.normal(scale=spread, size=(classes * per_class, dim))
    return x.astype(np.float32), np.repeat(np.arange(classes), per_class)


def calibrated_run(x, y, shots, rng):
    support = np.concatenate([np.flatnonzero(y == c)[:shots] for c in np.unique(y)])
    queries = np.setdiff1d(np.arange(len(y)), support)
    features = ModalFeatures.of(image=x)
    model = Calibrated(lambda: LateFusion("prototypes"), LateFusion.fixed)
    model.fit(features.take(support), y[support], unlabelled=features)
    scores = model.predict(features.take(queries))
    confidence = scores.max(axis=1)
    correct = model.classes_[scores.argmax(axis=1)] == y[queries]
    return model, confidence, correct


def test_a_separable_set_comes_out_sure_and_right():
    rng = np.random.default_rng(0)
    x, y = blobs(rng, classes=5, per_class=40, dim=16, spread=0.1)
    model, confidence, correct = calibrated_run(x, y, shots=5, rng=rng)
    assert model.fitted_
    assert correct.all()
    assert confidence.min() > 0.95
    assert expected_calibration_error(confidence, correct) < 0.05


def test_random_labels_come_out_near_chance_confidence():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=400)
    model, confidence, correct = calibrated_run(x, y, shots=25, rng=rng)
    assert model.temperature_ > 1  # the raw prototype scores were far too sure
    assert confidence.mean() < 0.4  # chance is 1/4
    assert expected_calibration_error(confidence, correct) < 0.1


def test_temperature_undoes_a_known_overconfidence():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5000, 5)) * 2
    truth = np.array([rng.choice(5, p=p) for p in np.exp(logits) / np.exp(logits).sum(1, keepdims=True)])
    sharp = np.exp(logits * 3) / np.exp(logits * 3).sum(1, keepdims=True)  # the "model" is 3× too sharp
    scores = sharp * (1 - 1e-6)  # almost no "none"
    temperature, none_offset = fit_temperature(scores, truth)
    assert temperature == pytest.approx(3, rel=0.1)


def test_tempered_keeps_rows_below_one_and_the_ranking():
    scores = np.array([[0.7, 0.2], [0.1, 0.3]], np.float32)
    out = tempered(scores, 2.0)
    assert (out.sum(axis=1) <= 1 + 1e-6).all()
    assert (out.argmax(axis=1) == scores.argmax(axis=1)).all()
    assert out[0, 0] < scores[0, 0]
    assert tempered(scores, 1.0) is not None and np.allclose(tempered(scores, 1.0), scores)


def test_one_example_per_class_has_nothing_to_hold_out():
    rng = np.random.default_rng(3)
    x, y = blobs(rng, classes=3, per_class=10, dim=8, spread=1.0)
    model, _, _ = calibrated_run(x, y, shots=1, rng=rng)
    assert not model.fitted_ and model.temperature_ == 1.0


def test_ece_precision_and_coverage_by_hand():
    confidence = np.array([0.9, 0.9, 0.3, 0.3])
    correct = np.array([1, 0, 0, 0])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)
    assert precision_coverage(confidence, correct, 0.5) == (0.5, 0.5)
    assert expected_precision(confidence, 0.5) == pytest.approx(0.9)


def test_lone_examples_held_out_feed_the_quality_view_but_not_the_temperature():
    rng = np.random.default_rng(4)
    x, y = blobs(rng, classes=4, per_class=10, dim=8, spread=1.0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = {c: x[y == c].mean(axis=0) for c in range(4)}
    support = np.array([0, 10, 20, 30])
    features = ModalFeatures.of(text=x)
    model = Calibrated(lambda: LateFusion("prototypes", names=names), LateFusion.fixed, can_hold_out_singletons=True)
    model.fit(features.take(support), y[support], unlabelled=features)
    assert len(model.held_out_[1]) == 4  # each lone example was held out, its class left with the name
    assert not model.fitted_ and model.temperature_ == 1.0 and model.none_offset_ == 0.0


def test_few_held_out_rows_are_shrunk_toward_the_default_temperature():
    rng = np.random.default_rng(5)
    scores = np.eye(3)[rng.integers(0, 3, 6)] * 0.98 + 0.005  # six sure answers…
    truth = (scores.argmax(axis=1) + np.array([0, 0, 0, 0, 1, 2])) % 3  # …two of them wrong
    unshrunk, _ = fit_temperature(scores, truth, prior_rows=0)
    shrunk, _ = fit_temperature(scores, truth)
    assert 1.0 < shrunk < unshrunk


def test_with_nothing_to_hold_out_the_default_temperature_stands():
    rng = np.random.default_rng(3)
    x, y = blobs(rng, classes=3, per_class=10, dim=8, spread=1.0)
    features = ModalFeatures.of(image=x)
    support = np.array([0, 10, 20])
    model = Calibrated(lambda: LateFusion("prototypes"), LateFusion.fixed, default=(3.0, -2.0))
    model.fit(features.take(support), y[support], unlabelled=features)
    assert not model.fitted_
    raw = model.model_.predict(features)
    assert np.allclose(model.predict(features), tempered(raw, 3.0, -2.0))
    assert model.predict(features).max(axis=1).mean() < raw.max(axis=1).mean()  # one example: less sure
    assert default_temperature("prototypes", "image", False, True) == DEFAULT_TEMPERATURES[("image", False, True)] != (1.0, 0.0)
    assert default_temperature("linear-probe", "image", False, True) == (1.0, 0.0)  # fitted for prototypes only


class ScoresAsFeatures:
    """A "method" whose feature rows are its own scores, so the held-out rows' scores are known."""

    def fit(self, support, labels, unlabelled=None, progress=None):
        self.classes_ = np.unique(labels)
        return self

    def predict(self, queries):
        scores = np.empty_like(queries.matrices["image"])
        scores[queries.rows["image"]] = queries.matrices["image"]
        return scores


def lopsided_catalog(rng, rows: int, big_share: float):
    """Rows of category 0's kind (`big_share` of them) have calibrated scores; the rest, which
    lean to categories 1-3, are three times too sure. Truth is drawn from the calibrated odds."""
    classes = 4
    logits = rng.normal(size=(rows, classes))
    big = rng.random(rows) < big_share
    logits[big, 0] += 3.0
    logits[np.flatnonzero(~big), 1 + rng.integers(0, 3, (~big).sum())] += 3.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (p.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1)
    shown = np.exp(logits * np.where(big, 1.0, 3.0)[:, None])
    return (shown / shown.sum(axis=1, keepdims=True) * (1 - 1e-6)).astype(np.float32), truth


def test_held_out_rows_are_weighted_by_their_categorys_share_of_the_catalog():
    catalog = ModalFeatures.of(image=np.array([[0.9, 0.1]] * 5 + [[0.5, 0.5]] * 5, np.float32))  # shares 0.7 : 0.3
    truth = np.array([0, 1, 1, 1])  # held out: shares 0.25 : 0.75

    weights = catalog_weights(ScoresAsFeatures(), catalog, truth, classes=2)

    assert weights == pytest.approx([0.7 / 0.25, 0.3 / 0.75, 0.3 / 0.75, 0.3 / 0.75], rel=1e-6)
    assert catalog_weights(ScoresAsFeatures(), None, truth, classes=2) is None


def test_the_temperature_answers_for_a_lopsided_catalog_not_for_the_balanced_examples():
    """Folds hold out as many examples of each category; a catalog is mostly one category. The
    confidence shown must be right over the catalog."""
    rng = np.random.default_rng(7)
    catalog_scores, catalog_truth = lopsided_catalog(rng, 6000, big_share=0.9)
    examples = np.concatenate([np.flatnonzero(catalog_truth == c)[:12] for c in range(4)])  # 12 per category
    features = ModalFeatures.of(image=catalog_scores)
    queries = np.setdiff1d(np.arange(len(catalog_truth)), examples)

    model = Calibrated(ScoresAsFeatures).fit(features.take(examples), catalog_truth[examples], unlabelled=features)
    held_out, truth, _ = model.held_out_
    balanced = fit_temperature(held_out, truth)

    raw = catalog_scores[queries]
    correct = raw.argmax(axis=1) == catalog_truth[queries]
    ours = expected_calibration_error(tempered(raw, model.temperature_, model.none_offset_).max(axis=1), correct)
    theirs = expected_calibration_error(tempered(raw, *balanced).max(axis=1), correct)
    assert model.temperature_ < balanced[0]  # the big, calibrated category pulls T toward 1
    assert ours < 0.08 < theirs


def test_weights_that_cannot_weigh_are_refused_not_fitted_to_a_default():
    scores = np.array([[0.9, 0.05], [0.2, 0.7], [0.6, 0.3]], np.float32)
    truth = np.array([0, 1, 1])
    for weights in (np.zeros(3), np.array([1.0, np.inf, 1.0]), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(ValueError):
            fit_temperature(scores, truth, weights=weights)
    nowhere = ModalFeatures.of(image=np.zeros((4, 2), np.float32))  # a model that predicts no category anywhere
    assert catalog_weights(ScoresAsFeatures(), nowhere, truth, classes=2) is None
