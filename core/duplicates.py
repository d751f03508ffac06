"""Groups of near-duplicate items: the same picture resized, re-encoded or slightly cropped.

Byte-identical files cannot occur twice in a catalog (import skips a file whose sha256 is already
there), so duplicates are found by embedding: two items are linked when the cosine similarity of
their vectors is at least a threshold, and a group is a connected component of those links. All
pairs are compared in tiles of a matrix product, so memory stays bounded; links are merged into
components as they arrive, so a loose threshold cannot pile up millions of stored pairs.
Comparing all pairs is quadratic: ~10M pairs/s on 2 busy cores (benchmarks/similar_search.py
--duplicates), minutes for 100k items, hours for 1M. DEFAULT_THRESHOLD sits between resized,
re-encoded and 3%-cropped copies of the demo pictures (>= 0.95 to their original) and different
products that look alike (axe and hammer, red and green apple: <= 0.89).
"""
from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from core.export import neutralise
from core.progress import Progress, no_progress
from core.similar import inverse_norms
from core.store import Store, Vectors

DEFAULT_THRESHOLD = 0.92
TILE_ROWS = 2048
TILE_COLUMNS = 16_384
MAX_PENDING_LINKS = 2_000_000


@dataclass(frozen=True)
class DuplicateGroup:
    """Items judged the same product; `similarities[i]` is item i's cosine to the first item."""

    item_ids: tuple[int, ...]
    similarities: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.item_ids)


def duplicate_groups(
    vectors: Vectors, threshold: float = DEFAULT_THRESHOLD, progress: Progress = no_progress
) -> list[DuplicateGroup]:
    """Connected components of "cosine >= threshold" with two or more items, largest first."""
    matrix = np.asarray(vectors.matrix, np.float32)
    n = len(matrix)
    if n < 2:
        return []
    inverse = inverse_norms(matrix)
    component = np.arange(n)
    pending: list[np.ndarray] = []
    pending_links = 0
    total_pairs = n * (n + 1) // 2
    done_pairs = 0
    progress(0, n)
    for top in range(0, n, TILE_ROWS):
        rows = slice(top, min(top + TILE_ROWS, n))
        for left in range(top, n, TILE_COLUMNS):
            columns = slice(left, min(left + TILE_COLUMNS, n))
            sims = matrix[rows] @ matrix[columns].T
            sims *= inverse[rows, None]
            sims *= inverse[None, columns]
            a, b = np.nonzero(sims >= threshold)
            a, b = a + top, b + left
            upper = a < b
            if upper.any():
                pending.append(np.stack([a[upper], b[upper]]))
                pending_links += int(upper.sum())
        if pending_links > MAX_PENDING_LINKS:
            component = _merge(component, pending)
            pending, pending_links = [], 0
        done_pairs += (rows.stop - top) * (2 * n - top - rows.stop + 1) // 2
        progress(n * done_pairs // total_pairs, n)
    component = _merge(component, pending)
    return _groups(vectors.item_ids, matrix, inverse, component)


def _merge(component: np.ndarray, links: list[np.ndarray]) -> np.ndarray:
    """Each row's component, named by its first row, once `links` join the graph `component` sums up."""
    if not links:
        return component
    n = len(component)
    pairs = np.concatenate([np.stack([np.arange(n), component])] + links, axis=1)
    graph = coo_matrix((np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    _, first_member = np.unique(labels, return_index=True)
    return first_member[labels]


def _groups(item_ids: np.ndarray, matrix: np.ndarray, inverse: np.ndarray, component: np.ndarray) -> list[DuplicateGroup]:
    sizes = np.bincount(component)
    members = np.flatnonzero(sizes[component] > 1)
    order = members[np.lexsort((item_ids[members], component[members]))]
    groups = []
    for rows in np.split(order, np.flatnonzero(np.diff(component[order])) + 1):
        if len(rows) < 2:
            continue
        sims = (matrix[rows] @ matrix[rows[0]]) * inverse[rows] * inverse[rows[0]]
        sims[0] = 1.0
        groups.append(DuplicateGroup(tuple(int(i) for i in item_ids[rows]), tuple(round(float(s), 4) for s in sims)))
    groups.sort(key=lambda g: (-len(g), g.item_ids[0]))
    return groups


def export_duplicates(store: Store, groups: list[DuplicateGroup], out_path: str | Path) -> int:
    """One CSV row per grouped item; the file appears only once it is complete. Returns rows."""
    out_path = Path(out_path).expanduser()
    items = store.items([i for g in groups for i in g.item_ids])
    fd, tmp_name = tempfile.mkstemp(prefix=".duplicates-", suffix=".csv", dir=out_path.parent)
    written = 0
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["group", "group_size", "item_id", "path", "title", "similarity_to_first"])
            for number, group in enumerate(groups, start=1):
                for item_id, similarity in zip(group.item_ids, group.similarities):
                    item = items.get(item_id)
                    writer.writerow([
                        number, len(group), item_id, neutralise(item.path if item else ""),
                        neutralise(item.title if item else ""), f"{similarity:.4f}",
                    ])
                    written += 1
        os.replace(tmp_name, out_path)
    except BaseException:
        os.unlink(tmp_name)
        raise
    return written
