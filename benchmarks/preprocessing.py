"""Which way of fitting a picture into the model's square input classifies products best.

Product pictures are centred cut-outs: the classic "resize the short side, centre-crop 87.5%" cuts
the product's edges, and a long product loses its ends. Three candidates, each on RGB pixels
composited on white:

- crop:  resize the short side to 256, centre-crop 224 (ImageNet evaluation; ProtoShelf until 2026-12);
- whole: resize the whole picture to 224 x 224 (a long product is squashed);
- pad:   resize the long side to 224 and pad the short side with white (aspect kept, nothing lost).

Every variant is scored with plain prototypes (SimpleShot: centre on the data set's mean,
L2-normalise, nearest class mean) on the same episodes (same seed), all categories at once, at 1
and 5 shots (a category needs more pictures than shots: it keeps one query); the ± is the 95% interval over episodes, and each variant's gain over `crop` is paired
episode by episode. `current` is what core/model_input.py does now: it must score like the variant
it implements.

    python -m benchmarks.preprocessing [--episodes 300] [--datasets twemoji photos]
"""
from __future__ import annotations

import protoshelf.core  # noqa: F401  - first: it sets how OpenMP waits, which torch reads when it loads
import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks import report
from benchmarks.datasets import PHOTOS, TWEMOJI, build_all
from protoshelf.core.backbones import load_backbone
from protoshelf.core.embedding import FeatureExtractor
from protoshelf.core.evaluate import scan_tree
from protoshelf.core.images import open_image
from protoshelf.core.model_input import stack_images, to_model_input

SIZE, RESIZE = 224, 256
WHITE = (255, 255, 255)


def crop(image: Image.Image) -> Image.Image:
    side = min(image.size) * SIZE / RESIZE
    left, top = (image.width - side) / 2, (image.height - side) / 2
    return image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def whole(image: Image.Image) -> Image.Image:
    return image.resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def pad(image: Image.Image) -> Image.Image:
    scale = SIZE / max(image.size)
    fitted = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                          Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (SIZE, SIZE), WHITE)
    canvas.paste(fitted, ((SIZE - fitted.width) // 2, (SIZE - fitted.height) // 2))
    return canvas


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, np.uint8).copy()).permute(2, 0, 1)


VARIANTS = {"crop": crop, "whole": whole, "pad": pad}


def embed(extractor: FeatureExtractor, files: list[Path], variant: str, batch: int = 32) -> np.ndarray:
    prep = extractor.backbone.preprocessing
    out = []
    for start in range(0, len(files), batch):
        if variant == "current":
            tensors = [to_model_input(open_image(f, keep_alpha=True), prep) for f in files[start : start + batch]]
        else:
            tensors = [as_tensor(VARIANTS[variant](open_image(f))) for f in files[start : start + batch]]
        out.append(extractor(stack_images(tensors)))
    return np.concatenate(out)


def episodes(features: np.ndarray, labels: np.ndarray, shots: int, count: int, seed: int) -> np.ndarray:
    """Accuracy of each episode: `shots` supports per category, every other picture a query."""
    x = features - features.mean(axis=0)  # the mean of the pictures in play, as a catalog's
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    accuracies = np.empty(count)
    for e in range(count):
        support = np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in classes])
        query = np.setdiff1d(np.arange(len(labels)), support)
        prototypes = np.stack([x[support[labels[support] == c]].mean(axis=0) for c in classes])
        predicted = classes[(x[query] @ prototypes.T).argmax(axis=1)]
        accuracies[e] = (predicted == labels[query]).mean()
    return accuracies


def interval(values: np.ndarray) -> float:
    return float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


DATASETS = {"twemoji": TWEMOJI, "photos": PHOTOS}


def run(datasets: list[str], episode_count: int, seed: int, variants: list[str], cache: Path | None) -> dict:
    trees = build_all()
    extractor = FeatureExtractor(load_backbone(), torch.device("cpu"))
    figures = {}
    for name in datasets:
        tree = scan_tree(trees[DATASETS[name]])
        files = [f for paths in tree.values() for f in paths]
        labels = np.array([c for c, paths in tree.items() for _ in paths])
        results = {}
        for variant in variants:
            cached = cache and cache / f"{name}-{variant}.npy"
            if cached and cached.exists():
                features = np.load(cached)
            else:
                features = embed(extractor, files, variant)
                if cached:
                    np.save(cached, features)
            for shots in (1, 5):
                kept = np.isin(labels, [c for c, paths in tree.items() if len(paths) > shots])
                results.setdefault(shots, {})[variant] = episodes(features[kept], labels[kept], shots, episode_count, seed)
        figures[name] = {
            "images": len(files), "categories": len(tree),
            "categories_at_shots": {s: int(sum(len(p) > s for p in tree.values())) for s in results},
            "shots": {shots: {v: {"accuracy": round(float(a.mean()), 4), "ci95": round(interval(a), 4),
                                  "gain_vs_crop": round(float((a - accs["crop"]).mean()), 4) if "crop" in accs else None,
                                  "gain_ci95": round(interval(a - accs["crop"]), 4) if "crop" in accs else None}
                              for v, a in accs.items()}
                      for shots, accs in results.items()},
        }
    return figures


def print_figures(figures: dict) -> None:
    for name, f in figures.items():
        print(f"{name}: {f['images']} pictures, {f['categories']} categories, all-way episodes, plain prototypes")
        for shots, by_variant in f["shots"].items():
            print(f"  {shots}-shot over the {f['categories_at_shots'][shots]} categories with more than {shots} pictures:")
            cells = [f"{v} {r['accuracy']:.3f} ± {r['ci95']:.3f}"
                     + (f" ({r['gain_vs_crop']:+.3f} ± {r['gain_ci95']:.3f})" if r["gain_vs_crop"] is not None and v != "crop" else "")
                     for v, r in by_variant.items()]
            print("    " + "   ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", choices=[*VARIANTS, "current"], default=[*VARIANTS, "current"])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="a folder keeping each variant's vectors between runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    return report(run(args.datasets, args.episodes, args.seed, args.variants, args.cache), args.json, print_figures)


if __name__ == "__main__":
    raise SystemExit(main())
