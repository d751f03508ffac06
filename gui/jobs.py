"""The work the app hands to its worker lanes: each job is `job(context, progress, ...)`.

Jobs only call core functions on the lane's own Store; they never touch Qt objects. Models that are
slow to load (the image backbone, the title encoder, the in-memory classifier) are cached in the
lane's WorkerContext, so dropping three new images does not reload a network.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.backbones import load_backbone, resolve_device
from core.classify import CatalogClassifier, CatalogPredictions, available_modalities, save_predictions
from core.duplicates import DuplicateGroup, duplicate_groups, export_duplicates
from core.embedding import EmbedReport, FeatureExtractor, embed_catalog
from core.export import export_csv
from core.importer import ImportReport, apply_titles_file, import_images, read_titles_csv
from core.meta_training import meta_train_catalog, states_for_fit
from core.methods import MetaTrained, is_meta_learner, make_adapter
from core.methods.finetune import is_finetuned, load_finetuned
from core.similar import Neighbour, SimilaritySearch
from core.store import Store
from core.suggest import Suggestion, suggest
from gui.workers import TaskProgress, WorkerContext

TITLE_BLOCK = 100_000


@dataclass
class EmbedSummary:
    images: EmbedReport | None = None
    titles: int = 0
    titles_unavailable: str = ""


@dataclass(frozen=True)
class ImportResult:
    report: ImportReport
    category_id: int | None


@dataclass(frozen=True)
class FitRequest:
    backbone: str
    method: str
    threshold: float
    modality: str | None
    embeddings_version: int
    meta_states: tuple[MetaTrained, ...] = ()
    """For a meta-learner: what it learned from this catalog (else it starts untrained)."""


@dataclass(frozen=True)
class FitResult:
    predictions: CatalogPredictions | None
    modalities: list[str]


def extractor_key(backbone: str, device: str) -> tuple:
    return ("extractor", backbone, device)


def extractor_for(context: WorkerContext, backbone: str, device: str) -> FeatureExtractor:
    """Fine-tuned backbones load from their saved weights, so new imports embed with them too."""
    def make() -> FeatureExtractor:
        network = load_finetuned(backbone) if is_finetuned(backbone) else load_backbone(backbone)
        return FeatureExtractor(network, resolve_device(device))

    return context.cached(extractor_key(backbone, device), make)


def embed_missing(
    context: WorkerContext, progress: TaskProgress, backbone: str, device: str, titles: bool, batch_size: int | None = None,
    workers: int | None = None,
) -> EmbedSummary:
    """Embed images (and titles) that have no vector yet; the expensive models load only if needed."""
    store = context.store
    summary = EmbedSummary()
    if store.items_without_embedding(backbone):
        progress.stage("Embedding images")
        summary.images = embed_catalog(
            store, backbone, batch_size=batch_size, workers=workers, progress=progress,
            extractor=extractor_for(context, backbone, device),
        )
    if titles:
        from core.text import TextModelError, TitleEncoder, embed_titles, titles_without_embedding

        if titles_without_embedding(store):
            progress.stage("Embedding titles")
            try:
                encoder = context.cached(("titles", device), lambda: TitleEncoder(device))
            except (TextModelError, ImportError, OSError) as exc:
                summary.titles_unavailable = str(exc)
            else:
                summary.titles = embed_titles(store, progress=progress, encoder=encoder).embedded
    return summary


def classifier_for(context: WorkerContext, backbone: str, embeddings_version: int) -> CatalogClassifier:
    """The lane's classifier for a backbone, its in-memory embeddings reloaded only when the
    session says they changed."""
    classifier: CatalogClassifier = context.cached(
        ("classifier", backbone), lambda: CatalogClassifier(context.store, backbone)
    )
    version_key = ("embeddings version", backbone)
    if context.cache.setdefault(version_key, embeddings_version) != embeddings_version:
        classifier.reload()
        context.cache[version_key] = embeddings_version
    return classifier


def fit(context: WorkerContext, progress: TaskProgress, request: FitRequest) -> FitResult:
    """Refit on the current labels with the lane's cached classifier."""
    classifier = classifier_for(context, request.backbone, request.embeddings_version)
    modalities = available_modalities(context.store, request.backbone)
    modality = request.modality if request.modality in modalities else None
    params = {}
    if is_meta_learner(request.method):
        params["meta_states"] = states_for_fit(request.method, classifier.features, request.meta_states)
    predictions = classifier.run(
        context.store.labels(), request.method, request.threshold, progress, modality=modality, **params
    )
    return FitResult(predictions, modalities)


def meta_train(
    context: WorkerContext, progress: TaskProgress, backbone: str, method: str, labels: dict[int, int]
) -> tuple[MetaTrained, ...]:
    """What a meta-learner learns from the catalog's labelled categories (minutes at most)."""
    progress.stage(f"Learning from your categories ({method})")
    return meta_train_catalog(context.store, backbone, method, labels, progress)


def similar_items(
    context: WorkerContext, progress: TaskProgress, backbone: str, embeddings_version: int, item_id: int, k: int
) -> list[Neighbour]:
    """Nearest items by cosine over the classifier's vectors; the search is rebuilt only when they change."""
    vectors = classifier_for(context, backbone, embeddings_version).vectors
    built = context.cache.get(("similarity", backbone))
    if built is None or built[0] is not vectors:
        built = context.cache[("similarity", backbone)] = (vectors, SimilaritySearch(vectors))
    return built[1].similar_to_item(item_id, k)


def suggestions(
    context: WorkerContext, progress: TaskProgress, backbone: str, embeddings_version: int,
    predictions: CatalogPredictions, labelled: list[int], n: int,
) -> list[Suggestion]:
    """The items most worth labelling next, near-copies told apart by the classifier's vectors."""
    vectors = classifier_for(context, backbone, embeddings_version).vectors
    return suggest(predictions, vectors, n=n, labelled=labelled)


def find_duplicates(
    context: WorkerContext, progress: TaskProgress, backbone: str, threshold: float
) -> list[DuplicateGroup]:
    from core.picture_hash import PictureHashes

    hashes = PictureHashes(context.store)
    return duplicate_groups(context.store.load_embeddings(backbone), threshold, progress=progress,
                            same_picture=hashes.same_picture)


def write_duplicates(
    context: WorkerContext, progress: TaskProgress, out_path: Path, groups: list[DuplicateGroup]
) -> int:
    return export_duplicates(context.store, groups, out_path)


def adapt_backbone(context: WorkerContext, progress: TaskProgress, method: str, base: str, device: str) -> str:
    """Train the backbone on the labelled images (e.g. fine-tuning) and re-embed the catalog;
    returns the new backbone's name."""
    adapter = make_adapter(method)
    progress.stage(f"Training the backbone ({adapter.name})")
    return adapter.adapt_catalog(context.store, base, device, progress)


def persist_predictions(
    context: WorkerContext, progress: TaskProgress, predictions: CatalogPredictions, backbone: str, threshold: float
) -> None:
    """What the CLI's `categories` and `export` read; cancelled (rolled back) when a label change comes."""
    save_predictions(context.store, predictions, backbone, threshold, progress=progress)


def export(
    context: WorkerContext, progress: TaskProgress, out_path: Path, top: int, excel_bom: bool,
    item_ids: np.ndarray | None, **formatting,
) -> int:
    return export_csv(context.store, out_path, top=top, excel_bom=excel_bom, item_ids=item_ids, progress=progress,
                      **formatting)


def import_files(
    context: WorkerContext, progress: TaskProgress, sources: list[str], category_id: int | None = None
) -> ImportResult:
    return ImportResult(import_images(context.store, sources, progress=progress), category_id)


def import_titles(context: WorkerContext, progress: TaskProgress, csv_path: str) -> tuple[int, list[str]]:
    """Titles (and labels) for items already in the catalog, from a path,title[,category] CSV."""
    return apply_titles_file(context.store, read_titles_csv(csv_path))


def load_search_texts(context: WorkerContext, progress: TaskProgress, item_ids: np.ndarray) -> dict[int, str]:
    """Each item's title, or its file name, for the search box; read in blocks so cancelling is quick."""
    titles: dict[int, str] = {}
    for start in range(0, len(item_ids), TITLE_BLOCK):
        progress(start, len(item_ids))
        titles.update(context.store.search_texts(item_ids[start : start + TITLE_BLOCK]))
    progress(len(item_ids), len(item_ids))
    return titles


def edit(context: WorkerContext, progress: TaskProgress, change: Callable[[Store], object]) -> object:
    """A catalog edit, e.g. `lambda store: store.set_labels(ids, category)`; edits run in order."""
    return change(context.store)
