"""Few-shot evaluation on an ImageFolder tree (one sub-folder per category).

Images are imported into a cache catalog and embedded once (content-addressed, so a second run
or a second tree with the same pictures costs nothing); episodes then only index the cached
matrix. Each episode draws K support images per category; the queries are every other image,
or with a query tree, its images whose relative path is not a support image's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import platformdirs

from core.backbones import DEFAULT_BACKBONE
from core.embedding import embed_catalog
from core.importer import find_images, import_images
from core.methods import DEFAULT_METHOD, make_method
from core.progress import Progress, no_progress
from core.store import Store


def default_cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("protoshelf")) / "evaluation-cache.sqlite"


@dataclass(frozen=True)
class Image:
    category: str
    relative: str
    row: int


@dataclass
class EvalResult:
    accuracy: float
    ci95: float
    ways: int
    shots: int
    episodes: int
    method: str
    per_category: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def scan_tree(root: Path) -> dict[str, list[Path]]:
    """Image files per category sub-folder, sorted so that seeds reproduce."""
    tree = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        files = sorted(find_images([folder]))
        if files:
            tree[folder.name] = files
    if not tree:
        raise ValueError(f"{root} has no category sub-folders with images")
    return tree


@dataclass
class EmbeddedTree:
    images: list[Image]
    matrix: np.ndarray


def embed_tree(store: Store, root: Path, backbone: str, device: str, progress: Progress) -> EmbeddedTree:
    tree = scan_tree(root)
    files = [path for paths in tree.values() for path in paths]
    report = import_images(store, files, progress=progress)
    embed_catalog(store, backbone, device=device, progress=progress)
    vectors = store.load_embeddings(backbone)
    row_of = {int(i): r for r, i in enumerate(vectors.item_ids)}
    images, rows = [], []
    for category, paths in tree.items():
        for path in paths:
            item = report.ids_by_path.get(str(path.resolve()))
            if item is not None and item in row_of:
                images.append(Image(category, str(path.relative_to(root)), len(rows)))
                rows.append(row_of[item])
    return EmbeddedTree(images, vectors.matrix[rows])


def sample_episode(
    support_tree: EmbeddedTree, query_tree: EmbeddedTree | None, shots: int, rng: np.random.Generator
) -> tuple[list[Image], list[Image]]:
    """K support images per category, and the queries that may be scored against them."""
    by_category: dict[str, list[Image]] = {}
    for image in support_tree.images:
        by_category.setdefault(image.category, []).append(image)
    support = []
    for images in by_category.values():
        picks = rng.choice(len(images), size=min(shots, len(images)), replace=False)
        support.extend(images[i] for i in sorted(picks))
    taken = {(im.category, im.relative) for im in support}
    pool = support_tree.images if query_tree is None else query_tree.images
    queries = [
        im for im in pool if im.category in by_category and (im.category, im.relative) not in taken
    ]
    return support, queries


def evaluate_folder(
    folder: str | Path,
    query_folder: str | Path | None = None,
    shots: int = 5,
    episodes: int = 100,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    backbone: str = DEFAULT_BACKBONE,
    device: str = "auto",
    cache: str | Path | None = None,
    progress: Progress = no_progress,
) -> EvalResult:
    store = Store(cache or default_cache_path())
    try:
        support_tree = embed_tree(store, Path(folder), backbone, device, progress)
        query_tree = embed_tree(store, Path(query_folder), backbone, device, progress) if query_folder else None
    finally:
        store.close()
    rng = np.random.default_rng(seed)
    ways = len({im.category for im in support_tree.images})
    accuracies, hits, counts = [], {}, {}
    for episode in range(episodes):
        support, queries = sample_episode(support_tree, query_tree, shots, rng)
        if not queries:
            raise ValueError("no query images left: use fewer shots or a --query folder")
        query_matrix = (query_tree or support_tree).matrix
        model = make_method(method).fit(
            support_tree.matrix[[im.row for im in support]],
            [im.category for im in support],
            unlabelled=query_matrix,
        )
        scores = model.predict(query_matrix[[im.row for im in queries]])
        predicted = model.classes_[scores.argmax(axis=1)]
        correct = predicted == np.array([im.category for im in queries], dtype=object)
        accuracies.append(float(correct.mean()))
        for im, ok in zip(queries, correct):
            hits[im.category] = hits.get(im.category, 0) + int(ok)
            counts[im.category] = counts.get(im.category, 0) + 1
        progress(episode + 1, episodes)
    acc = np.array(accuracies)
    ci95 = float(1.96 * acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else 0.0
    per_category = {c: round(hits[c] / counts[c], 4) for c in sorted(counts)}
    return EvalResult(round(float(acc.mean()), 4), round(ci95, 4), ways, shots, episodes, method, per_category)
