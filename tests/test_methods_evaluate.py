"""Every method through `protoshelf evaluate` and `classify`: --method, --list-methods, --ways,
--meta-train (disjoint categories only), fine-tuning per episode, and "auto"."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import write_image
from protoshelf.core.classify import CatalogClassifier, typical_shots
from protoshelf.core.cli import main
from protoshelf.core.evaluate import EmbeddedTree, Image, sample_episode
from protoshelf.core.fusion import ModalFeatures
from protoshelf.core.methods import feature_method_names, method_names, recommended_method

COLOURS = {"reds": (220, 30, 30), "greens": (30, 200, 40), "blues": (30, 40, 220)}
OTHERS = {"yellows": (220, 220, 30), "cyans": (30, 210, 210), "purples": (150, 30, 160)}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tree(root, colours, per_class=4):
    for name, colour in colours.items():
        for i in range(per_class):
            write_image(root / name / f"{i}.png", colour=tuple(max(0, c - 12 * i) for c in colour), size=(40, 40))
    return root


def run_json(capsys, *argv) -> dict:
    assert main(["evaluate", *map(str, argv), "--device", "cpu", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_methods_prints_one_name_a_line(capsys):
    assert main(["evaluate", "--list-methods"]) == 0
    assert capsys.readouterr().out.split() == method_names()
    assert {"prototypes", "linear-probe", "transductive", "meta-maml", "matching", "relation", "reptile",
            "finetune", "auto"} <= set(method_names())


def test_ways_draws_that_many_categories_per_episode():
    images = [Image(c, f"{c}/{i}.png", r) for r, (c, i) in enumerate((c, i) for c in "abcde" for i in range(3))]
    tree = EmbeddedTree(images, ModalFeatures.of(image=np.zeros((len(images), 2), np.float32)))
    support, queries = sample_episode(tree, None, 1, np.random.default_rng(0), ways=2)
    assert len({im.category for im in support}) == 2 and {im.category for im in queries} <= {im.category for im in support}


@pytest.mark.slow
@pytest.mark.parametrize("method", [*feature_method_names(), "auto"])
def test_every_embedding_method_evaluates_from_the_cli(method, tmp_path, capsys):
    tree = make_tree(tmp_path / "tree", COLOURS)
    result = run_json(capsys, tree, "--method", method, "--shots", 2, "--episodes", 2, "--cache", tmp_path / "c.sqlite")
    assert result["method"] == (recommended_method(2) if method == "auto" else method)
    assert result["accuracy"] >= 0.6 and result["fit_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["meta-maml", "matching", "relation", "reptile"])
def test_meta_train_learns_from_a_disjoint_tree_and_refuses_overlap(method, tmp_path, capsys):
    tree = make_tree(tmp_path / "tree", COLOURS)
    others = make_tree(tmp_path / "others", OTHERS)
    cache = tmp_path / "c.sqlite"
    result = run_json(capsys, tree, "--method", method, "--meta-train", others,
                      "--shots", 1, "--episodes", 2, "--cache", cache)
    assert result["method"] == method and result["accuracy"] >= 0.6

    def refused(method, meta_tree) -> str:
        argv = ["evaluate", str(tree), "--method", method, "--meta-train", str(meta_tree), "--cache", str(cache)]
        assert main([*argv, "--device", "cpu"]) == 2
        return capsys.readouterr().err

    assert "disjoint" in refused(method, tree)
    assert "does not meta-train" in refused("prototypes", others)


def test_finetune_evaluates_by_fine_tuning_on_each_episode(tmp_path, monkeypatch):
    from protoshelf.core.evaluate import evaluate_folder
    from protoshelf.core.methods import finetune as finetuning
    from protoshelf.core.methods.finetune import FineTuneConfig, FineTuning

    tuned, embedded_with = [], []
    real_finetune, real_embed = finetuning.finetune, finetuning.embed_images

    def spy_finetune(base, images, labels, *args, **kwargs):
        result = real_finetune(base, images, labels, *args, **kwargs)
        tuned.append((len(images), len(set(labels)), result.backbone))
        return result

    monkeypatch.setattr(finetuning, "finetune", spy_finetune)
    monkeypatch.setattr(finetuning, "embed_images",
                        lambda extractor, images: embedded_with.append(extractor.backbone) or real_embed(extractor, images))
    tree = make_tree(tmp_path / "tree", COLOURS, per_class=3)
    result = evaluate_folder(
        tree, shots=1, episodes=2, ways=2, method="finetune", device="cpu", cache=tmp_path / "c.sqlite",
        adapter=FineTuning(FineTuneConfig(epochs=1, batch_size=2)),
    )
    assert result.method == "finetune" and result.ways == 2 and result.episodes == 2 and result.fit_seconds > 0
    assert [(images, ways) for images, ways, _ in tuned] == [(2, 2), (2, 2)]  # one fine-tune per episode
    first, second = tuned[0][2], tuned[1][2]
    assert first is not second and embedded_with == [first, first, second, second]  # support, then queries


def test_auto_picks_a_method_for_the_catalogs_typical_shots(store):
    from conftest import add_items

    rng = np.random.default_rng(0)
    ids = np.asarray(add_items(store, 30))
    centres = rng.normal(size=(3, 8))
    store.save_embeddings("m", ids, centres[np.arange(30) % 3] + 0.1 * rng.normal(size=(30, 8)))
    categories = [store.ensure_category(n) for n in "abc"]
    labels = {int(i): categories[k % 3] for k, i in enumerate(ids[:6])}
    assert typical_shots(list(labels.values())) == 2
    predictions = CatalogClassifier(store, "m").run(labels, method="auto", modality="image")
    assert predictions.method == recommended_method(2)
    assert (predictions.category_ids == np.array([categories[k % 3] for k in range(30)])).all()
