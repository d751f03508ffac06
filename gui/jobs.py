"""The work the app hands to its worker lanes: each job is `job(context, progress, ...)`.

Jobs only call core functions on the lane's own Store; they never touch Qt objects. Models that are
slow to load are kept, so dropping three new images does not reload a network: the image backbone
and the title model once per process (core's `shared_backbone`, `shared_title_encoder`), the
in-memory classifier in the lane's WorkerContext. The core modules are imported inside the jobs,
on the worker thread: torch and torchvision take seconds to import, and the window must be on screen
before that (`load_model` is the first job and says so).
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protoshelf.core.progress import Cancelled
from protoshelf.gui.workers import TaskProgress, WorkerContext

if TYPE_CHECKING:
    from protoshelf.core.classify import CatalogClassifier, CatalogPredictions
    from protoshelf.core.duplicates import DuplicateGroup
    from protoshelf.core.embedding import EmbedReport, FeatureExtractor
    from protoshelf.core.importer import ImportReport
    from protoshelf.core.similar import Neighbour
    from protoshelf.core.store import Store
    from protoshelf.core.methods import MetaTrained
    from protoshelf.core.suggest import Suggestion
    from protoshelf.gui.export_dialog import ExportRequest

TITLE_BLOCK = 100_000


@dataclass
class EmbedSummary:
    images: EmbedReport | None = None
    titles: int = 0
    titles_unavailable: str = ""
    concepts: int = 0


@dataclass(frozen=True)
class ImportResult:
    report: ImportReport
    category_id: int | None
    cancelled: bool = False
    before: dict[int, int | None] | None = None
    """What the imported items were labelled before they became `category_id`'s examples (for
    undo); None when nothing was labelled: no category, or it was deleted meanwhile."""


@dataclass(frozen=True)
class CatalogState:
    """What the catalog holds now, read for a window that reloads or catches up with another
    program's changes."""

    labels: dict[int, int]
    categories: list
    item_ids: np.ndarray | None
    """None when the item count is the one the window already shows."""


@dataclass(frozen=True)
class FitRequest:
    backbone: str
    method: str
    threshold: float
    modality: str | None
    embeddings_version: int
    meta_states: tuple[MetaTrained, ...] = ()
    """For a meta-learner: what it learned from this catalog (else it starts untrained)."""
    device: str = "auto"
    """The session's device: where a tried image is embedded, and the category names (with the
    title model the session's titles use)."""


@dataclass(frozen=True)
class FitResult:
    predictions: CatalogPredictions | None
    modalities: list[str]


@dataclass(frozen=True)
class ModelInfo:
    """What the model settings offer, known once torch is loaded."""

    methods: list[str]
    backbones: list[str]
    devices: list[str]
    device_description: str
    descriptions: dict[str, str]
    """Each method's one line from the registry, for its tooltip."""
    backbone_adapters: frozenset[str] = frozenset()
    """Methods that are one-off jobs yielding a backbone (fine-tuning), not a method to keep."""
    meta_learners: frozenset[str] = frozenset()
    """Methods that first learn from the catalog's categories, so a fit needs their state."""


def extractor_key(backbone: str, device: str) -> tuple:
    return ("extractor", backbone, device)


TORCH_MODULES = ("torch", "torchvision")


def needs_torch(job: Callable) -> Callable:
    """A job whose imports reach torch, run once torch and torchvision are imported from the top.

    A job's own imports enter torch from different places on different lanes (the classifier on
    one, the embedding on another). Two lanes inside a circle of imports at once get a "partially
    initialized module" from Python's deadlock breaking: after a failed model load, the fit and the
    embedding both tried torch again, and the second failed differently and got a dialog of its
    own. Importing the top module first, holding no other import lock, a lane simply waits for
    another lane's import to finish or fail. Once imported, this is a dictionary lookup."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        for module in TORCH_MODULES:
            importlib.import_module(module)
        return job(*args, **kwargs)

    return run


@needs_torch
def load_model(context: WorkerContext, progress: TaskProgress, device: str) -> ModelInfo:
    """Import torch, torchvision and the classifier on the worker, and say what they offer."""
    from protoshelf.core.backbones import BackboneError, available_backbones, describe_device, resolve_device
    from protoshelf.core.classify import CatalogClassifier  # noqa: F401 - the import is the work
    from protoshelf.core.methods import describe, is_backbone_adapter, is_meta_learner, method_names

    devices = []
    for name in ("auto", "cpu", "cuda", "mps"):
        try:
            resolve_device(name)
        except BackboneError:
            continue
        devices.append(name)
    try:
        description = describe_device(resolve_device(device))
    except BackboneError as exc:
        description = str(exc)
    names = method_names()
    from protoshelf.core.methods.finetune import finetuned_backbones

    return ModelInfo(names, [*available_backbones(), *finetuned_backbones()], devices, description,
                     {n: describe(n) for n in names}, frozenset(filter(is_backbone_adapter, names)),
                     frozenset(filter(is_meta_learner, names)))


def extractor_for(context: WorkerContext, backbone: str, device: str) -> FeatureExtractor:
    """Fine-tuned backbones load from their saved weights, so new imports embed with them too."""
    from protoshelf.core.backbones import resolve_device
    from protoshelf.core.embedding import FeatureExtractor, pretrained_extractor
    from protoshelf.core.methods.finetune import is_finetuned, load_finetuned

    def make() -> FeatureExtractor:
        if is_finetuned(backbone):
            return FeatureExtractor(load_finetuned(backbone), resolve_device(device))
        return pretrained_extractor(backbone, resolve_device(device))

    return context.cached(extractor_key(backbone, device), make)


@needs_torch
def embed_missing(
    context: WorkerContext, progress: TaskProgress, backbone: str, device: str, titles: bool, batch_size: int | None = None,
    workers: int | None = None,
) -> EmbedSummary:
    """Embed images (and titles) that have no vector yet; the expensive models load only if needed."""
    from protoshelf.core.embedding import embed_catalog

    store = context.store
    summary = EmbedSummary()
    if store.items_without_embedding(backbone):
        progress.stage("Embedding images")
        summary.images = embed_catalog(
            store, backbone, batch_size=batch_size, workers=workers, progress=progress,
            extractor=extractor_for(context, backbone, device),
        )
    if titles:
        from protoshelf.core.text import TEXT_EMBEDDING, TextModelError, embed_titles, shared_title_encoder

        if store.titles_without_embedding(TEXT_EMBEDDING):
            progress.stage("Embedding titles")
            try:
                encoder = shared_title_encoder(device)
            except (TextModelError, ImportError, OSError) as exc:
                summary.titles_unavailable = str(exc)
            else:
                summary.titles = embed_titles(store, progress=progress, encoder=encoder).embedded
    names = names_for(context)
    names.use_device(device)
    summary.concepts = names.embed_concepts(store, backbone, progress)
    return summary


def names_for(context: WorkerContext) -> "NameEncoder":
    """One name encoder per lane: a category's name is embedded once, and again only when renamed.
    Jobs point it at their device (`NameEncoder.use_device`), so it shares the titles' model."""
    from protoshelf.core.names import NameEncoder

    return context.cached("names", NameEncoder)


def classifier_for(context: WorkerContext, backbone: str, embeddings_version: int) -> CatalogClassifier:
    """The lane's classifier for a backbone, its in-memory embeddings reloaded only when the
    session says they changed."""
    from protoshelf.core.classify import CatalogClassifier

    classifier: CatalogClassifier = context.cached(
        ("classifier", backbone), lambda: CatalogClassifier(context.store, backbone, names_for(context))
    )
    version_key = ("embeddings version", backbone)
    if context.cache.setdefault(version_key, embeddings_version) != embeddings_version:
        classifier.reload()
        context.cache[version_key] = embeddings_version
    return classifier


@needs_torch
def fit(context: WorkerContext, progress: TaskProgress, request: FitRequest) -> FitResult:
    """Refit on the current labels with the lane's cached classifier."""
    from protoshelf.core.classify import available_modalities
    from protoshelf.core.meta_training import states_for_fit
    from protoshelf.core.methods import is_meta_learner

    classifier = classifier_for(context, request.backbone, request.embeddings_version)
    names_for(context).use_device(request.device)
    modalities = available_modalities(context.store, request.backbone)
    modality = request.modality if request.modality in modalities else None
    params = {}
    if is_meta_learner(request.method):
        params["meta_states"] = states_for_fit(request.method, classifier.features, request.meta_states)
    predictions = classifier.run(
        context.store.labels(), request.method, request.threshold, progress, modality=modality, **params
    )
    return FitResult(predictions, modalities)


@needs_torch
def meta_train(
    context: WorkerContext, progress: TaskProgress, backbone: str, method: str, labels: dict[int, int]
) -> tuple[MetaTrained, ...]:
    """What a meta-learner learns from the catalog's labelled categories (minutes at most)."""
    from protoshelf.core.meta_training import meta_train_catalog

    progress.stage(f"Learning from your categories ({method})")
    return meta_train_catalog(context.store, backbone, method, labels, progress)


@needs_torch
def try_image(
    context: WorkerContext, progress: TaskProgress, request: FitRequest, image: Path | bytes
) -> list[tuple[int, float]]:
    """Every category's score for an image that is not in the catalog (nothing is imported), best
    first: the method fitted on the labelled items' image vectors, the image embedded by the backbone."""
    from protoshelf.core.classify import typical_shots
    from protoshelf.core.images import open_image
    from protoshelf.core.methods import make_method, resolve_method

    vectors = classifier_for(context, request.backbone, request.embeddings_version).vectors
    labels = context.store.labels()
    rows = np.flatnonzero(np.isin(vectors.item_ids, np.fromiter(labels, np.int64, len(labels))))
    if not len(rows):
        return []
    categories = [labels[int(i)] for i in vectors.item_ids[rows]]
    method = make_method(resolve_method(request.method, typical_shots(categories)))
    method.fit(vectors.matrix[rows], categories, unlabelled=vectors.matrix, progress=progress)
    query = extractor_for(context, request.backbone, request.device).embed_images([open_image(image)])
    scores = method.predict(np.asarray(query, np.float32))[0]
    return [(int(method.classes_[j]), float(scores[j])) for j in np.argsort(-scores, kind="stable")]


def similar_items(
    context: WorkerContext, progress: TaskProgress, backbone: str, embeddings_version: int, item_id: int, k: int
) -> list[Neighbour]:
    """Nearest items by cosine over the classifier's vectors; the search is rebuilt only when they change."""
    from protoshelf.core.similar import SimilaritySearch

    vectors = classifier_for(context, backbone, embeddings_version).vectors
    built = context.cache.get(("similarity", backbone))
    if built is None or built[0] is not vectors:
        built = context.cache[("similarity", backbone)] = (vectors, SimilaritySearch(vectors))
    return built[1].similar_to_item(item_id, k)


@needs_torch
def suggestions(
    context: WorkerContext, progress: TaskProgress, backbone: str, embeddings_version: int,
    predictions: CatalogPredictions, labelled: list[int], n: int,
) -> list[Suggestion]:
    """The items most worth labelling next, near-copies told apart by the classifier's vectors."""
    from protoshelf.core.suggest import suggest

    vectors = classifier_for(context, backbone, embeddings_version).vectors
    return suggest(predictions, vectors, n=n, labelled=labelled)


def find_duplicates(
    context: WorkerContext, progress: TaskProgress, backbone: str, threshold: float
) -> list[DuplicateGroup]:
    from protoshelf.core.duplicates import duplicate_groups
    from protoshelf.core.picture_hash import PictureHashes

    hashes = PictureHashes(context.store)
    return duplicate_groups(context.store.load_embeddings(backbone), threshold, progress=progress,
                            same_picture=hashes.same_picture)


def write_duplicates(
    context: WorkerContext, progress: TaskProgress, out_path: Path, groups: list[DuplicateGroup]
) -> int:
    from protoshelf.core.duplicates import export_duplicates

    return export_duplicates(context.store, groups, out_path)


@needs_torch
def adapt_backbone(context: WorkerContext, progress: TaskProgress, method: str, base: str, device: str) -> str:
    """Train the backbone on the labelled images (e.g. fine-tuning) and re-embed the catalog;
    returns the new backbone's name."""
    from protoshelf.core.methods import make_adapter

    adapter = make_adapter(method)
    progress.stage(f"Training the backbone ({adapter.name})")
    return adapter.adapt_catalog(context.store, base, device, progress)


@needs_torch
def persist_predictions(
    context: WorkerContext, progress: TaskProgress, predictions: CatalogPredictions, backbone: str, threshold: float
) -> None:
    """What the CLI's `categories` and `export` read; cancelled (rolled back) when a label change comes."""
    from protoshelf.core.classify import save_predictions

    save_predictions(context.store, predictions, backbone, threshold, progress=progress)


def export(context: WorkerContext, progress: TaskProgress, request: ExportRequest) -> tuple[int, list[str]]:
    """The export dialog's request, passed whole: a new option is one field there and one use here.
    Returns the rows written and the export's notes."""
    from protoshelf.core.export import export_csv

    notes: list[str] = []
    rows = export_csv(context.store, request.path, top=request.top, excel_bom=request.excel_bom,
                      item_ids=request.item_ids, progress=progress,
                      format=request.format, include_unassigned=request.include_unassigned, notes=notes)
    return rows, notes


def import_files(
    context: WorkerContext, progress: TaskProgress, sources: list[str], category_id: int | None = None
) -> ImportResult:
    """Files dropped on a category become its examples here, on the worker, in the import's own
    job: the window only shows them (as one undo step). Cancelled part way, what came in is still
    labelled and returned, marked cancelled; and a window closed meanwhile, which hears of no
    result, loses nothing either."""
    from protoshelf.core.importer import ImportReport, import_images

    report = ImportReport()
    cancelled = False
    try:
        import_images(context.store, sources, progress=progress, report=report)
    except Cancelled:
        if category_id is None or not report.item_ids:
            raise
        cancelled = True
    before = _label_imported(context.store, report.item_ids, category_id) if category_id is not None else None
    return ImportResult(report, category_id, cancelled, before)


def _label_imported(store: Store, item_ids: list[int], category_id: int) -> dict[int, int | None] | None:
    from sqlalchemy.exc import IntegrityError

    try:
        return store.set_labels(item_ids, category_id)
    except IntegrityError:
        if any(c.id == category_id for c in store.categories()):  # not the deletion: say what it is
            raise
        return None  # the category was deleted while the files came in


def catalog_state(context: WorkerContext, progress: TaskProgress, shown_items: int | None = None) -> CatalogState:
    """Labels, categories and, unless the window already shows `shown_items` items, the item ids,
    as the catalog holds them now."""
    store = context.store
    ids = None if shown_items is not None and store.item_count() == shown_items else store.item_ids()
    return CatalogState(store.labels(), store.categories(), ids)


def labels_of(context: WorkerContext, progress: TaskProgress, item_ids: list[int]) -> dict[int, int]:
    """The labels these items have in the catalog now (unlabelled ones are left out)."""
    return context.store.labels(item_ids)


def item_ids(context: WorkerContext, progress: TaskProgress) -> np.ndarray:
    """Every item id, sorted: at a million items, a read the window must not wait for."""
    return context.store.item_ids()


def waiting_to_embed(context: WorkerContext, progress: TaskProgress, backbone: str) -> int:
    return len(context.store.items_without_embedding(backbone))


def import_titles(context: WorkerContext, progress: TaskProgress, csv_path: str) -> tuple[int, list[str]]:
    """Titles (and labels) for items already in the catalog, from a path,title[,category] CSV."""
    from protoshelf.core.importer import apply_titles_file, read_titles_csv

    return apply_titles_file(context.store, read_titles_csv(csv_path))


def load_search_texts(context: WorkerContext, progress: TaskProgress, item_ids: np.ndarray) -> dict[int, str]:
    """Each item's title, or its file name, for the search box; read in blocks so cancelling is quick."""
    titles: dict[int, str] = {}
    for start in range(0, len(item_ids), TITLE_BLOCK):
        progress(start, len(item_ids))
        titles.update(context.store.search_texts(item_ids[start : start + TITLE_BLOCK]))
    progress(len(item_ids), len(item_ids))
    return titles


def edit(context: WorkerContext, progress: TaskProgress, change: Callable[[Store], object],
         categories: bool = False) -> list | None:
    """A catalog edit, e.g. `lambda store: store.set_labels(ids, category)`; edits run in order.
    With `categories`, the category list as the edit left it, read in the same task."""
    change(context.store)
    return context.store.categories() if categories else None
