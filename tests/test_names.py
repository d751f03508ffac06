"""Category names as examples: zero-shot, the prior fading with examples, rename, concepts."""
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from protoshelf.core.classify import CatalogClassifier
from protoshelf.core.cli import main
from protoshelf.core.fusion import LateFusion, ModalFeatures
from protoshelf.core.names import NameEncoder, concept_vectors, readable
from protoshelf.core.text import TEXT_EMBEDDING
from conftest import DEMO, seed_titles




def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FakeText:
    """A title model that knows a few words: each is a direction."""

    def __init__(self, words):
        self.words = words
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return unit([self.words[t] for t in texts])


def test_folder_names_read_as_words():
    assert readable("running-shoes") == "running shoes"
    assert readable("  hand_tools ") == "hand tools"


def test_names_alone_classify_titles():
    rng = np.random.default_rng(0)
    directions = unit(rng.normal(size=(3, 16)))
    titles = unit(np.repeat(directions, 10, axis=0) + rng.normal(scale=0.2, size=(30, 16)))
    truth = np.repeat(["a", "b", "c"], 10)
    features = ModalFeatures.of(text=titles)
    model = LateFusion("prototypes", names=dict(zip("abc", directions))).fit(
        features.take([]), [], unlabelled=features
    )
    predicted = model.classes_[model.predict(features).argmax(axis=1)]
    assert (predicted == truth).mean() > 0.9


def test_the_names_share_fades_as_examples_come_in():
    rng = np.random.default_rng(1)
    truth_directions = unit(rng.normal(size=(2, 16)))
    misleading = {"a": truth_directions[1], "b": truth_directions[0]}  # names that point the wrong way
    x = unit(np.repeat(truth_directions, 20, axis=0) + rng.normal(scale=0.3, size=(40, 16)))
    y = np.repeat(["a", "b"], 20)
    features = ModalFeatures.of(text=x)
    few = np.r_[0, 20]
    many = np.r_[0:10, 20:30]
    accuracy = {}
    for label, support in (("one", few), ("ten", many)):
        model = LateFusion("prototypes", names=misleading).fit(features.take(support), y[support], unlabelled=features)
        accuracy[label] = (model.classes_[model.predict(features).argmax(axis=1)] == y).mean()
    assert accuracy["ten"] > 0.9 > accuracy["one"] - 0.01


def test_catalog_predicts_from_a_new_category_name_and_refits_on_rename(store, tmp_path):
    rng = np.random.default_rng(2)
    words = {w: d for w, d in zip(["fruit", "music", "tools"], unit(rng.normal(size=(3, 8))))}
    ids = seed_titles(store, [f"t{i}" for i in range(12)])
    kinds = ["fruit"] * 6 + ["music"] * 6
    titles = unit(np.array([words[k] for k in kinds]) + rng.normal(scale=0.1, size=(12, 8)))
    store.save_embeddings(TEXT_EMBEDDING, ids, titles)
    fruit = store.create_category("fruit")
    store.create_category("music")
    fake = FakeText(words)
    classifier = CatalogClassifier(store, names=NameEncoder(encoder=fake))
    predictions = classifier.run({}, modality="text")  # no example at all
    named = {c.id: c.name for c in store.categories()}
    predicted = [named.get(int(c)) for c in predictions.classes[predictions.scores.argmax(axis=1)]]
    assert predicted == kinds
    store.rename_category(fruit, "tools")  # now no item looks like the name
    renamed = classifier.run({}, modality="text")
    before = predictions.scores[:6, list(predictions.classes).index(fruit)].mean()
    assert renamed.scores[:6, list(renamed.classes).index(fruit)].mean() < before / 2
    assert fake.calls[-1] == ["tools"]  # only the new name was embedded
    assert CatalogClassifier(store).run({}, modality="text") is None  # without names: nothing to learn from


def test_concept_vectors_average_the_likely_class_names():
    class_vectors = unit(np.eye(1000, 8, dtype=np.float32) + 0.01)
    head = torch.nn.Linear(4, 1000)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[7, 0] = 50.0  # feature 0 means ImageNet class 7
    concepts = concept_vectors(np.array([[1, 0, 0, 0]], np.float32), head, class_vectors)
    assert np.allclose(concepts[0], class_vectors[7], atol=1e-3)


def test_evaluate_zero_shots_from_folder_names(tmp_path, capsys):
    tree = tmp_path / "tree"
    for folder, files in {
        "fruit": ["banana", "red_apple", "grapes", "cherries", "lemon"],
        "musical-instrument": ["guitar", "violin", "trumpet", "banjo", "accordion"],
    }.items():
        (tree / folder).mkdir(parents=True)
        for name in files:
            shutil.copy(DEMO / "images" / f"{name}.png", tree / folder / f"{name}.png")
    argv = ["evaluate", str(tree), "--shots", "0", "--episodes", "1", "--cache", str(tmp_path / "c.sqlite"),
            "--device", "cpu", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["shots"] == 0 and result["names"] is True
    assert result["accuracy"] >= 0.8  # ImageNet knows bananas and violins
    assert {"ece", "precision_at_threshold", "coverage_at_threshold"} <= set(result)
    assert main([*argv, "--no-names"]) == 2  # nothing to predict from


def named_directions(rng, classes: int, per_class: int, name_noise: float):
    """Titles around class directions, and names that point at them through `name_noise`."""
    directions = unit(rng.normal(size=(classes, 32)))
    x = unit(np.repeat(directions, per_class, axis=0) + rng.normal(scale=0.35, size=(classes * per_class, 32)))
    names = unit(directions + rng.normal(scale=name_noise, size=directions.shape))
    return x, np.repeat(np.arange(classes), per_class), dict(zip(range(classes), names))


def fitted_name_share(x, y, names, shots):
    support = np.concatenate([np.flatnonzero(y == c)[:shots] for c in np.unique(y)])
    features = ModalFeatures.of(text=x)
    model = LateFusion("prototypes", names=names).fit(features.take(support), y[support], unlabelled=features)
    return model.name_share("text", shots)


def test_the_chosen_name_weight_fades_with_examples():
    rng = np.random.default_rng(4)
    x, y, names = named_directions(rng, classes=12, per_class=20, name_noise=0.3)
    shares = [fitted_name_share(x, y, names, shots) for shots in (2, 5, 15)]
    assert shares[0] > shares[1] > shares[2]
    assert shares[0] >= 0.2 and shares[2] < 0.15


def test_a_useless_name_gets_a_small_weight():
    rng = np.random.default_rng(5)
    x, y, _ = named_directions(rng, classes=12, per_class=20, name_noise=0.3)
    useless = dict(zip(range(12), unit(rng.normal(size=(12, 32)))))  # points nowhere in particular
    assert fitted_name_share(x, y, useless, 5) < 0.1


def test_without_names_concepts_stay_out_until_held_out_examples_say_otherwise():
    rng = np.random.default_rng(6)
    image = rng.normal(size=(30, 8)).astype(np.float32)
    concept = unit(rng.normal(size=(30, 8)))
    y = np.repeat(np.arange(3), 10)
    features = ModalFeatures.of(image=image, concept=concept)
    one_shot = features.take([0, 10, 20])
    plain = LateFusion("prototypes").fit(one_shot, y[[0, 10, 20]], unlabelled=features)
    assert plain.balance_ == {"image": 1.0, "concept": 0.0}
    named = LateFusion("prototypes", names=dict(zip(range(3), concept[[0, 10, 20]]))).fit(
        one_shot, y[[0, 10, 20]], unlabelled=features
    )
    assert named.balance_["concept"] > 0
