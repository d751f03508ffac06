"""One command for a machine with a CUDA GPU: does the GPU path work, and how fast is it?

    python -m benchmarks.gpu_check [--images 512] [--rounds 4]

It runs, on the GPU, a short fine-tune (core/methods/finetune.py) of a tiny synthetic catalog,
then re-embeds it under the new backbone name; and the embedding ratio benchmark
(benchmarks/embedding_throughput.py) with JPEGs decoded on the GPU (nvJPEG), pinned host memory
and fp16 autocast. It prints one JSON object: the GPU, the fine-tune's figures, and images/s of
forward-only and end-to-end with their ratio for the README. Without CUDA it says so and exits 0;
`--device cpu` runs the same steps on the CPU (small), which is what the tests do.

With `--finetune-when DIR` (a folder holding the built `twemoji-subcategory` and `tuxpaint-animals`
trees, ~12 MB, since the GPU machine has no network to build them) it also runs
benchmarks/finetune_when.py on the GPU with `--finetune-when-episodes` episodes per cell: whether
fine-tuning beats frozen features when it can afford more episodes than the CPU. Its table goes to
stderr, its cells into the JSON.
"""
from __future__ import annotations

import protoshelf.core  # noqa: F401  - first: it sets how OpenMP waits before torch loads
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks import finetune_when
from benchmarks.embedding_throughput import new_catalog, run
from protoshelf.core.backbones import describe_device
from protoshelf.core.methods.finetune import FineTuneConfig, finetune_catalog

SHAPES = {"red circles": ((200, 40, 40), "ellipse"), "green boxes": ((40, 170, 70), "rectangle"),
          "blue circles": ((40, 60, 200), "ellipse")}


def labelled_catalog(folder: Path, per_category: int):
    """A catalog of product-like shots, `per_category` per category, every one labelled."""
    paths: dict[str, list[Path]] = {}
    rng = np.random.default_rng(0)
    for name, (colour, shape) in SHAPES.items():
        for i in range(per_category):
            image = Image.new("RGB", (320, 320), (250, 250, 250))
            x, y = rng.integers(40, 120, 2)
            size = int(rng.integers(120, 180))
            getattr(ImageDraw.Draw(image), shape)((x, y, x + size, y + size), fill=colour)
            path = folder / f"{shape}-{colour[0]}-{i}.jpg"
            image.save(path, quality=90)
            paths.setdefault(name, []).append(path)
    store = new_catalog(folder / "finetune.sqlite", [p for group in paths.values() for p in group])
    by_path = {item.path: item_id for item_id, item in store.items(store.item_ids().tolist()).items()}
    for name, group in paths.items():
        store.set_labels([by_path[str(p)] for p in group], store.create_category(name))
    return store


def finetune_check(device: str, folder: Path, per_category: int = 6, epochs: int = 2) -> dict:
    """Fine-tune on a tiny labelled catalog, then check the catalog was re-embedded with it."""
    store = labelled_catalog(folder, per_category)
    try:
        started = time.perf_counter()
        name = finetune_catalog(store, config=FineTuneConfig(epochs=epochs, batch_size=8), device=device,
                                directory=folder / "weights")
        seconds = time.perf_counter() - started
        vectors = store.load_embeddings(name)
        return {"backbone": name, "seconds": round(seconds, 1), "items": store.item_count(),
                "embedded": len(vectors), "finite": bool(np.isfinite(vectors.matrix).all())}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the steps without a GPU")
    parser.add_argument("--images", type=int, default=512, help="JPEGs in the embedding benchmark")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--side", type=int, default=None, help="pixels of the benchmark's photos (default 1000)")
    parser.add_argument("--per-category", type=int, default=6, help="images per category in the fine-tune")
    parser.add_argument("--finetune-when", type=Path, metavar="DIR",
                        help="built benchmark trees: also measure when fine-tuning helps (benchmarks/finetune_when.py)")
    parser.add_argument("--finetune-when-episodes", type=int, default=10)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing to check (use --device cpu to try the steps).")
        return 0
    device = torch.device(args.device)
    trees = finetune_when.trees_in(args.finetune_when) if args.finetune_when is not None else None  # fail fast
    folder = Path(tempfile.mkdtemp(prefix="protoshelf-gpu-check-"))
    try:
        summary = {"device": describe_device(device), "torch": torch.__version__,
                   "finetune": finetune_check(args.device, folder, args.per_category),
                   "embedding": run(args.images, None, args.side, args.rounds, None, 0, "jpeg", args.device)}
        if trees is not None:
            summary["finetune_when"] = finetune_when.run(trees, list(finetune_when.DATASETS), [1, 5, 10],
                                                         args.finetune_when_episodes, device=args.device, out=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
