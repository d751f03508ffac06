"""Title embeddings in a real catalog: offline model, caching, resume, re-embedding, fallbacks."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import no_network, write_image
from protoshelf.core import text
from protoshelf.core.classify import CatalogClassifier, available_modalities
from protoshelf.core.importer import TitlesFile, apply_titles_file, import_images
from protoshelf.core.progress import Cancelled
from protoshelf.core.text import TEXT_EMBEDDING, TitleEncoder, embed_titles


@pytest.fixture(scope="module")
def encoder():
    """Loaded once, with every socket refused: the model must come from its package."""
    with no_network():
        return TitleEncoder("cpu")


def catalog_items(store, tmp_path, titles: list[str | None]) -> list[int]:
    paths = [write_image(tmp_path / f"img{i}.png", colour=(20 * i, 90, 200 - 20 * i)) for i in range(len(titles))]
    by_path = {str(p.resolve()): t for p, t in zip(paths, titles) if t}
    report = import_images(store, paths, titles=by_path)
    return [report.ids_by_path[str(p.resolve())] for p in paths]


def text_ids(store) -> list[int]:
    return store.load_embeddings(TEXT_EMBEDDING).item_ids.tolist()


def test_the_model_loads_from_its_package_without_the_network(encoder):
    with no_network():
        shoe, sneaker, opener = encoder(
            ["men's running shoe, size 42", "trail running sneaker", "stainless steel can opener"]
        )
    assert shoe.shape == (384,) and np.linalg.norm(shoe) == pytest.approx(1.0, abs=1e-4)
    assert shoe @ sneaker > shoe @ opener + 0.2


def test_only_titled_items_without_a_vector_are_embedded(store, tmp_path, encoder):
    ids = catalog_items(store, tmp_path, ["red apple", None, "  ", "violin"])
    report = embed_titles(store, encoder=encoder)
    assert report.embedded == 2 and report.model == TEXT_EMBEDDING
    assert text_ids(store) == [ids[0], ids[3]]
    assert embed_titles(store, encoder=encoder).embedded == 0


def test_a_cancelled_run_keeps_finished_batches_and_resumes(store, tmp_path, encoder, monkeypatch):
    ids = catalog_items(store, tmp_path, ["apple", "pear", "banjo", "flute", "hammer"])

    def cancel_after_first_batch(done, total):
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        embed_titles(store, batch_size=2, progress=cancel_after_first_batch, encoder=encoder)
    assert text_ids(store) == ids[:2]
    calls = []
    assert embed_titles(store, batch_size=2, progress=lambda d, t: calls.append((d, t)), encoder=encoder).embedded == 3
    assert calls == [(0, 3), (2, 3), (3, 3)]
    assert text_ids(store) == ids

    def no_model(*args, **kwargs):
        raise AssertionError("nothing to embed: the model must not even load")

    monkeypatch.setattr(text, "TitleEncoder", no_model)
    monkeypatch.setattr(text, "_shared", {})
    assert embed_titles(store).embedded == 0


def test_a_changed_title_is_embedded_again_and_an_unchanged_one_is_kept(store, tmp_path, encoder):
    ids = catalog_items(store, tmp_path, ["wooden spoon", "teapot", "coffee cup"])
    embed_titles(store, encoder=encoder)
    before = store.load_embeddings(TEXT_EMBEDDING).matrix.copy()

    store.set_title(ids[0], "wooden spoon")  # same title: the vector stays
    store.set_title(ids[1], "cast iron teapot")  # edited in the app
    apply_titles_file(store, TitlesFile({store.items([ids[2]])[ids[2]].path: "espresso cup"}, {}, []))
    assert text_ids(store) == [ids[0]]
    assert [i for i, _ in store.titles_without_embedding(TEXT_EMBEDDING)] == ids[1:]

    assert embed_titles(store, encoder=encoder).embedded == 2
    after = store.load_embeddings(TEXT_EMBEDDING).matrix
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], encoder(["cast iron teapot"])[0], atol=1e-5)
    assert not np.allclose(after[1], before[1])


def test_a_removed_title_removes_its_vector_for_good(store, tmp_path, encoder):
    ids = catalog_items(store, tmp_path, ["scarf", "gloves"])
    embed_titles(store, encoder=encoder)
    store.set_title(ids[1], None)
    assert text_ids(store) == [ids[0]]
    assert embed_titles(store, encoder=encoder).embedded == 0


def test_set_titles_writes_only_the_changes_in_one_go(store, tmp_path, encoder):
    ids = catalog_items(store, tmp_path, ["axe", "saw", None])
    embed_titles(store, encoder=encoder)
    assert store.set_titles({ids[0]: "axe", ids[1]: " hand saw ", ids[2]: ""}) == 1
    assert store.items([ids[1]])[ids[1]].title == "hand saw"
    assert text_ids(store) == [ids[0]]


def test_image_embeddings_are_untouched_by_title_changes(store, tmp_path):
    ids = catalog_items(store, tmp_path, ["ladder"])
    store.save_embeddings("efficientnet_lite0", ids, np.ones((1, 4), np.float32))
    store.set_title(ids[0], "step ladder")
    assert store.load_embeddings("efficientnet_lite0").item_ids.tolist() == ids


def hand_made_catalog(store, tmp_path):
    """Six items: 0 has no title, 5 has no image vector; two clusters in both modalities."""
    ids = catalog_items(store, tmp_path, [None, "a1", "a2", "b1", "b2", "b3"])
    rng = np.random.default_rng(0)
    image_centres, text_centres = rng.normal(size=(2, 2, 16)) * 3
    side = np.array([0, 0, 0, 1, 1, 1])
    image = image_centres[side] + rng.normal(size=(6, 16)) * 0.3
    title = text_centres[side] + rng.normal(size=(6, 16)) * 0.3
    store.save_embeddings("efficientnet_lite0", ids[:5], image[:5])
    store.save_embeddings(TEXT_EMBEDDING, ids[1:], title[1:])
    a, b = store.create_category("a"), store.create_category("b")
    return ids, {ids[1]: a, ids[2]: a, ids[3]: b, ids[4]: b}, (a, b)


def test_modalities_offered_follow_what_the_catalog_has_embedded(store, tmp_path):
    assert available_modalities(store) == []
    ids = catalog_items(store, tmp_path, ["x", "y"])
    store.save_embeddings(TEXT_EMBEDDING, ids[:1], np.ones((1, 3), np.float32))
    assert available_modalities(store) == ["text"]
    store.save_embeddings("efficientnet_lite0", ids, np.ones((2, 3), np.float32))
    assert available_modalities(store) == ["fused", "image", "text"]


def test_catalog_classifier_falls_back_per_item_and_defaults_to_fused(store, tmp_path):
    ids, labels, (a, b) = hand_made_catalog(store, tmp_path)
    classifier = CatalogClassifier(store)
    fused = classifier.run(labels)
    assert fused.modality == "fused" and set(fused.weights) == {"image", "text"}
    assert fused.item_ids.tolist() == ids  # item 0 (no title) and item 5 (no image) included
    best = fused.classes[fused.scores.argmax(axis=1)].tolist()
    assert best == [a, a, a, b, b, b]

    image = classifier.run(labels, modality="image")
    text_only = classifier.run(labels, modality="text")
    assert image.item_ids.tolist() == ids[:5] and text_only.item_ids.tolist() == ids[1:]
    # Each run has its own calibration, so the fallback matches up to it.
    np.testing.assert_allclose(fused.scores[0], image.scores[0], atol=1e-3)
    np.testing.assert_allclose(fused.scores[5], text_only.scores[4], atol=1e-3)
    with pytest.raises(ValueError, match="modality"):
        classifier.run(labels, modality="audio")


def test_text_modality_without_titles_has_nothing_to_learn_from(store, tmp_path):
    ids = catalog_items(store, tmp_path, [None, None])
    store.save_embeddings("efficientnet_lite0", ids, np.eye(2, 4, dtype=np.float32))
    category = store.create_category("c")
    classifier = CatalogClassifier(store)
    assert classifier.run({ids[0]: category}).modality == "image"
    assert classifier.run({ids[0]: category}, modality="text") is None


def test_one_title_model_serves_the_category_names_and_encodes_one_call_at_a_time(monkeypatch, encoder):
    # The app's title lane and each lane's names used to load a model of their own. A shared one's
    # fast tokenizer refuses two threads at once ("Already borrowed"), so encoding takes turns.
    import threading
    import time

    from protoshelf.core.names import NameEncoder

    monkeypatch.setattr(text, "_shared", {"cpu": encoder})
    assert text.shared_title_encoder("cpu") is encoder and NameEncoder("cpu").model() is encoder
    running, most = [0], [0]

    def encode(titles, **_options):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.02)
        running[0] -= 1
        return np.ones((len(titles), 4), np.float32)

    monkeypatch.setattr(encoder.model, "encode", encode)
    threads = [threading.Thread(target=encoder, args=(["red shoe"] * 300,), kwargs={"batch_size": 64})
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    assert encoder([]).shape == (0, 384)  # all-MiniLM-L6-v2
