"""Similar-item search: chunked exact search against brute force, and `protoshelf similar`."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import protoshelf.core.similar
from conftest import DEMO
from protoshelf.core.cli import main
from protoshelf.core.embedding import embed_catalog
from protoshelf.core.importer import import_images
from protoshelf.core.similar import Neighbour, SimilaritySearch, similar_items
from protoshelf.core.store import Store, Vectors


def brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = np.array([row @ query / (np.linalg.norm(row) * np.linalg.norm(query)) for row in matrix.astype(np.float64)])
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]


@pytest.fixture
def random_vectors():
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((1000, 24)).astype(np.float32) * rng.uniform(0.1, 10, (1000, 1)).astype(np.float32)
    ids = np.sort(rng.choice(10**6, 1000, replace=False)).astype(np.int64)
    return Vectors(ids, matrix)


@pytest.mark.parametrize("chunk_rows", [1000, 97, 5])
def test_nearest_matches_brute_force_across_chunk_boundaries(random_vectors, monkeypatch, chunk_rows):
    monkeypatch.setattr(protoshelf.core.similar, "CHUNK_ROWS", chunk_rows)
    search = SimilaritySearch(random_vectors)
    queries = np.random.default_rng(1).standard_normal((6, 24)).astype(np.float32)
    results = search.nearest(queries, k=12)
    for query, found in zip(queries, results):
        rows, sims = brute_force(random_vectors.matrix, query, 12)
        assert [n.item_id for n in found] == list(random_vectors.item_ids[rows])
        np.testing.assert_allclose([n.similarity for n in found], sims, atol=1e-5)


def test_an_item_is_not_its_own_neighbour(random_vectors):
    item = int(random_vectors.item_ids[123])
    found = similar_items(random_vectors, item, k=5)
    rows, sims = brute_force(random_vectors.matrix, random_vectors.matrix[123], 6)
    assert rows[0] == 123 and sims[0] == pytest.approx(1.0)
    assert [n.item_id for n in found] == list(random_vectors.item_ids[rows[1:]])


def test_k_larger_than_the_catalog_and_exclusions():
    vectors = Vectors(np.array([3, 4, 5]), np.array([[1, 0], [1, 1], [0, 1]], np.float32))
    search = SimilaritySearch(vectors)
    assert [n.item_id for n in search.nearest(np.array([1.0, 0.1]), k=10)[0]] == [3, 4, 5]
    assert search.similar_to_item(3, k=10) == [Neighbour(4, pytest.approx(0.7071, abs=1e-4)), Neighbour(5, 0.0)]
    assert [n.item_id for n in search.nearest(np.array([1.0, 0.1]), k=2, exclude=[3])[0]] == [4, 5]
    with pytest.raises(KeyError):
        search.vector_of(99)


def test_zero_vectors_do_not_poison_the_ranking():
    vectors = Vectors(np.array([1, 2]), np.array([[0, 0], [2, 0]], np.float32))
    found = similar_items(vectors, np.array([1.0, 0.0]), k=2)
    assert [n.item_id for n in found] == [2, 1] and np.isfinite([n.similarity for n in found]).all()


def test_cli_similar_finds_the_original_of_an_image_outside_the_catalog(tmp_path, extractor, capsys):
    shop = tmp_path / "shop"
    shop.mkdir()
    for name in ("axe", "hammer", "banana", "red_apple", "violin", "coat"):
        shutil.copy(DEMO / "images" / f"{name}.png", shop)
    db = tmp_path / "c.sqlite"
    from protoshelf.core.store import Store

    with Store(db) as store:
        import_images(store, [shop])
        embed_catalog(store, extractor=extractor, workers=0)
    copy = tmp_path / "photo of a banana.jpg"
    Image.open(shop / "banana.png").convert("RGB").resize((180, 180)).save(copy, quality=85)

    assert main(["similar", str(copy), "-k", "3", "--db", str(db), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rank") and len(lines) == 4
    assert lines[1].endswith("banana.png")

    assert main(["similar", str(shop / "axe.png"), "-k", "2", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "is item" in lines[0] and len(lines) == 4
    assert not any(line.endswith("axe.png") for line in lines[2:])
    assert lines[2].endswith("hammer.png")


def test_cli_similar_without_embeddings_says_what_to_do(tmp_path, capsys):
    image = DEMO / "images" / "axe.png"
    Store(tmp_path / "empty.sqlite").close()
    assert main(["similar", str(image), "--db", str(tmp_path / "empty.sqlite")]) == 2  # the user's next step, not a fault
    assert "run `protoshelf embed` first" in capsys.readouterr().err
