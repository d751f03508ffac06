"""A careless user's session with the CLI: odd file names, swapped arguments, the catalog given
where an output belongs, a label that labels nothing, a full disk (RLIMIT_FSIZE, so it takes
seconds) and two commands at once. Every command either works or says why in one line; at the end
the catalog passes `PRAGMA integrity_check` and every label and vector stored before is still there.
"""
from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from protoshelf.core.cli import main
from protoshelf.core.store import Store

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # starts CLI processes
ODD_NAMES = ["sale%20shoe.png", "what?.png", "evil\x1b]0;owned\x07.png", "new\nline.png", "ümlaut café.png"]


def cli(*argv: str, file_limit: int | None = None) -> subprocess.Popen:
    """The real `protoshelf` in a child process, optionally with a file size limit (writes past it
    fail with EFBIG, as on a full disk; Python ignores SIGXFSZ, so the process is not killed)."""
    def limit():
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.Popen([sys.executable, "-m", "protoshelf.core.cli", *argv], cwd=ROOT, preexec_fn=limit,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=180)
    return process.returncode, out, err


def assert_one_line_failure(code: int, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err and "\x1b" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("protoshelf:")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_careless_session_loses_nothing(tmp_path, capsys):
    photos = tmp_path / "photos"
    for i, name in enumerate(ODD_NAMES):
        write_image(photos / name, colour=(50 * i, 200 - 30 * i, 90))
    for i in range(25):
        write_image(photos / "plain" / f"{i}.png", colour=(10 * i, 10, 10), size=(24, 24))
    db = tmp_path / "shop.sqlite"
    assert main(["import", str(photos), "--db", str(db)]) == 0
    assert main(["label", "Shoes", str(photos / ODD_NAMES[0]), str(photos / ODD_NAMES[1]), "--db", str(db)]) == 0
    assert main(["label", "Hats", str(photos / ODD_NAMES[2]), "--db", str(db)]) == 0
    with Store(db) as store:
        ids = store.item_ids()
        vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
        store.save_embeddings("efficientnet_lite0", ids, vectors)
        labels = store.labels()
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err

    # the catalog where the output belongs, swapped arguments, a folder and a text file as --db
    other = tmp_path / "other.sqlite"
    Store(other).close()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a catalog")
    before = {p: p.read_bytes() for p in (db, other, notes)}
    for argv in (["export", str(db)], ["duplicates", str(db)], ["export", str(other)]):
        assert main([*argv, "--db", str(db)]) == 2
        said = assert_one_line_failure(2, capsys.readouterr().err)
        assert "is the open catalog" in said or "never overwritten" in said
    for wrong_db in (tmp_path, notes):
        assert main(["categories", "--db", str(wrong_db)]) == 2
        assert_one_line_failure(2, capsys.readouterr().err)
    assert main(["label", "Socks", str(tmp_path / "no-such.png"), "--db", str(db)]) == 2
    assert_one_line_failure(2, capsys.readouterr().err)
    assert main(["label", "Fr\u200buit", str(photos / ODD_NAMES[3]), "--db", str(db)]) == 2
    assert_one_line_failure(2, capsys.readouterr().err)
    assert all(p.read_bytes() == data for p, data in before.items() if p != db)

    # a full disk mid-import and mid-export, while two labelling commands run at the same moment
    more = tmp_path / "more"
    for i in range(40):
        write_image(more / f"{i}.png", colour=(6 * i, 40, 250 - 6 * i), size=(160, 120))
    out = tmp_path / "predictions.csv"
    out.write_text("last week's export")
    full_import = cli("import", str(more), "--db", str(db), file_limit=48 * 1024)
    full_export = cli("export", str(out), "--top-k", "1000", "--db", str(db), file_limit=40 * 1024)  # ~80 KB of CSV
    together = [cli("label", name, str(photos / ODD_NAMES[k]), "--db", str(db)) for name, k in (("Bags", 3), ("Belts", 4))]
    assert "disk is full" in assert_one_line_failure(*finish(full_import)[::2])
    assert "disk is full" in assert_one_line_failure(*finish(full_export)[::2])
    for code, _out, err in map(finish, together):
        assert code == 0, err
    assert out.read_text() == "last week's export"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with Store(db) as store:
        now = store.labels()
        assert {i: now[i] for i in labels} == labels
        assert sorted(c.name for c in store.categories()) == ["Bags", "Belts", "Hats", "Shoes"]
        kept = store.load_embeddings("efficientnet_lite0")
        assert kept.item_ids.tolist() == ids.tolist()
        np.testing.assert_array_equal(kept.matrix, vectors)
