"""Few-shot evaluation on an ImageFolder tree (one sub-folder per category).

Images are imported into a cache catalog and embedded once (content-addressed, so a second run
or a second tree with the same pictures costs nothing); episodes then only index the cached
matrix. Each episode draws K support images per category; the queries are every other image,
or with a query tree, its images whose relative path is not a support image's.

With titles CSVs (`path,title`, paths relative to the CSV), titles are embedded too and the
modality picks what is scored: "image", "text" (images with a title only) or "fused" (every
image; those without a title fall back to the image alone). "image" includes the pictures'
ImageNet concept vectors (core/names.py). Category names are the sub-folder names (`-` and `_`
read as spaces) and join as examples unless `names=False`; with 0 shots they are all there is.

Scores are calibrated (core/calibration.py); the result carries the expected calibration error
of the top-1 confidence over all queries of all episodes, and the precision and coverage of
assigning at `threshold`, each with a 95% interval from resampling the episodes.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import platformdirs

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.calibration import (
    DEFAULT_THRESHOLD, Calibrated, default_temperature, expected_calibration_error, precision_coverage,
)
from protoshelf.core.embedding import embed_catalog
from protoshelf.core.fusion import USES, LateFusion, ModalFeatures
from protoshelf.core.importer import find_images, import_images, read_titles_csv
from protoshelf.core.methods import (
    DEFAULT_METHOD,
    BackboneAdapter,
    is_backbone_adapter,
    make_adapter,
    make_meta_learner,
    make_method,
    resolve_method,
)
from protoshelf.core.names import NAME_SPACES, concept_model, embed_concepts, name_vectors
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store
from protoshelf.core.text import TEXT_EMBEDDING, TextModelError, TitleEncoder, embed_titles


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
    modality: str = "image"
    image_weight: float | None = None
    fit_seconds: float = field(default=0.0, compare=False)
    """Mean time to fit one episode's support set (for a backbone adapter: its training); timing, so it
    does not take part in comparing results."""
    names: bool = True
    threshold: float = DEFAULT_THRESHOLD
    ece: float | None = None
    ece_ci95: float | None = None
    precision_at_threshold: float | None = None
    precision_ci95: float | None = None
    coverage_at_threshold: float | None = None
    coverage_ci95: float | None = None
    calibrated_share: float | None = None
    """Share of episodes whose temperature was fitted (1-shot without names has nothing to hold out)."""

    def to_dict(self) -> dict:
        return asdict(self)



class _Tally:
    """Accuracy per episode and hits per category, accumulated over a run's episodes."""

    def __init__(self):
        self.accuracies: list[float] = []
        self.fit_seconds: list[float] = []
        self.hits: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.confidences: list[np.ndarray] = []
        self.corrects: list[np.ndarray] = []
        self.calibrated: list[bool] = []

    def add(self, queries: list, predicted: np.ndarray, confidence: np.ndarray | None = None) -> None:
        correct = predicted == np.array([im.category for im in queries], dtype=object)
        self.accuracies.append(float(correct.mean()))
        if confidence is not None:
            self.confidences.append(np.asarray(confidence, np.float64))
            self.corrects.append(correct.astype(np.float64))
        for im, ok in zip(queries, correct):
            self.hits[im.category] = self.hits.get(im.category, 0) + int(ok)
            self.counts[im.category] = self.counts.get(im.category, 0) + 1

    def accuracy(self) -> float:
        return round(float(np.mean(self.accuracies)), 4)

    def ci95(self) -> float:
        acc = np.array(self.accuracies)
        return round(float(1.96 * acc.std(ddof=1) / np.sqrt(len(acc))), 4) if len(acc) > 1 else 0.0

    def per_category(self) -> dict[str, float]:
        return {c: round(self.hits[c] / self.counts[c], 4) for c in sorted(self.counts)}

    def mean_fit_seconds(self) -> float:
        return round(float(np.mean(self.fit_seconds)), 4)

    def confidence_figures(self, threshold: float, resamples: int = 200, seed: int = 0) -> dict:
        """ECE, precision and coverage at `threshold` over all queries, each ± half the width of a
        95% bootstrap interval over episodes."""
        if not self.confidences:
            return {}

        def figures(episodes) -> tuple[float, float, float]:
            conf = np.concatenate([self.confidences[e] for e in episodes])
            correct = np.concatenate([self.corrects[e] for e in episodes])
            return (expected_calibration_error(conf, correct), *precision_coverage(conf, correct, threshold))

        point = figures(range(len(self.confidences)))
        rng = np.random.default_rng(seed)
        draws = np.array([figures(rng.integers(0, len(self.confidences), len(self.confidences)))
                          for _ in range(resamples if len(self.confidences) > 1 else 0)])
        half = (np.percentile(draws, 97.5, axis=0) - np.percentile(draws, 2.5, axis=0)) / 2 if len(draws) else (0, 0, 0)
        keys = ("ece", "precision_at_threshold", "coverage_at_threshold")
        out = {k: round(float(v), 4) for k, v in zip(keys, point)}
        out.update({k: round(float(v), 4) for k, v in zip(("ece_ci95", "precision_ci95", "coverage_ci95"), half)})
        if self.calibrated:
            out["calibrated_share"] = round(float(np.mean(self.calibrated)), 4)
        return out


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
    """`images[i].row` is the image's position in `features`."""

    images: list[Image]
    features: ModalFeatures

    def only(self, modality: str) -> "EmbeddedTree":
        """The images that `modality` can score, with just its features."""
        features = self.features.only(USES[modality])
        present = features.present()
        kept = [im for im in self.images if present[im.row]]
        return EmbeddedTree(
            [Image(im.category, im.relative, i) for i, im in enumerate(kept)],
            features.take([im.row for im in kept]),
        )


def read_titles(csv_paths: Sequence[str | Path]) -> dict[str, str]:
    """Titles by resolved image path, merged over several `path,title` CSVs."""
    titles: dict[str, str] = {}
    for csv_path in csv_paths:
        titles.update(read_titles_csv(csv_path).titles)
    return titles


def embed_tree(
    store: Store,
    root: Path,
    backbone: str,
    device: str,
    progress: Progress,
    titles: dict[str, str] | None = None,
    modality: str = "image",
    encoder: TitleEncoder | None = None,
) -> EmbeddedTree:
    """Import and embed a tree into the cache catalog; `encoder` (the title model) also gives the
    images their concept vectors."""
    tree = scan_tree(root)
    files = [path for paths in tree.values() for path in paths]
    report = import_images(store, files, titles=titles, progress=progress)
    vectors = {}
    if modality != "text":
        embed_catalog(store, backbone, device=device, progress=progress)
        vectors["image"] = store.load_embeddings(backbone)
        if encoder is not None:
            embed_concepts(store, backbone, lambda: encoder, progress)
            concepts = store.load_embeddings(concept_model(backbone))
            if len(concepts):
                vectors["concept"] = concepts
    if modality != "image":
        # The cache is content-addressed: an image seen before keeps its item, so set its title.
        store.set_titles({i: (titles or {}).get(p) for p, i in report.ids_by_path.items()})
        embed_titles(store, device=device, progress=progress, encoder=encoder)
        vectors["text"] = store.load_embeddings(TEXT_EMBEDDING)
    has_vector = {int(i) for v in vectors.values() for i in v.item_ids}
    images, items = [], []
    for category, paths in tree.items():
        for path in paths:
            item = report.ids_by_path.get(str(path.resolve()))
            if item in has_vector:
                images.append(Image(category, str(path.relative_to(root)), len(items)))
                items.append(item)
    return EmbeddedTree(images, ModalFeatures.align(np.array(items, np.int64), vectors))


def sample_episode(
    support_tree: EmbeddedTree,
    query_tree: EmbeddedTree | None,
    shots: int,
    rng: np.random.Generator,
    ways: int | None = None,
) -> tuple[list[Image], list[Image]]:
    """K support images per category (of `ways` random ones, or all), and the queries to score."""
    by_category: dict[str, list[Image]] = {}
    for image in support_tree.images:
        by_category.setdefault(image.category, []).append(image)
    if ways and ways < len(by_category):
        chosen = rng.choice(sorted(by_category), size=ways, replace=False)
        by_category = {c: by_category[c] for c in sorted(chosen)}
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
    titles: Sequence[str | Path] = (),
    modality: str = "image",
    ways: int | None = None,
    meta_train: str | Path | None = None,
    adapter: BackboneAdapter | None = None,
    names: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
) -> EvalResult:
    """Accuracy over `episodes` few-shot episodes; `titles` are `path,title` CSVs.

    `ways` draws that many categories per episode (default: all). `meta_train` is a tree of other
    categories that a meta-learning method learns from once before the episodes. A backbone
    adapter (e.g. "finetune") trains on each episode's support images (`adapter` configures it).
    `names=False` leaves the category names out; `threshold` is the confidence to assign at.
    """
    method = resolve_method(method, shots)
    if modality not in USES:
        raise ValueError(f"Unknown modality {modality!r}; choose one of: {', '.join(USES)}")
    if modality != "image" and not titles:
        raise ValueError(f"the {modality} modality needs titles: pass a titles CSV")
    if shots < 0 or (shots == 0 and not names):
        raise ValueError("--shots 0 predicts from category names alone: drop --no-names, or give shots")
    title_of = read_titles(titles)
    encoder = title_encoder(device, required=modality != "image" or (shots == 0 and names))
    store = Store(cache or default_cache_path())
    try:
        support_tree = embed_tree(store, Path(folder), backbone, device, progress, title_of, modality, encoder)
        query_tree = (
            embed_tree(store, Path(query_folder), backbone, device, progress, title_of, modality, encoder)
            if query_folder else None
        )
        meta_tree = embed_tree(store, Path(meta_train), backbone, device, progress) if meta_train else None
    finally:
        store.close()
    if is_backbone_adapter(method):
        roots = (Path(folder), Path(query_folder) if query_folder else None)
        return evaluate_adapter(
            support_tree, query_tree, roots, shots, episodes, seed, backbone, device,
            adapter or make_adapter(method), ways, progress,
        )
    params = meta_train_params(method, meta_tree, support_tree, modality, progress) if meta_tree else {}
    if params:  # what was meta-trained is an adapter for image features only: no concepts
        support_tree = EmbeddedTree(support_tree.images, support_tree.features.only(("image",)))
        if query_tree is not None:
            query_tree = EmbeddedTree(query_tree.images, query_tree.features.only(("image",)))
    category_names = (
        name_vectors({c: c for c in sorted({im.category for im in support_tree.images})}, encoder)
        if names and encoder is not None else None
    )
    return evaluate_trees(
        support_tree, query_tree, shots, episodes, method, seed, modality, progress, ways, params,
        category_names, threshold,
    )


def title_encoder(device: str, required: bool) -> TitleEncoder | None:
    """The title model, which also embeds names and concepts; without its package, image-only
    evaluation goes on without them unless they are `required`."""
    try:
        return TitleEncoder(device)
    except TextModelError:
        if required:
            raise
        return None


def meta_train_params(
    method: str, meta_tree: EmbeddedTree, evaluated: EmbeddedTree, modality: str, progress: Progress
) -> dict:
    """Meta-train `method` once on the meta tree; its categories must not be evaluated ones.
    The result goes to `evaluate_trees(params=...)`."""
    trainer = make_meta_learner(method)
    if modality != "image":
        raise ValueError("--meta-train works on image features only")
    shared = {im.category for im in meta_tree.images} & {im.category for im in evaluated.images}
    if shared:
        raise ValueError(
            "--meta-train categories must be disjoint from the evaluated ones; both have: "
            + ", ".join(sorted(shared)[:5])
        )
    category_at = {im.row: im.category for im in meta_tree.images}
    features = meta_tree.features
    labels = [category_at[position] for position in features.rows["image"]]
    return {"meta_states": (trainer.meta_train(features.matrices["image"], labels, progress),)}


def evaluate_adapter(
    support_tree: EmbeddedTree,
    query_tree: EmbeddedTree | None,
    roots: tuple[Path, Path | None],
    shots: int,
    episodes: int,
    seed: int,
    backbone: str,
    device: str,
    adapter: BackboneAdapter,
    ways: int | None = None,
    progress: Progress = no_progress,
) -> EvalResult:
    """Train the backbone on each episode's support images, embed its images with the result, and
    score them with prototypes: what the app does after fine-tuning, on one episode at a time."""
    from protoshelf.core.backbones import load_backbone, resolve_device
    from protoshelf.core.embedding import FeatureExtractor
    from protoshelf.core.methods.finetune import embed_images
    from protoshelf.core.model_input import open_model_image

    base = load_backbone(backbone)
    prep = base.preprocessing
    support_root, query_root = roots
    rng = np.random.default_rng(seed)
    tally = _Tally()
    for episode in range(episodes):
        support, queries = sample_episode(support_tree, query_tree, shots, rng, ways)
        if not queries:
            raise ValueError("no query images left: use fewer shots or a --query folder")
        support_images = [open_model_image(support_root / im.relative, prep) for im in support]
        query_images = [open_model_image((query_root or support_root) / im.relative, prep) for im in queries]
        labels = [im.category for im in support]
        started = time.perf_counter()
        tuned = adapter.adapt(base, support_images, labels, device)
        tally.fit_seconds.append(time.perf_counter() - started)
        extractor = FeatureExtractor(tuned, resolve_device(device))
        model = make_method(DEFAULT_METHOD).fit(embed_images(extractor, support_images), labels)
        scores = model.predict(embed_images(extractor, query_images))
        tally.add(queries, model.classes_[scores.argmax(axis=1)])
        progress(episode + 1, episodes)
    per_category = tally.per_category()
    ways = min(ways or len(per_category), len({im.category for im in support_tree.images}))
    return EvalResult(
        tally.accuracy(), tally.ci95(), ways, shots, episodes, adapter.name, per_category,
        fit_seconds=tally.mean_fit_seconds(),
    )


def evaluate_trees(
    support_tree: EmbeddedTree,
    query_tree: EmbeddedTree | None,
    shots: int = 5,
    episodes: int = 100,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    modality: str = "image",
    progress: Progress = no_progress,
    ways: int | None = None,
    params: dict | None = None,
    names: dict[str, np.ndarray] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> EvalResult:
    """Episodes on embedded trees; the same seed draws the same supports for every modality
    that keeps the same images, so modalities compare episode by episode. `params` go to the
    method (e.g. the state `meta_train` returned); `names` are category name vectors."""
    support_tree = support_tree.only(modality)
    query_tree = query_tree.only(modality) if query_tree else None
    rng = np.random.default_rng(seed)
    available = len({im.category for im in support_tree.images})
    ways = min(ways or available, available)
    tally, image_weights = _Tally(), []
    for episode in range(episodes):
        support, queries = sample_episode(support_tree, query_tree, shots, rng, ways)
        if not queries:
            raise ValueError("no query images left: use fewer shots or a --query folder")
        query_features = (query_tree or support_tree).features
        categories = sorted({im.category for im in queries} | {im.category for im in support})
        started = time.perf_counter()
        model = calibrated_model(
            method, params or {}, {c: names[c] for c in categories} if names else None, query_features, shots > 0,
        ).fit(
            support_tree.features.take([im.row for im in support]),
            [im.category for im in support],
            unlabelled=query_features,
        )
        tally.fit_seconds.append(time.perf_counter() - started)
        tally.calibrated.append(model.fitted_)
        image_weights.append(model.weights_.get("image", 0.0))
        scores = model.predict(query_features.take([im.row for im in queries]))
        tally.add(queries, model.classes_[scores.argmax(axis=1)], scores.max(axis=1))
        progress(episode + 1, episodes)
    image_weight = round(float(np.mean(image_weights)), 4) if modality == "fused" else None
    return EvalResult(
        tally.accuracy(), tally.ci95(), ways, shots, episodes, method, tally.per_category(),
        modality, image_weight, tally.mean_fit_seconds(), names=bool(names), threshold=threshold,
        **tally.confidence_figures(threshold),
    )


def calibrated_model(method: str, params: dict, names: dict | None, features: ModalFeatures,
                     has_examples: bool = True) -> Calibrated:
    """Fusion (with names, if any) under a temperature fitted by cross-validation; each fold
    reuses the full fit's fusion weights, so it costs one fit per modality."""
    named_space = bool(names) and any(m in NAME_SPACES for m in features.modalities)
    return Calibrated(
        lambda: LateFusion(method, names=names, **params),
        LateFusion.fixed,
        can_hold_out_singletons=named_space,
        default=default_temperature(method, features.user_modality(), has_examples, named_space),
    )
