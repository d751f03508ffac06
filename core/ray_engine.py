"""The embedding step on a Ray cluster, with Ray Data.

The driver reads (item id, image path) pairs of the items still to embed from the catalog. Ray
Data streams them through two stages: CPU tasks decode and crop the images (the same
`open_model_image` and `to_model_input` as a local run), and a fixed pool of actors, one per GPU (or
per two CPUs on a cluster without GPUs), each holding the backbone, turns them into features.
The driver writes the results back in batches, one transaction each, so a run stopped half-way
keeps what it finished, exactly like the local `embed_catalog`. The same code on the same
device gives the same vectors as a local run.

Every node needs ProtoShelf installed (`pip install 'protoshelf[ray]'`, the same version) and
the image files at the same paths as the machine running the command (a shared mount).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from protoshelf.core.backbones import DEFAULT_BACKBONE, Preprocessing, load_backbone, resolve_device
from protoshelf.core.embedding import CPU_BATCH, GPU_BATCH, EmbedReport, FeatureExtractor
from protoshelf.core.model_input import open_model_image, to_model_input
from protoshelf.core.images import ImageError
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store

INSTALL_HINT = "pip install 'protoshelf[ray]'"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do."""


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayUnavailable(f"The ray engine needs Ray Data, which is not installed: {INSTALL_HINT}") from exc
    return ray


def decode_batch(batch: dict[str, np.ndarray], prep: Preprocessing) -> dict[str, np.ndarray]:
    """Model inputs (uint8 NCHW) of a batch of paths; a failed image leaves zeros and its reason."""
    images = np.zeros((len(batch["path"]), 3, prep.size, prep.size), np.uint8)
    errors = np.full(len(batch["path"]), "", dtype=object)
    for row, path in enumerate(batch["path"]):
        try:
            images[row] = to_model_input(open_model_image(Path(path), prep), prep).numpy()
        except (ImageError, OSError) as exc:
            errors[row] = str(exc)
    return {"item_id": batch["item_id"], "path": batch["path"], "image": images, "error": errors}


class Embedder:
    """A Ray Data actor: the backbone on this worker's GPU, or on its CPUs."""

    def __init__(self, backbone_name: str, device: str, threads: int | None):
        import torch

        if threads:  # CPU actors share a node: one thread each, or they fight over its cores
            torch.set_num_threads(threads)
        self.extractor = FeatureExtractor(load_backbone(backbone_name), resolve_device(device))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ok = batch["error"] == ""
        vectors = np.zeros((len(ok), self.extractor.backbone.feature_dim), np.float32)
        if ok.any():
            vectors[ok] = self.extractor(torch.from_numpy(np.ascontiguousarray(batch["image"][ok])))
        return {"item_id": batch["item_id"], "path": batch["path"], "vector": vectors, "error": batch["error"]}


def embed_catalog_on_ray(
    store: Store,
    backbone_name: str = DEFAULT_BACKBONE,
    address: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    actors: int | None = None,
    progress: Progress = no_progress,
) -> EmbedReport:
    """Embed every item without a `backbone_name` vector on the Ray cluster at `address` (None:
    the instance this process already joined, else a new local one)."""
    ray = _import_ray()
    prep = load_backbone(backbone_name).preprocessing  # also: an unknown name fails here, not on the cluster
    rows = store.items_without_embedding(backbone_name)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise RayUnavailable(f"Cannot reach the Ray cluster at {address}: {exc}") from exc
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if device in ("auto", "cuda") else 0
        if device == "cuda" and not gpus:
            raise RayUnavailable("CUDA was requested but the Ray cluster has no GPUs; use --device cpu.")
        if gpus:
            size, actor_resources, threads = actors or gpus, {"num_gpus": 1}, None
        else:  # half the CPUs decode, half run one-thread backbones
            size, actor_resources, threads = actors or max(1, int(resources.get("CPU", 1)) // 2), {"num_cpus": 1}, 1
        batch_size = batch_size or (GPU_BATCH if gpus else CPU_BATCH)
        report = EmbedReport(backbone_name, f"ray: {size} {'GPU' if gpus else 'CPU'} workers")
        progress(0, len(rows))
        if not rows:
            return report
        ray.data.DataContext.get_current().enable_progress_bars = False
        dataset = (
            ray.data.from_items([{"item_id": item_id, "path": path} for item_id, path in rows])
            .map_batches(decode_batch, batch_size=batch_size, fn_kwargs={"prep": prep})
            .map_batches(
                Embedder,
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=size),
                fn_constructor_kwargs={"backbone_name": backbone_name,
                                       "device": "cuda" if gpus else "cpu", "threads": threads},
                **actor_resources,
            )
        )
        done = 0
        for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ok = batch["error"] == ""
            if ok.any():
                store.save_embeddings(backbone_name, batch["item_id"][ok].tolist(), batch["vector"][ok])
                report.embedded += int(ok.sum())
            report.failed.extend(zip(batch["path"][~ok].tolist(), batch["error"][~ok].tolist()))
            done += len(ok)
            progress(done, len(rows))
        return report
    finally:
        if started_here:
            ray.shutdown()
