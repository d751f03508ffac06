"""`protoshelf embed/classify/evaluate` with product titles, end to end on the demo catalog."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from conftest import DEMO
from protoshelf.core.cli import main
from protoshelf.core.store import Store
from protoshelf.core.text import TEXT_EMBEDDING

pytestmark = pytest.mark.slow  # the image and the title model on every demo picture


def run(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


SHOP = ["banana", "red_apple", "pear", "cherries", "lemon", "guitar", "violin", "flute", "banjo", "socks"]
PER_CATEGORY = 5


@pytest.fixture
def shop(tmp_path):
    """A few demo pictures and the demo's titles CSV, which also names pictures not copied."""
    (tmp_path / "shop" / "images").mkdir(parents=True)
    for name in SHOP:
        shutil.copy(DEMO / "images" / f"{name}.png", tmp_path / "shop" / "images")
    shutil.copy(DEMO / "titles.csv", tmp_path / "shop" / "titles.csv")
    return tmp_path / "shop"


def test_embed_computes_titles_too_and_classify_picks_a_modality(tmp_path, shop, capsys):
    db = tmp_path / "c.sqlite"
    run(capsys, "import", shop / "images", "--titles", shop / "titles.csv", "--db", db)
    assert "titles" not in run(capsys, "embed", "--db", db, "--device", "cpu", "--no-titles")
    with Store(db) as store:
        assert store.items([1])[1].title and len(store.load_embeddings(TEXT_EMBEDDING)) == 0
    out = run(capsys, "embed", "--db", db, "--device", "cpu")
    assert "Embedded 0 items" in out and f"Embedded {len(SHOP)} titles with text:all-MiniLM-L6-v2" in out
    assert "titles" not in run(capsys, "embed", "--db", db, "--device", "cpu")  # nothing left to do

    images = shop / "images"
    run(capsys, "label", "fruit", images / "banana.png", images / "red_apple.png", images / "pear.png", "--db", db)
    run(capsys, "label", "music", images / "guitar.png", images / "violin.png", images / "flute.png", "--db", db)
    assert "on fused features (image " in run(capsys, "classify", "--db", db, "--threshold", "0.3")
    assert "on text features (text 1.00)" in run(capsys, "classify", "--db", db, "--modality", "text")
    with Store(db) as store:
        assert len(store.predictions()) == len(SHOP)


def test_evaluate_measures_each_modality_on_titled_images(tmp_path, capsys):
    titles = {r["path"].rsplit("/", 1)[-1]: r["title"] for r in csv.DictReader((DEMO / "titles.csv").open())}
    tree = tmp_path / "data" / "tree"
    taken: dict[str, int] = {}
    with open(tmp_path / "titles.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "title"])
        for row in csv.DictReader((DEMO / "categories.csv").open()):
            name = row["path"].rsplit("/", 1)[-1]
            if row["category"] in {"fruit", "music", "tools"} and taken.get(row["category"], 0) < PER_CATEGORY:
                taken[row["category"]] = taken.get(row["category"], 0) + 1
                (tree / row["category"]).mkdir(parents=True, exist_ok=True)
                shutil.copy(DEMO / row["path"], tree / row["category"] / name)
                writer.writerow([f"data/tree/{row['category']}/{name}", titles[name]])
    cache = tmp_path / "cache.sqlite"
    results = {}
    for modality in ("image", "text", "fused"):
        out = run(capsys, "evaluate", tree, "--titles", tmp_path / "titles.csv", "--modality", modality,
                  "--shots", "2", "--episodes", "6", "--cache", cache, "--device", "cpu", "--json")
        results[modality] = json.loads(out)
    assert {r["modality"] for r in results.values()} == {"image", "text", "fused"}
    assert results["fused"]["image_weight"] is not None and results["image"]["image_weight"] is None
    assert all(r["ways"] == 3 and r["accuracy"] > 0.5 for r in results.values())
    with Store(cache) as store:
        assert len(store.load_embeddings(TEXT_EMBEDDING)) == sum(1 for _ in tree.glob("*/*.png"))


def test_loading_the_title_model_prints_no_bar_of_its_own_and_leaves_transformers_as_it_was(capfd):
    """transformers' "Loading weights" bar came out on stderr between ProtoShelf's lines."""
    from transformers.utils import logging as transformers_logging

    from protoshelf.core.text import TitleEncoder

    assert transformers_logging.is_progress_bar_enabled()
    TitleEncoder("cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()
