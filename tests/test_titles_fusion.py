"""Late fusion of image and title scores, on hand-made vectors (no models, no files)."""
from __future__ import annotations

import numpy as np
import pytest

from protoshelf.core.fusion import (
    LateFusion,
    ModalFeatures,
    log_scores,
    normalised,
    pool,
    stratified_folds,
)
from protoshelf.core.methods import METHODS, FewShotMethod
from protoshelf.core.methods.prototypes import PrototypeClassifier
from protoshelf.core.store import Vectors


def clusters(rng, classes: int, per_class: int, dim: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(classes, dim)) * 3
    y = np.repeat(np.arange(classes), per_class)
    return (centres[y] + rng.normal(size=(len(y), dim)) * noise).astype(np.float32), y


def test_pool_is_the_normalised_weighted_geometric_mean():
    p_image = np.array([[0.6, 0.3, 0.1]])
    p_text = np.array([[0.2, 0.7, 0.1]])
    fused = pool([np.log(p_image), np.log(p_text)], [0.25, 0.75])
    expected = p_image**0.25 * p_text**0.75
    np.testing.assert_allclose(fused, expected / expected.sum(), rtol=1e-6)


def test_modalities_that_agree_keep_their_confidence():
    p = np.array([[0.5, 0.2, 0.3], [0.05, 0.05, 0.9]])
    np.testing.assert_allclose(pool([np.log(p), np.log(p)], [0.1, 0.9]), p, rtol=1e-6)


def test_normalisation_divides_out_each_modalitys_scale():
    assert normalised({"image": 0.5, "text": 0.5}, {"image": 2.0, "text": 1.0}) == pytest.approx(
        {"image": 1 / 3, "text": 2 / 3}
    )
    assert normalised({"image": 0.3, "text": 0.7}, {"image": 1.0, "text": 1.0}) == pytest.approx(
        {"image": 0.3, "text": 0.7}
    )


def test_log_scores_put_the_remainder_in_a_none_column_in_the_callers_class_order():
    model = PrototypeClassifier().fit(np.eye(3, 4, dtype=np.float32), ["b", "c", "a"])
    queries = np.eye(3, 4, dtype=np.float32)
    log_p = log_scores(model, queries, np.array(["a", "b", "c"], dtype=object))
    scores = model.predict(queries)
    np.testing.assert_allclose(np.exp(log_p[:, :3]), scores[:, [2, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, atol=1e-5)


def test_align_handles_missing_and_repeated_items():
    image = Vectors(np.array([1, 2, 4]), np.array([[1.0], [2.0], [4.0]], np.float32))
    text = Vectors(np.array([2, 3]), np.array([[20.0], [30.0]], np.float32))
    features = ModalFeatures.align(np.array([4, 2, 3, 2, 9]), {"image": image, "text": text})
    assert features.count == 5
    assert features.rows["image"].tolist() == [0, 1, 3]
    assert features.matrices["image"].ravel().tolist() == [4.0, 2.0, 2.0]
    assert features.rows["text"].tolist() == [1, 2, 3]
    assert features.present().tolist() == [True, True, True, True, False]
    taken = features.take([3, 0])
    assert taken.rows["image"].tolist() == [1, 0]  # position 0 is item 2, position 1 is item 4
    assert taken.matrices["image"].ravel().tolist() == [4.0, 2.0]
    assert taken.has("text").tolist() == [True, False]


def test_align_shares_the_matrix_when_every_row_is_used():
    image = Vectors(np.array([1, 2, 3]), np.ones((3, 2), np.float32))
    features = ModalFeatures.align(np.array([1, 2, 3]), {"image": image})
    assert features.matrices["image"] is image.matrix


def test_items_missing_a_modality_get_the_other_modalitys_scores_exactly():
    rng = np.random.default_rng(0)
    image, y = clusters(rng, 3, 6, 16, 0.5)
    text, _ = clusters(rng, 3, 6, 8, 0.5)
    labels = [f"c{i}" for i in y]
    support = [0, 1, 6, 7, 12, 13]
    queries = ModalFeatures(
        len(y), {"image": image[:12], "text": text[6:]}, {"image": np.arange(12), "text": np.arange(6, 18)}
    )  # items 0-5 lack a title, items 12-17 lack an image
    full = ModalFeatures.of(image=image, text=text)
    fused = LateFusion().fit(full.take(support), [labels[i] for i in support], unlabelled=full)
    scores = fused.predict(queries)

    alone = {
        m: LateFusion().fit(full.only([m]).take(support), [labels[i] for i in support], unlabelled=full.only([m]))
        for m in ("image", "text")
    }
    np.testing.assert_allclose(scores[:6], alone["image"].predict(full.only(["image"]).take(range(6))), atol=1e-5)
    np.testing.assert_allclose(scores[12:], alone["text"].predict(full.only(["text"]).take(range(12, 18))), atol=1e-5)
    both = pool(
        [log_scores(fused.methods_[m], full.matrices[m][6:12], fused.classes_) for m in ("image", "text")],
        [fused.weights_["image"], fused.weights_["text"]],
    )[:, :-1]
    np.testing.assert_allclose(scores[6:12], both, atol=1e-5)


def test_single_modality_fusion_reproduces_the_method():
    rng = np.random.default_rng(1)
    x, y = clusters(rng, 4, 5, 12, 1.0)
    fusion = LateFusion().fit(ModalFeatures.of(image=x[::5]), y[::5], unlabelled=ModalFeatures.of(image=x))
    method = PrototypeClassifier().fit(x[::5], list(y[::5]), unlabelled=x)
    np.testing.assert_allclose(fusion.predict(ModalFeatures.of(image=x)), method.predict(x), atol=1e-5)
    assert fusion.weights_ == {"image": 1.0}


@pytest.mark.parametrize("informative", ["image", "text"])
def test_held_out_log_loss_gives_the_weight_to_the_informative_modality(informative):
    rng = np.random.default_rng(2)
    signal, y = clusters(rng, 5, 5, 16, 0.6)
    noise = rng.normal(size=(len(y), 16)).astype(np.float32)
    matrices = {"image": signal, "text": noise} if informative == "image" else {"image": noise, "text": signal}
    features = ModalFeatures.of(**matrices)
    model = LateFusion().fit(features, y, unlabelled=features)
    assert model.balance_[informative] >= 0.8
    assert model.weights_[informative] > 0.75
    assert sum(model.weights_.values()) == pytest.approx(1.0)


def test_two_useful_modalities_share_the_weight_and_beat_each_alone():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(6), 30)
    centres_a, centres_b = rng.normal(size=(2, 6, 16)) * 1.0
    a = (centres_a[y] + rng.normal(size=(len(y), 16))).astype(np.float32)
    b = (centres_b[y] + rng.normal(size=(len(y), 16))).astype(np.float32)
    features = ModalFeatures.of(image=a, text=b)
    support = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(6)])
    queries = np.setdiff1d(np.arange(len(y)), support)
    accuracy = {}
    for name, feats in (("image", features.only(["image"])), ("text", features.only(["text"])), ("fused", features)):
        model = LateFusion().fit(feats.take(support), y[support], unlabelled=feats)
        predicted = model.classes_[model.predict(feats.take(queries)).argmax(axis=1)]
        accuracy[name] = (predicted == y[queries]).mean()
        if name == "fused":
            assert 0.2 <= model.balance_["image"] <= 0.8
    assert accuracy["fused"] > max(accuracy["image"], accuracy["text"])


def test_one_shot_cannot_hold_out_so_the_modalities_balance_evenly():
    rng = np.random.default_rng(4)
    image, y = clusters(rng, 4, 1, 8, 0.1)
    text, _ = clusters(rng, 4, 1, 8, 0.1)
    model = LateFusion().fit(ModalFeatures.of(image=image, text=text), y)
    assert model.balance_ == {"image": 0.5, "text": 0.5}
    assert model.weights_ == pytest.approx(normalised(model.balance_, model.spreads_))


def test_folds_hold_out_one_example_per_class_and_keep_singletons_in_training():
    fold = stratified_folds(np.array(["a", "a", "a", "b", "c", "c"], dtype=object), 2)
    assert fold.tolist() == [0, 1, 0, -1, 0, 1]
    assert stratified_folds(np.array([1, 2, 3]), 5).tolist() == [-1, -1, -1]


def test_a_modality_missing_a_category_is_left_out_instead_of_guessing():
    rng = np.random.default_rng(5)
    image, y = clusters(rng, 2, 3, 8, 0.3)
    text, _ = clusters(rng, 2, 3, 8, 0.3)
    titled = np.flatnonzero(y == 0)  # no example of class 1 has a title
    support = ModalFeatures(len(y), {"image": image, "text": text[titled]}, {"image": np.arange(len(y)), "text": titled})
    model = LateFusion().fit(support, y)
    assert model.modalities_ == ["image"]
    text_only = ModalFeatures(1, {"text": text[:1]}, {"text": np.array([0])})
    assert model.predict(text_only).tolist() == [[0.0, 0.0]]


def test_zero_weight_still_scores_items_that_only_have_that_modality():
    rng = np.random.default_rng(6)
    image, y = clusters(rng, 3, 3, 8, 0.2)
    text, _ = clusters(rng, 3, 3, 8, 0.2)
    model = LateFusion(weights={"image": 0.0, "text": 1.0}).fit(ModalFeatures.of(image=image, text=text), y)
    image_only = ModalFeatures(len(y), {"image": image}, {"image": np.arange(len(y))})
    predicted = model.classes_[model.predict(image_only).argmax(axis=1)]
    assert (predicted == y).all()


class ReversedNearestNeighbour(FewShotMethod):
    """A different method with its own class order, to show fusion needs only fit/predict."""

    name = "test-nearest"

    description = "test"

    def learn(self, support, y, unlabelled, progress):
        self.classes_ = self.classes_[::-1]
        self.support_, self.index_ = support, len(self.classes_) - 1 - y

    def predict(self, queries):
        distances = ((queries[:, None, :] - self.support_[None]) ** 2).sum(-1)
        scores = np.zeros((len(queries), len(self.classes_)))
        scores[np.arange(len(queries)), self.index_[distances.argmin(axis=1)]] = 0.9
        return scores


def test_fusion_composes_with_any_registered_method(monkeypatch):
    monkeypatch.setitem(METHODS, ReversedNearestNeighbour.name, ReversedNearestNeighbour)
    rng = np.random.default_rng(7)
    image, y = clusters(rng, 4, 4, 8, 0.3)
    text, _ = clusters(rng, 4, 4, 8, 0.3)
    labels = np.array(["w", "x", "y", "z"], dtype=object)[y]
    features = ModalFeatures.of(image=image, text=text)
    support = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(4)])
    model = LateFusion(ReversedNearestNeighbour.name).fit(features.take(support), labels[support])
    assert set(model.methods_) == {"image", "text"}
    predicted = model.classes_[model.predict(features).argmax(axis=1)]
    assert (predicted == labels).mean() == 1.0


def test_no_support_item_with_both_modalities_keeps_the_even_balance():
    rng = np.random.default_rng(8)
    image, y = clusters(rng, 2, 4, 8, 0.2)
    text, _ = clusters(rng, 2, 4, 8, 0.2)
    image_rows, text_rows = np.array([0, 1, 4, 5]), np.array([2, 3, 6, 7])
    support = ModalFeatures(len(y), {"image": image[image_rows], "text": text[text_rows]},
                            {"image": image_rows, "text": text_rows})
    model = LateFusion().fit(support, y)
    assert model.balance_ == {"image": 0.5, "text": 0.5}


def test_the_temperature_key_is_what_the_features_hold_not_what_was_asked():
    """'fused' asked on a catalog without titles is pictures alone, and calibrates as such."""
    a, b = np.ones((4, 3), np.float32), np.ones((4, 5), np.float32)
    assert ModalFeatures.of(image=a).user_modality() == "image"
    assert ModalFeatures.of(image=a, concept=b).user_modality() == "image"
    assert ModalFeatures.of(text=b).user_modality() == "text"
    assert ModalFeatures.of(image=a, text=b).user_modality() == "fused"
