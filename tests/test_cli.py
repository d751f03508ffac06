"""The `protoshelf` command end to end on the demo pictures."""
from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest

from conftest import DEMO
from protoshelf.core.cli import PARTLY_DONE, main
from protoshelf.core.store import Store


@pytest.fixture
def shop(tmp_path):
    folder = tmp_path / "shop"
    shutil.copytree(DEMO / "images", folder)
    return folder


def run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_import_embed_label_classify_export(tmp_path, shop, capsys):
    db = str(tmp_path / "c.sqlite")
    images = len(list(shop.glob("*.png")))
    assert images == 77
    assert run(capsys, "import", str(shop), "--db", db) == f"Import: {images} added, 0 already in the catalog, 0 skipped.\n"
    assert run(capsys, "import", str(shop), "--db", db) == f"Import: 0 added, {images} already in the catalog, 0 skipped.\n"
    embedded = run(capsys, "embed", "--db", db, "--device", "cpu", "--batch-size", "32")
    assert f"Embedded {images} items with efficientnet_lite0 on cpu; 0 failed." in embedded
    labelled = run(capsys, "label", "fruit", str(shop / "banana.png"), str(shop / "red_apple.png"), str(shop / "grapes.png"),
                   "--db", db)
    assert labelled.startswith("Labelled 3 items as 'fruit' (") and "0 newly imported)" in labelled
    run(capsys, "label", "music", str(shop / "guitar.png"), str(shop / "violin.png"), str(shop / "trumpet.png"), "--db", db)
    classified = re.search(r"Classified (\d+) items .*; (\d+) unassigned", run(capsys, "classify", "--db", db, "--threshold", "0.4"))
    assert classified and int(classified[1]) == images and 0 < int(classified[2]) < images - 6, classified
    listing = {line.split()[0]: line.split()[1:] for line in run(capsys, "categories", "--db", db).splitlines()[1:]}
    assert set(listing) == {"fruit", "music"} and listing["fruit"][0] == listing["music"][0] == "3"
    assert 0 < int(listing["fruit"][1]) + int(listing["music"][1]) == images - 6 - int(classified[2])
    out = tmp_path / "out.csv"
    assert run(capsys, "export", str(out), "--db", db, "--top-k", "2") == f"Wrote {images} rows to {out}.\n"
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open())}
    assert len(rows) == images
    assert rows["banana.png"]["labelled_category"] == "fruit"
    assert rows["cherries.png"]["predicted_category"] == "fruit"
    assert rows["lemon.png"]["predicted_category"] == "fruit"
    assert rows["banjo.png"]["predicted_category"] == "music"
    assert rows["socks.png"]["predicted_category"] == ""  # unlike both: unassigned
    assert float(rows["socks.png"]["confidence"]) < 0.4


def test_evaluate_json(tmp_path, capsys):
    tree = tmp_path / "tree"
    for category, names in {"fruit": ["banana", "cherries", "lemon", "pear"], "music": ["banjo", "flute", "guitar", "trumpet"]}.items():
        (tree / category).mkdir(parents=True)
        for n in names:
            shutil.copy(DEMO / "images" / f"{n}.png", tree / category)
    out = run(capsys, "evaluate", str(tree), "--shots", "1", "--episodes", "4", "--json",
              "--cache", str(tmp_path / "cache.sqlite"), "--device", "cpu")
    result = json.loads(out)
    assert set(result) >= {"accuracy", "ci95", "ways", "shots", "episodes", "method", "per_category", "fit_seconds"}
    assert result["ways"] == 2 and result["accuracy"] > 0.5


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    assert main(["label", "bad\nname", str(DEMO / "images" / "banana.png"), "--db", db]) == 2
    assert "line breaks" in capsys.readouterr().err
    Store(db).close()
    assert main(["classify", "--db", db]) == 1
    assert "label a few" in capsys.readouterr().err


def test_a_mistyped_db_is_refused_and_starts_no_catalog(tmp_path, capsys, monkeypatch):
    """Only import and label start a catalog: `export` with a typo in --db once replaced a good
    CSV with a header and left an empty catalog behind."""
    db = tmp_path / "shop.sqlite"
    run(capsys, "label", "fruit", str(DEMO / "images" / "banana.png"), "--db", str(db))
    out = tmp_path / "predictions.csv"
    run(capsys, "export", str(out), "--db", str(db))
    exported = out.read_bytes()
    for command in (["export", str(out)], ["categories"], ["classify"], ["embed"], ["duplicates", str(tmp_path / "d.csv")]):
        assert main([*command, "--db", str(tmp_path / "shpo.sqlite")]) == 2
        assert "there is no catalog at" in capsys.readouterr().err
    assert out.read_bytes() == exported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "shop.sqlite"]
    monkeypatch.setenv("HOME", str(tmp_path))  # a quoted ~ reaches us unexpanded, and means the home folder
    assert "fruit" in run(capsys, "categories", "--db", "~/shop.sqlite")


def test_import_of_a_mistyped_source_is_refused_and_a_skipped_file_is_an_exit_status(tmp_path, shop, capsys):
    db = tmp_path / "c.sqlite"
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    for sources in ([str(tmp_path / "shpo")], [""], [str(tmp_path / "dangling.png")], [str(tmp_path / "feed.csv")],
                    [str(shop), "--titles", str(tmp_path / "titles.csv")], [str(shop / "*.jpeg")]):
        assert main(["import", *sources, "--db", str(db)]) == 2, sources
        assert "there is no file or folder at" in capsys.readouterr().err and not db.exists()
    main(["import", str(shop / "*.jpeg"), "--db", str(db)])
    assert "a pattern that matched no file?" in capsys.readouterr().err
    (shop / "broken.png").write_bytes(b"not a picture")
    for _ in range(2):  # the rest is imported; a script sees the skip, every time
        assert main(["import", str(shop), "--db", str(db)]) == PARTLY_DONE
        captured = capsys.readouterr()
        assert "skipped" in captured.err and "broken.png" in captured.err
    assert "77 already in the catalog" in captured.out
    assert main(["label", "Fruit", str(shop / "banana.png"), str(shop / "broken.png"), "--db", str(db)]) == PARTLY_DONE


@pytest.mark.parametrize("db", ["https://shop.example.com/catalog.sqlite", "file:///tmp/c.sqlite", "s3://bucket/c.sqlite"])
def test_a_web_address_as_db_is_refused(tmp_path, capsys, monkeypatch, db):
    monkeypatch.chdir(tmp_path)
    for command in (["import", str(DEMO / "images" / "banana.png")], ["gui"]):
        assert main([*command, "--db", db], open_app=lambda *a, **k: 0) == 2
        assert "looks like a web address" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_label_says_which_items_it_moved_out_of_other_categories(tmp_path, shop, capsys):
    """`label PICTURE PICTURE` (the category forgotten) is refused; a real move is told."""
    db = str(tmp_path / "c.sqlite")
    pictures = sorted(str(p) for p in shop.iterdir())[:3]
    assert run(capsys, "label", "fruit", *pictures, pictures[0], "--db", db).startswith("Labelled 3 items as 'fruit'")
    assert main(["label", "FRUIT", *pictures[:2], "--db", db]) == 0
    said = capsys.readouterr()
    assert said.out.startswith("Labelled 2 items as 'fruit' (") and not said.err
    assert main(["label", pictures[0], *pictures[1:], "--db", db]) == 2
    assert "is a file or folder here, so it was not taken as a new category name" in capsys.readouterr().err
    assert main(["label", "veg", *pictures[1:], "--db", db]) == 0
    said = capsys.readouterr()
    assert said.out.startswith("Labelled 2 items as 'veg'")
    assert said.err == "2 of them were moved from another category: 2 from 'fruit'\n"


def test_ctrl_c_is_reported_and_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("protoshelf.core.importer.import_images", interrupted)
    assert main(["import", str(DEMO / "images"), "--db", str(tmp_path / "c.sqlite")]) == 130
    assert "Finished batches are saved; run the command again to continue" in capsys.readouterr().err


def test_ctrl_c_during_an_export_says_the_old_file_is_untouched(tmp_path, capsys, monkeypatch):
    """It said "Finished batches are saved; run the command again to continue": an export writes
    nothing until it is whole."""
    db = str(tmp_path / "c.sqlite")
    assert main(["import", str(DEMO / "images" / "banana.png"), "--db", db]) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("protoshelf.core.export.export_csv", interrupted)
    assert main(["export", str(tmp_path / "out.csv"), "--db", db]) == 130
    assert "no file was written, and one already at that path is as it was" in capsys.readouterr().err


def test_classify_with_a_meta_learner_meta_trains_once_per_run(tmp_path, capsys, monkeypatch):
    """Not once inside every fit of calibration's folds and fusion: one meta-training, then fits."""
    from benchmarks.gui_catalog import make_fake_catalog
    from protoshelf.core.methods import make_meta_learner
    from protoshelf.core.store import Store

    db = tmp_path / "c.sqlite"
    truth = make_fake_catalog(db, 60, dim=32, categories=3, seed=1, noise=0.4)
    with Store(db) as store:
        for k in range(3):
            category = store.create_category(f"c{k}")
            store.set_labels([int(i) + 1 for i in np.flatnonzero(truth == k)[:4]], category)
    learner = type(make_meta_learner("relation"))
    meta_train = learner.meta_train
    calls = []
    monkeypatch.setattr(learner, "meta_train", lambda self, *a, **k: calls.append(1) or meta_train(self, *a, **k))
    assert "Classified 60 items with relation" in run(capsys, "classify", "--db", str(db), "--method", "relation",
                                                          "--no-names")
    assert len(calls) == 1
