"""The packaged backbone is wired right, and catalog embedding is batched and resumable."""
from __future__ import annotations

import copy
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import DEMO, no_network, wait_for, write_image
from protoshelf.core.backbones import BackboneError, imagenet_classes, load_backbone, resolve_device
from protoshelf.core.embedding import FeatureExtractor, _glibc, decoded_batches, embed_catalog, to_model_input
from protoshelf.core.images import open_image
from protoshelf.core.importer import import_images
from protoshelf.core.model_input import CatalogImages
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


def test_the_extractor_runs_a_folded_copy_and_gives_the_backbones_features(extractor):
    """Folding the batch norms changes no vector beyond rounding, so stored ones stay valid."""
    images = [open_image(DEMO / "images" / f"{n}.png") for n in ("banana", "violin", "teapot")]
    batch = torch.stack([to_model_input(image, extractor.backbone.preprocessing) for image in images])
    with torch.inference_mode():
        expected = extractor.backbone.features(((batch.float() - extractor.mean) / extractor.std)).numpy()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in extractor.features.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in extractor.backbone.modules())
    np.testing.assert_allclose(extractor(batch), expected, rtol=1e-4, atol=1e-4)


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


def test_threads_decode_while_the_backbone_takes_whole_batches(store, tmp_path, extractor, monkeypatch):
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
    """A dataset that notes each item it decoded and in which thread; items from `gated_from` on
    wait for `gate`, and `failing` raises."""

    def __init__(self, size: int, gated_from: int | None = None, failing: int | None = None):
        self.size = size
        self.gated_from = size if gated_from is None else gated_from
        self.failing = failing
        self.gate = threading.Event()
        self.decoded: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        if index >= self.gated_from:
            self.gate.wait(timeout=30)
        if index == self.failing:
            raise RuntimeError(f"item {index} is broken")
        self.decoded.append((index, threading.current_thread().name))
        return index


def decoding_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("protoshelf-decode")]


def test_batches_come_in_order_from_decoding_threads():
    items = CountedItems(50)
    assert list(decoded_batches(items, list, batch_size=4, threads=3)) == [list(range(i, min(i + 4, 50))) for i in range(0, 50, 4)]
    assert len(items.decoded) == 50 and all(name.startswith("protoshelf-decode") for _, name in items.decoded)
    caller = CountedItems(5)
    assert list(decoded_batches(caller, list, batch_size=2, threads=0)) == [[0, 1], [2, 3], [4]]
    assert {name for _, name in caller.decoded} == {threading.current_thread().name}


def test_decoding_starts_before_the_first_batch_is_asked_for():
    """The backbone is built meanwhile: the first batches are ready when it is."""
    items = CountedItems(100)
    batches = decoded_batches(items, list, batch_size=10, threads=2, ahead=3)
    wait_for(lambda: len(items.decoded) == 30)
    batches.close()


def catalog_counting_decodes(store, folder, monkeypatch, count: int) -> list[int]:
    """A catalog of `count` pictures; the list fills with the index of each one decoded."""
    for i in range(count):
        write_image(folder / f"{i}.png", colour=(10 * i, 100, 240 - 10 * i))
    import_images(store, [folder])
    decoded = []
    original = CatalogImages.__getitem__
    monkeypatch.setattr(CatalogImages, "__getitem__", lambda self, i: decoded.append(i) or original(self, i))
    return decoded


def test_embedding_decodes_while_the_backbone_is_built(store, tmp_path, extractor, monkeypatch):
    decoded = catalog_counting_decodes(store, tmp_path, monkeypatch, 6)

    def slow_build(name, device):
        wait_for(lambda: len(decoded) == 6)  # times out if decoding waits for the backbone
        return extractor

    monkeypatch.setattr("protoshelf.core.embedding.pretrained_extractor", slow_build)
    assert embed_catalog(store, device="cpu", batch_size=2, workers=1).embedded == 6


def test_decoding_stays_a_few_batches_ahead_of_the_backbone_and_resumes_in_runs():
    """A catalog of a million items must not be decoded into memory ahead of a slow backbone; and
    decoding starts again only once half the batches ahead have been taken, then up to all."""
    items = CountedItems(1000)
    batches = decoded_batches(items, list, batch_size=10, threads=2, ahead=4)
    assert next(batches) == list(range(10))
    wait_for(lambda: len(items.decoded) >= 4 * 10)
    time.sleep(0.3)
    assert len(items.decoded) == 4 * 10  # three wait, more than half: nothing new starts
    assert next(batches) == list(range(10, 20))
    wait_for(lambda: len(items.decoded) >= (2 + 4) * 10)  # two wait: two more start
    time.sleep(0.3)
    assert len(items.decoded) == (2 + 4) * 10
    assert list(batches)[-1] == list(range(990, 1000))


def test_a_closed_run_leaves_the_batches_not_begun_and_no_threads():
    """Cancelling does not wait for the batches decoded ahead: those not begun are dropped."""
    items = CountedItems(1000, gated_from=5)  # the first batch passes; the others wait at the gate
    batches = decoded_batches(items, list, batch_size=5, threads=2, ahead=6)
    assert next(batches) == [0, 1, 2, 3, 4]
    batches.close()  # the threads are held in batch 1 and maybe 2; batches 3 to 5 were not begun
    items.gate.set()
    wait_for(lambda: not decoding_threads())
    assert set(range(10)) <= {index for index, _ in items.decoded} <= set(range(15))


def test_a_failed_batch_comes_after_the_good_ones_before_it():
    batches = decoded_batches(CountedItems(30, failing=12), list, batch_size=5, threads=2)
    assert next(batches) == [0, 1, 2, 3, 4] and next(batches) == [5, 6, 7, 8, 9]
    with pytest.raises(RuntimeError, match="item 12"):
        next(batches)
    wait_for(lambda: not decoding_threads())


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


@pytest.mark.slow
def test_timm_is_imported_with_the_collector_paused_and_running_again_after():
    """A long session must not be left without a cycle collector, nor with objects frozen that may
    yet become garbage (only the command line freezes, as it exits)."""
    code = ("import gc; from protoshelf.core.backbones import import_timm; "
            "timm = import_timm(); print(gc.isenabled(), gc.get_freeze_count(), hasattr(timm, 'create_model'))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert shown.split() == ["True", "0", "True"]


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
    assert {p.device.type for p in elsewhere.features.parameters()} == {"meta"}  # the folded copy runs there
    assert {p.device.type for p in shared.parameters()} == {"cpu"}


def test_moving_an_extractor_after_running_out_of_memory_leaves_the_old_one_whole(extractor):
    """The fallback to the CPU builds a new extractor; the app's cached one must keep its backbone
    where its folded copy and normalisation are, not have it moved from under it."""
    own = FeatureExtractor(copy.deepcopy(extractor.backbone), torch.device("cpu"))
    moved = own.on_device(torch.device("meta"))
    assert {p.device.type for p in moved.backbone.parameters()} == {"meta"}
    assert {p.device.type for p in moved.features.parameters()} == {"meta"}
    assert {p.device.type for p in own.backbone.parameters()} == {"cpu"}
    assert {b.device.type for b in own.backbone.buffers()} == {"cpu"}
    assert moved.backbone.preprocessing == own.backbone.preprocessing
