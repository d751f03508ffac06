"""Fine-tuning: it learns, L2-SP holds it near the pretrained weights, it can be cancelled, and the
catalog ends up embedded under a new backbone name beside the pretrained vectors."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from protoshelf.core.backbones import load_backbone, shared_backbone
from protoshelf.core.methods.finetune import (
    FineTuneConfig,
    finetune,
    finetune_catalog,
    finetuned_backbones,
    is_finetuned,
    l2sp_penalty,
    load_finetuned,
    save_finetuned,
    trainable_modules,
    weights_file,
)
from protoshelf.core.progress import Cancelled
from tests.conftest import write_image


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Convolutions on a busy 2-core runner are many times faster on one thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_backbone():
    """The real EfficientNet-Lite0 at 64 px input, so a training step takes a fraction of a second."""
    backbone = load_backbone()
    backbone.preprocessing = dataclasses.replace(backbone.preprocessing, size=64)
    return backbone


def pictures(colours, per_colour=3, seed=0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for name, colour in colours.items():
        for _ in range(per_colour):
            pixels = np.clip(np.array(colour) + rng.integers(-25, 25, (40, 40, 3)), 0, 255)
            images.append(Image.fromarray(pixels.astype(np.uint8)))
            labels.append(name)
    return images, labels


COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


def distance_from_start(tuned, original, blocks=1) -> float:
    new = [p for m in trainable_modules(tuned, blocks).values() for p in m.parameters()]
    old = [p for m in trainable_modules(original, blocks).values() for p in m.parameters()]
    return l2sp_penalty([p.cpu() for p in new], [p.cpu() for p in old]).sqrt().item()


def test_fine_tuning_lowers_the_training_loss_and_leaves_the_original_alone(small_backbone):
    """Without augmentation the loss is a deterministic function of the weights: it must fall."""
    images, labels = pictures(COLOURS, per_colour=2)
    before = copy.deepcopy(small_backbone.state_dict())
    config = FineTuneConfig(epochs=6, batch_size=4, l2sp=0.0, augment=False)
    result = finetune(small_backbone, images, labels, config, device="cpu")
    assert len(result.losses) == 6
    assert all(b < a for a, b in zip(result.losses, result.losses[1:])), result.losses
    assert result.losses[-1] < 0.8 * result.losses[0], result.losses
    assert all(torch.equal(before[k], v) for k, v in small_backbone.state_dict().items())
    assert distance_from_start(result.backbone, small_backbone) > 0


def test_l2sp_keeps_the_weights_nearer_the_pretrained_ones_as_lambda_grows(small_backbone):
    images, labels = pictures(COLOURS, per_colour=2)
    distances = [
        distance_from_start(
            finetune(small_backbone, images, labels, FineTuneConfig(epochs=4, batch_size=4, l2sp=lam), "cpu").backbone,
            small_backbone,
        )
        for lam in (0.0, 10.0, 100.0)
    ]
    assert distances[0] > distances[1] > distances[2], distances


def test_with_three_shots_a_held_out_split_picks_the_epoch(small_backbone):
    images, labels = pictures(COLOURS, per_colour=3)
    result = finetune(small_backbone, images, labels, FineTuneConfig(epochs=2, batch_size=4), device="cpu")
    assert len(result.held_out_losses) == 3  # the untrained start, then one per epoch
    assert result.held_out_losses[result.best_epoch] == min(result.held_out_losses)


def test_fine_tuning_is_cancelled_from_its_progress_callback(small_backbone):
    images, labels = pictures(COLOURS, per_colour=2)
    steps = []

    def cancel(done, total):
        steps.append(done)
        if done >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        finetune(small_backbone, images, labels, FineTuneConfig(epochs=5, batch_size=2), "cpu", cancel)
    assert steps == [0, 1]


def test_saved_weights_reload_to_the_same_features(small_backbone, tmp_path):
    images, labels = pictures(COLOURS, per_colour=2)
    result = finetune(small_backbone, images, labels, FineTuneConfig(epochs=1, batch_size=4), device="cpu")
    name = save_finetuned(result.backbone, "efficientnet_lite0", FineTuneConfig(), tmp_path)
    assert is_finetuned(name) and weights_file(name, tmp_path).is_file()
    reloaded = load_finetuned(name, tmp_path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(reloaded.features(x), result.backbone.cpu().features(x), atol=1e-5)
        assert not torch.allclose(reloaded.features(x), small_backbone.features(x), atol=1e-3)


def test_finetune_catalog_reembeds_under_a_new_name_and_keeps_the_pretrained_vectors(store, tmp_path, extractor):
    from protoshelf.core.embedding import embed_catalog
    from protoshelf.core.importer import import_images

    paths = [write_image(tmp_path / f"{n}{i}.png", c, size=(32, 32)) for n, c in COLOURS.items() for i in range(2)]
    paths.append(write_image(tmp_path / "unlabelled.png", (200, 40, 40), size=(32, 32)))
    report = import_images(store, paths)
    embed_catalog(store, "efficientnet_lite0", extractor=extractor)
    red, blue = store.ensure_category("red"), store.ensure_category("blue")
    store.set_labels([report.ids_by_path[str(p.resolve())] for p in paths[:2]], red)
    store.set_labels([report.ids_by_path[str(p.resolve())] for p in paths[2:4]], blue)
    shared = shared_backbone()  # what embedding and the concept head use: fine-tuning must train its own
    before = {key: tensor.clone() for key, tensor in shared.state_dict().items()}
    seen = []
    name = finetune_catalog(
        store, config=FineTuneConfig(epochs=1, batch_size=4), device="cpu",
        progress=lambda d, t: seen.append((d, t)), directory=tmp_path / "weights",
    )
    assert name.startswith("efficientnet_lite0+ft")
    assert shared_backbone() is shared is extractor.backbone
    assert all(torch.equal(before[key], tensor) for key, tensor in shared.state_dict().items())
    assert set(store.embedding_models()) >= {"efficientnet_lite0", name}
    assert len(store.load_embeddings(name)) == len(store.load_embeddings("efficientnet_lite0")) == 5
    assert seen[-1][0] == seen[-1][1]


def test_a_cancelled_finetune_catalog_saves_no_weights(store, tmp_path):
    from protoshelf.core.importer import import_images

    paths = [write_image(tmp_path / f"{n}{i}.png", c, size=(32, 32)) for n, c in COLOURS.items() for i in range(2)]
    report = import_images(store, paths)
    for name, rows in (("red", paths[:2]), ("blue", paths[2:])):
        store.set_labels([report.ids_by_path[str(p.resolve())] for p in rows], store.ensure_category(name))

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        finetune_catalog(store, config=FineTuneConfig(epochs=1), device="cpu", progress=cancel, directory=tmp_path / "w")
    assert not (tmp_path / "w").exists()
    assert store.embedding_models() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fine_tuning_runs_with_mixed_precision_on_cuda(small_backbone):
    images, labels = pictures(COLOURS, per_colour=2)
    result = finetune(small_backbone, images, labels, FineTuneConfig(epochs=2, batch_size=4), device="cuda")
    assert all(np.isfinite(result.losses))


def test_when_no_epoch_beats_the_pretrained_weights_finetune_catalog_keeps_them(store, tmp_path, extractor):
    from protoshelf.core.embedding import embed_catalog
    from protoshelf.core.importer import import_images

    paths = [write_image(tmp_path / f"{n}{i}.png", c, size=(32, 32)) for n, c in COLOURS.items() for i in range(3)]
    report = import_images(store, paths)
    embed_catalog(store, "efficientnet_lite0", extractor=extractor)
    for k, name in enumerate(COLOURS):
        category = store.ensure_category(name)
        store.set_labels([report.ids_by_path[str(p.resolve())] for p in paths[3 * k : 3 * k + 3]], category)
    frozen = FineTuneConfig(epochs=1, batch_size=4, lr=0.0, head_lr=0.0)  # nothing can improve
    name = finetune_catalog(store, config=frozen, device="cpu", directory=tmp_path / "weights")
    assert name == "efficientnet_lite0"
    assert store.embedding_models() == ["efficientnet_lite0"]
    assert finetuned_backbones(tmp_path / "weights") == []


def test_saved_fine_tuned_backbones_stay_listed(small_backbone, tmp_path):
    images, labels = pictures(COLOURS, per_colour=2)
    result = finetune(small_backbone, images, labels, FineTuneConfig(epochs=1, batch_size=4), device="cpu")
    name = save_finetuned(result.backbone, "efficientnet_lite0", FineTuneConfig(), tmp_path)
    assert finetuned_backbones(tmp_path) == [name]
