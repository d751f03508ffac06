"""Memory stays within stated bounds, and running out of GPU memory degrades instead of crashing.

The bounds here are on small inputs, as ratios, so they hold at any size; benchmarks/memory.py
measures the real thing (1M embeddings, a 2,000-example fit) and prints the figures.
"""
from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import add_items, write_image
from protoshelf.core.backbones import Preprocessing
from protoshelf.core.embedding import FeatureExtractor, embed_catalog
from protoshelf.core.images import open_image
from protoshelf.core.importer import import_images
from protoshelf.core.methods import feature_method_names, is_meta_learner, make_method

MB = 2**20


def traced_peak(run) -> tuple[object, int]:
    """Peak bytes Python and numpy allocate while `run()` works, above what existed before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before


def read_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def rss_peak(run) -> tuple[object, int]:
    """Peak resident memory while `run()` works, above the resident memory before it (Linux:
    writing 5 to clear_refs resets the high-water mark). Counts torch's allocations too."""
    Path("/proc/self/clear_refs").write_text("5")
    before = read_kib("VmRSS")
    result = run()
    return result, (read_kib("VmHWM") - before) * 1024


# --- loading a catalog's embeddings ----------------------------------------------------------

@pytest.mark.slow
def test_loading_embeddings_peaks_near_the_matrix_itself(store):
    n, dim = 20_000, 256
    ids = np.asarray(add_items(store, n))
    rng = np.random.default_rng(0)
    for start in range(0, n, 5000):
        store.save_embeddings("m", ids[start : start + 5000], rng.normal(size=(5000, dim)))
    vectors, peak = traced_peak(lambda: store.load_embeddings("m"))
    matrix_bytes = n * dim * 4
    assert vectors.matrix.shape == (n, dim) and vectors.matrix.dtype == np.float32
    assert vectors.item_ids.tolist() == ids.tolist()
    assert peak < 1.25 * matrix_bytes + 2 * MB, f"peak {peak / matrix_bytes:.2f}× the matrix"


# --- fitting on 2,000 examples -------------------------------------------------------------

FEWER_ITERATIONS = {name: {"episodes": 3} for name in feature_method_names() if is_meta_learner(name)}
"""Episodes repeat the same work, so they set the time, not the peak. The default 100 took 5 s on
an idle 2-core box but minutes on a busy one; benchmarks/memory.py measures the defaults."""

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self")
@pytest.mark.parametrize("method", feature_method_names())
def test_a_fit_on_2000_examples_stays_within_its_memory_bound(method):
    rng = np.random.default_rng(0)
    classes, dim, catalog = 20, 1280, 5000
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    labels = np.repeat(np.arange(classes), 2000 // classes)
    support = centres[labels] + rng.normal(size=(2000, dim)).astype(np.float32)
    unlabelled = centres[rng.integers(0, classes, catalog)] + rng.normal(size=(catalog, dim)).astype(np.float32)
    options = FEWER_ITERATIONS.get(method, {})
    model, peak = rss_peak(lambda: make_method(method, **options).fit(support, labels.tolist(), unlabelled=unlabelled))
    inputs = support.nbytes + unlabelled.nbytes
    assert peak < 4 * inputs + 128 * MB, f"{method}: {peak / MB:.0f} MB for {inputs / MB:.0f} MB of inputs"
    assert model.predict(support[:50]).shape == (50, classes)


# --- out of GPU memory -----------------------------------------------------------------------

class TinyBackbone(nn.Module):
    """Mean colour per image: a 3-number "embedding" that is exact and instant to check."""

    name = "tiny"
    preprocessing = Preprocessing(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


class CrampedGpu(FeatureExtractor):
    """Claims to be on a GPU where at most `fits` images fit per call (0: not even one)."""

    def __init__(self, fits: int):
        super().__init__(TinyBackbone(), torch.device("cpu"))
        self.device = torch.device("cuda")
        self.fits = fits
        self.calls: list[int] = []

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.calls.append(len(images))
        if len(images) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return (images.float().mean(dim=(2, 3)) / 255).numpy()  # what the real one computes


@pytest.fixture
def catalog_of_ten(store, tmp_path):
    for i in range(10):
        write_image(tmp_path / f"{i}.png", colour=(20 * i, 100, 250 - 20 * i), size=(8, 8))
    import_images(store, [tmp_path])
    return store


def expected_vectors(store) -> np.ndarray:
    rows = store.items_without_embedding("no such model")
    return FeatureExtractor(TinyBackbone(), torch.device("cpu")).embed_images([open_image(Path(p)) for _, p in rows])


def test_out_of_gpu_memory_halves_the_batch_and_carries_on(catalog_of_ten):
    gpu = CrampedGpu(fits=3)
    report = embed_catalog(catalog_of_ten, "tiny", batch_size=8, workers=0, extractor=gpu)
    assert report.embedded == 10 and not report.failed
    assert report.device == "cuda"
    assert report.notes == ["Out of GPU memory: batch size lowered to 4.", "Out of GPU memory: batch size lowered to 2."]
    assert max(gpu.calls[3:]) <= 2
    vectors = catalog_of_ten.load_embeddings("tiny")
    np.testing.assert_allclose(vectors.matrix, expected_vectors(catalog_of_ten), atol=1e-4)


def test_no_gpu_memory_at_all_falls_back_to_the_cpu(catalog_of_ten):
    report = embed_catalog(catalog_of_ten, "tiny", batch_size=4, workers=0, extractor=CrampedGpu(fits=0))
    assert report.embedded == 10 and report.device == "cpu"
    assert report.notes[-1] == "Out of GPU memory even one image at a time: continuing on the CPU."
    assert len(report.notes) == 3  # 4 -> 2 -> 1 -> CPU
    np.testing.assert_allclose(catalog_of_ten.load_embeddings("tiny").matrix, expected_vectors(catalog_of_ten), atol=1e-4)


def test_running_out_of_memory_on_the_cpu_is_not_swallowed(catalog_of_ten):
    class CrampedCpu(CrampedGpu):
        def __init__(self):
            super().__init__(fits=0)
            self.device = torch.device("cpu")

        def __call__(self, images):
            raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        embed_catalog(catalog_of_ten, "tiny", batch_size=4, workers=0, extractor=CrampedCpu())
    assert len(catalog_of_ten.load_embeddings("tiny")) == 0
