"""The packaged backbone is wired right, and catalog embedding is batched and resumable."""
from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import DEMO, no_network, write_image
from protoshelf.core.backbones import BackboneError, imagenet_classes, load_backbone, resolve_device
from protoshelf.core.embedding import _glibc, decoded_batches, embed_catalog, to_model_input
from protoshelf.core.images import open_image
from protoshelf.core.importer import import_images
from protoshelf.core.progress import Cancelled
from protoshelf.core.store import Store


def top_classes(extractor, name: str, k: int) -> list[str]:
    image = open_image(DEMO / "images" / f"{name}.png")
    x = to_model_input(image, extractor.backbone.preprocessing)[None].float()
    with torch.inference_mode():
        logits = extractor.backbone((x - extractor.mean) / extractor.std)
    return [imagenet_classes()[i] for i in logits[0].topk(k).indices]


@pytest.mark.parametrize("picture,label", [("strawberry", "strawberry"), ("broccoli", "broccoli"), ("teapot", "teapot")])
def test_imagenet_top_classes_of_known_pictures_are_sensible(extractor, picture, label):
    """Among the top 3 of 1000: on 64 px emoji the runner-up is close (whole picture: broccoli 0.10
    after maraca 0.17, teapot 0.19 after whiskey jug 0.33), and a broken input never gets there."""
    assert label in top_classes(extractor, picture, 3)


def test_features_are_not_constant_and_separate_pictures(extractor):
    images = [open_image(DEMO / "images" / f"{n}.png") for n in ("banana", "violin", "hammer", "socks")]
    features = extractor.embed_images(images)
    assert features.shape == (4, 1280) and features.dtype == np.float32
    assert features.std(axis=0).mean() > 0.05
    normed = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert (normed @ normed.T)[np.triu_indices(4, 1)].max() < 0.95


def test_the_default_backbone_loads_from_its_package_without_the_network(extractor):
    with no_network():
        backbone = load_backbone()
    for loaded, reference in zip(backbone.state_dict().values(), extractor.backbone.state_dict().values()):
        assert torch.equal(loaded, reference)


def test_unknown_and_undownloadable_backbones_say_what_to_do():
    with pytest.raises(BackboneError, match="Unknown backbone"):
        load_backbone("resnet9000")
    with pytest.raises(BackboneError, match="allow downloads"):
        load_backbone("timm:resnet50")


def test_auto_device_is_cpu_without_a_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in {expected, "mps"}


def test_embedding_is_resumable_and_skips_items_already_done(store, tmp_path, extractor):
    for i in range(5):
        write_image(tmp_path / f"{i}.png", colour=(40 * i, 100, 200 - 30 * i))
    import_images(store, [tmp_path])
    calls = []

    def cancel_after_first_batch(done, total):
        calls.append(done)
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        embed_catalog(store, extractor=extractor, batch_size=2, workers=0, progress=cancel_after_first_batch)
    assert len(store.load_embeddings("efficientnet_lite0")) == 2
    report = embed_catalog(store, extractor=extractor, batch_size=2, workers=0)
    assert report.embedded == 3
    assert len(store.load_embeddings("efficientnet_lite0")) == 5
    assert embed_catalog(store, extractor=extractor).embedded == 0


def test_workers_decode_while_the_backbone_takes_whole_batches(store, tmp_path, extractor, monkeypatch):
    """The GPU must not idle while images are drawn one by one: decoding runs in threads ahead of
    the backbone, which sees full batches in order, with the same vectors as decoding in between."""
    for i in range(10):
        write_image(tmp_path / f"{i}.png", colour=(25 * i, 100, 200 - 20 * i))
    import_images(store, [tmp_path])
    batches = []
    original = type(extractor).__call__
    monkeypatch.setattr(type(extractor), "__call__", lambda self, x: batches.append(len(x)) or original(self, x))
    assert embed_catalog(store, extractor=extractor, batch_size=4, workers=2).embedded == 10
    assert batches == [4, 4, 2]
    in_workers = store.load_embeddings("efficientnet_lite0")
    other = Store(tmp_path / "again.sqlite")
    import_images(other, [tmp_path])
    embed_catalog(other, extractor=extractor, batch_size=4, workers=0)
    np.testing.assert_allclose(other.load_embeddings("efficientnet_lite0").matrix, in_workers.matrix, atol=1e-5)
    other.close()


class CountedItems:
    """A dataset that notes which thread decoded each item, taking `seconds` for each."""

    def __init__(self, size: int, seconds: float = 0.0):
        self.size = size
        self.seconds = seconds
        self.threads: list[str] = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        time.sleep(self.seconds)
        self.threads.append(threading.current_thread().name)
        return index


def test_batches_come_in_order_from_decoding_threads():
    items = CountedItems(50)
    assert list(decoded_batches(items, list, batch_size=4, threads=3)) == [list(range(i, min(i + 4, 50))) for i in range(0, 50, 4)]
    assert len(items.threads) == 50 and all(name.startswith("protoshelf-decode") for name in items.threads)
    caller = CountedItems(5)
    assert list(decoded_batches(caller, list, batch_size=2, threads=0)) == [[0, 1], [2, 3], [4]]
    assert set(caller.threads) == {threading.current_thread().name}


def test_decoding_stays_a_few_batches_ahead_of_the_backbone():
    """A catalog of a million items must not be decoded into memory ahead of a slow backbone."""
    items = CountedItems(1000)
    batches = decoded_batches(items, list, batch_size=10, threads=2, ahead=3)
    next(batches)
    time.sleep(0.3)
    assert len(items.threads) == (1 + 3) * 10  # the batch taken and three ahead
    batches.close()


def test_a_closed_run_leaves_the_batches_not_begun():
    """Cancelling does not wait for the batches decoded ahead: those not begun are dropped."""
    items = CountedItems(1000, seconds=0.02)
    batches = decoded_batches(items, list, batch_size=5, threads=2, ahead=6)
    next(batches)
    batches.close()
    time.sleep(1.0)
    assert len(items.threads) <= 4 * 5  # the first batch and those two threads had begun


def test_missing_originals_are_reported_not_fatal(store, tmp_path, extractor):
    keep = write_image(tmp_path / "keep.png")
    gone = write_image(tmp_path / "gone.png", colour=(0, 0, 255))
    import_images(store, [keep, gone])
    gone.unlink()
    report = embed_catalog(store, extractor=extractor, workers=0)
    assert report.embedded == 1
    assert report.failed == [(str(gone), "file not found")]


@pytest.mark.skipif(_glibc() is None, reason="the malloc settings are glibc's")
def test_batches_reuse_the_memory_of_the_ones_before(extractor):
    """Each batch once faulted its activations in afresh: 5,000 page faults per image, as much
    kernel time as the model's arithmetic."""
    batch = torch.zeros(8, 3, 224, 224, dtype=torch.uint8)
    extractor(batch)
    extractor(batch)
    faults = []
    for _ in range(3):  # the fewest of three: other threads of the test process fault pages too
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        extractor(batch)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    assert min(faults) < 200 * len(batch), faults


def test_timm_is_imported_with_the_collector_paused_and_running_again_after():
    """The collector skips the million objects the import leaves (see import_timm), and a long
    session must not be left without one."""
    code = ("import gc; from protoshelf.core.backbones import import_timm; import_timm(); "
            "print(gc.isenabled(), gc.get_freeze_count() > 100_000)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert shown.split() == ["True", "True"]


def test_nothing_to_embed_builds_no_backbone(store, tmp_path, extractor, monkeypatch):
    import_images(store, [write_image(tmp_path / "one.png")])
    embed_catalog(store, extractor=extractor, workers=0)
    monkeypatch.setattr("protoshelf.core.embedding.shared_backbone", lambda name: pytest.fail("built a backbone for nothing"))
    assert embed_catalog(store, device="cpu").embedded == 0


def test_an_extractor_on_another_device_leaves_the_shared_backbone_on_the_cpu(extractor):
    """The concept head reads the shared backbone on the CPU while a GPU embeds with its own copy."""
    import torch

    from protoshelf.core.backbones import shared_backbone
    from protoshelf.core.embedding import pretrained_extractor

    shared = shared_backbone()
    elsewhere = pretrained_extractor("efficientnet_lite0", torch.device("meta"))  # any device but the CPU
    assert extractor.backbone is shared and elsewhere.backbone is not shared
    assert next(elsewhere.backbone.parameters()).device.type == "meta"
    assert {p.device.type for p in shared.parameters()} == {"cpu"}
