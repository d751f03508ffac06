"""Nearest catalog items by cosine similarity of their embeddings ("Show similar").

Search is exact: matrix products over the in-memory float32 matrix, a chunk of rows at a time,
so many queries at once never allocate a catalog-sized score table per query. Row norms are
computed once, so a query costs one read of the matrix. benchmarks/similar_search.py compared
this with a faiss IVF index on 1M 1280-d vectors (2 heavily shared cores): exact took ~1.2 s a
query, the index 10-50 ms, but the index took 7-12 minutes to build, holds a second 5 GB copy,
must be rebuilt as items arrive, and on unclustered vectors returned under 10% of the true
neighbours. For "Show similar", one query at a time, the exact answer with no build wins.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from protoshelf.core.store import Vectors

CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Neighbour:
    item_id: int
    similarity: float


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length one (zero rows stay zero), as float32."""
    matrix = np.asarray(matrix, np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def inverse_norms(matrix: np.ndarray) -> np.ndarray:
    out = np.empty(len(matrix), np.float32)
    for start in range(0, len(matrix), CHUNK_ROWS):
        chunk = matrix[start : start + CHUNK_ROWS]
        out[start : start + len(chunk)] = 1 / np.maximum(np.sqrt(np.einsum("ij,ij->i", chunk, chunk)), 1e-12)
    return out


class SimilaritySearch:
    """Exact cosine search over one backbone's vectors; build once, query many times."""

    def __init__(self, vectors: Vectors):
        self.item_ids = np.asarray(vectors.item_ids, np.int64)
        self.matrix = np.asarray(vectors.matrix, np.float32)
        self.inverse_norms = inverse_norms(self.matrix)

    def __len__(self) -> int:
        return len(self.item_ids)

    def vector_of(self, item_id: int) -> np.ndarray:
        rows = np.flatnonzero(self.item_ids == int(item_id))
        if not len(rows):
            raise KeyError(f"item {item_id} has no embedding")
        return self.matrix[rows[0]]

    def nearest(
        self, queries: np.ndarray, k: int = 10, exclude: Iterable[int] = ()
    ) -> list[list[Neighbour]]:
        """The k most similar items to each query vector, most similar first."""
        queries = unit_rows(np.atleast_2d(queries))
        excluded = np.fromiter((int(i) for i in exclude), np.int64)
        want = min(k + len(excluded), len(self))
        best_rows = np.empty((len(queries), 0), np.int64)
        best_sims = np.empty((len(queries), 0), np.float32)
        for start in range(0, len(self), CHUNK_ROWS):
            chunk = self.matrix[start : start + CHUNK_ROWS]
            sims = (queries @ chunk.T) * self.inverse_norms[start : start + len(chunk)]
            rows = _top_columns(sims, want) + start
            best_rows = np.concatenate([best_rows, rows], axis=1)
            best_sims = np.concatenate([best_sims, np.take_along_axis(sims, rows - start, axis=1)], axis=1)
            keep = _top_columns(best_sims, want)
            best_rows = np.take_along_axis(best_rows, keep, axis=1)
            best_sims = np.take_along_axis(best_sims, keep, axis=1)
        order = np.argsort(-best_sims, axis=1, kind="stable")
        best_rows = np.take_along_axis(best_rows, order, axis=1)
        best_sims = np.take_along_axis(best_sims, order, axis=1)
        results = []
        for rows, sims in zip(best_rows, best_sims):
            ids = self.item_ids[rows]
            wanted = ~np.isin(ids, excluded)
            results.append(
                [Neighbour(int(i), float(s)) for i, s in zip(ids[wanted][:k], sims[wanted][:k])]
            )
        return results

    def similar_to_item(self, item_id: int, k: int = 10) -> list[Neighbour]:
        return self.nearest(self.vector_of(item_id), k, exclude=[item_id])[0]


def _top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row, in no particular order."""
    if values.shape[1] <= k:
        return np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    return np.argpartition(-values, k - 1, axis=1)[:, :k]


def similar_items(vectors: Vectors, item_or_vector: int | np.ndarray, k: int = 10) -> list[Neighbour]:
    """Convenience for one query; keep a SimilaritySearch instead when asking repeatedly."""
    search = SimilaritySearch(vectors)
    if isinstance(item_or_vector, (int, np.integer)):
        return search.similar_to_item(int(item_or_vector), k)
    return search.nearest(np.asarray(item_or_vector), k)[0]
