"""Issue 12, "nothing lost, nothing silently wrong": one test (or a few) per reproduced mistake.

Each test names its item. Every one failed on the code before the fix: the export replaced the
catalog, `%20` in --db opened another file, a restored backup reused a stale vector cache, foreign
SQLite files gained our tables, moved folders could never be fixed, and so on.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import seed_titles, write_image
from protoshelf.core import vector_cache
from protoshelf.core.cli import build_parser, main, shown
from protoshelf.core.duplicates import export_duplicates
from protoshelf.core.errors import BUSY, DISK_FULL, READ_ONLY, user_message
from protoshelf.core.export import export_csv
from protoshelf.core.images import MAX_FILE_BYTES, file_sha256
from protoshelf.core.importer import TitlesFile, apply_titles_file, import_images, read_titles_csv
from protoshelf.core.safe_output import OutputRefused
from protoshelf.core.store import APPLICATION_ID, Store, StoreError

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_python(code: str, *args: str, timeout: float = 60, memory: int | None = 3 << 30) -> subprocess.CompletedProcess:
    """A child Python with this checkout first on its path; memory capped so a runaway read of
    /dev/zero fails the test instead of the machine (torch's start-up needs the cap off)."""
    def limit_memory():
        import resource

        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, preexec_fn=limit_memory,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("protoshelf:")]
    assert len(lines) == 1, err
    return lines[0]


# --- 1. export and duplicates never write over what is not theirs ------------------------------

def test_1_export_refuses_the_open_catalog_and_any_sqlite_file(store, tmp_path):
    ids = seed_titles(store, ["a", "b"])
    store.set_labels(ids, store.create_category("Shoes"))
    with pytest.raises(OutputRefused, match="open catalog|SQLite database"):
        export_csv(store, store.path)
    with pytest.raises(OutputRefused, match="open catalog|SQLite database"):
        export_duplicates(store, [], store.path)
    other = tmp_path / "other.sqlite"
    Store(other).close()
    before = digest(other)
    with pytest.raises(OutputRefused, match="SQLite database"):
        export_csv(store, other)
    assert digest(other) == before
    assert len(store.labels()) == 2 and store.integrity_check() == "ok"


def test_1_swapped_export_arguments_leave_both_catalogs_whole(tmp_path, capsys):
    catalog, other = tmp_path / "shop.sqlite", tmp_path / "other.sqlite"
    for path in (catalog, other):
        with Store(path) as store:
            store.create_category("Kept")
    before = digest(other)
    assert main(["export", str(other), "--db", str(catalog)]) == 2
    assert "never overwritten" in one_line_error(capsys)
    assert digest(other) == before
    assert main(["export", str(catalog), "--db", str(catalog)]) == 2
    with Store(catalog) as store:
        assert [c.name for c in store.categories()] == ["Kept"]


def test_1_export_never_replaces_another_databases_write_ahead_log(store, tmp_path):
    """A WAL file has no SQLite header, yet it may hold the only copy of committed changes."""
    other = tmp_path / "other.sqlite"
    Store(other).close()
    writer = sqlite3.connect(other)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE kept (x)")
        writer.execute("INSERT INTO kept VALUES (42)")
        writer.commit()
        wal = tmp_path / "other.sqlite-wal"
        before = digest(wal)
        with pytest.raises(OutputRefused, match="belongs to the SQLite database"):
            export_csv(store, wal)
        assert digest(wal) == before
    finally:
        writer.close()
    with sqlite3.connect(other) as reader:
        assert reader.execute("SELECT x FROM kept").fetchall() == [(42,)]
    notes, its_journal = tmp_path / "notes", tmp_path / "notes-journal"  # no database beside it: a plain name
    notes.write_text("not a database")
    its_journal.write_text("old")
    export_csv(store, its_journal)
    assert its_journal.read_text().startswith("product_id,item_id")


def test_1_export_never_replaces_a_fifo_or_folder(store, tmp_path):
    seed_titles(store, ["a"])
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutputRefused, match="not a regular file"):
        export_csv(store, fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(OutputRefused, match="not a regular file"):
        export_csv(store, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_1_export_never_replaces_a_device_node(store, tmp_path):
    """As root, exporting to /dev/null once replaced the device with a file. The node here is a
    private copy of /dev/null, so a regression cannot break the machine running the test."""
    seed_titles(store, ["a"])
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root")
    with pytest.raises(OutputRefused, match="not a regular file"):
        export_csv(store, device)
    assert stat.S_ISCHR(device.stat().st_mode)


def test_1_export_keeps_the_mode_and_writes_through_a_symlink(store, tmp_path):
    seed_titles(store, ["a"])
    target = tmp_path / "shared" / "predictions.csv"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert export_csv(store, link) == 1
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("product_id,item_id,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.slow  # a child process
def test_1_sigterm_mid_export_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out.csv"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        sys.path.insert(0, "tests")
        from conftest import seed_titles
        import protoshelf.core.export
        from protoshelf.core.export import export_csv
        from protoshelf.core.store import Store
        protoshelf.core.export.FETCH_ROWS = 1  # progress after every row, inside the write
        with Store(sys.argv[1]) as store:
            seed_titles(store, ["x"] * 3)
            def slow(done, total):
                print("writing", flush=True)
                time.sleep(60)
            export_csv(store, sys.argv[2], progress=slow)
        """), str(tmp_path / "c.sqlite"), str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "writing"
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # mid-write
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- 2. --db is a path, never a URL -------------------------------------------------------------

@pytest.mark.parametrize("name", ["sale%20items.sqlite", "what?.sqlite", "mode=ro&x#1.sqlite"])
def test_2_any_file_name_opens_exactly_that_file(tmp_path, name):
    with Store(tmp_path / name) as store:
        store.create_category("Here")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- 3. the vector cache follows the catalog's exact state ---------------------------------------

def test_3_a_restored_backup_never_reuses_a_cache_of_other_vectors(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_cache, "MIN_ROWS", 10)
    path, backup = tmp_path / "catalog.sqlite", tmp_path / "backup.sqlite"
    with Store(path) as store:
        ids = seed_titles(store, [None] * 30)
        store.save_embeddings("m", ids, np.zeros((30, 4), np.float32))
        store.load_embeddings("m")
    shutil.copy(path, backup)
    with Store(path) as store:  # changes made after the backup...
        store.save_embeddings("m", ids[:1], np.full((1, 4), 7, np.float32))
        assert store.load_embeddings("m").matrix[0, 0] == 7
    for companion in ("-wal", "-shm"):
        Path(f"{path}{companion}").unlink(missing_ok=True)
    shutil.copy(backup, path)  # ...then the backup restored, and other changes made
    with Store(path) as store:
        store.save_embeddings("m", ids[:1], np.full((1, 4), 3, np.float32))
        loaded = store.load_embeddings("m")
        loaded = store.load_embeddings("m")  # the second load is the one a cache would answer
    raw = sqlite3.connect(path)
    truth = np.stack([np.frombuffer(v, "<f4") for (v,) in raw.execute(
        "SELECT vector FROM embeddings WHERE model = 'm' ORDER BY item_id")])
    np.testing.assert_array_equal(loaded.matrix, truth)
    assert loaded.matrix[0, 0] == 3


# --- 4. only new files and ProtoShelf catalogs are opened -----------------------------------------

@pytest.mark.parametrize("schema", ["CREATE TABLE notes (body TEXT)", "CREATE TABLE items (x, y)"])
def test_4_another_programs_sqlite_file_is_refused_untouched(tmp_path, schema, capsys):
    path = tmp_path / "their.db"
    with sqlite3.connect(path) as raw:
        raw.execute(schema)
    before = digest(path)
    with pytest.raises(StoreError, match="another program's SQLite database"):
        Store(path)
    assert main(["categories", "--db", str(path)]) == 2
    assert "left untouched" in one_line_error(capsys)
    assert digest(path) == before and not Path(f"{path}-wal").exists()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_4_catalogs_are_marked_and_old_ones_open_and_get_marked(tmp_path):
    from protoshelf.core.migrations import upgrade
    from protoshelf.core.store import make_engine

    with Store(tmp_path / "new.sqlite") as store:
        pass
    assert sqlite3.connect(store.path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    old = tmp_path / "old.sqlite"
    engine = make_engine(old)
    upgrade(engine, "0003")
    engine.dispose()
    with Store(old) as store:
        store.create_category("Fine")
    assert sqlite3.connect(old).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_4_a_text_file_is_not_a_catalog(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list")
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(path)
    assert path.read_text() == "shopping list"


# --- 5. moved and changed images -------------------------------------------------------------------

def test_5_importing_moved_content_re_points_it(store, tmp_path):
    old = tmp_path / "old"
    for i in range(3):
        write_image(old / f"{i}.png", colour=(60 * i, 90, 200))
    first = import_images(store, [old])
    shutil.move(old, tmp_path / "new")
    again = import_images(store, [tmp_path / "new"])
    assert sorted(again.existing) == sorted(first.added) and len(again.moved) == 3 and not again.added
    assert all(Path(it.path).exists() for it in store.items(first.added).values())
    assert "3 found at a new place" in again.summary()


def test_5_relocate_re_points_a_whole_folder_and_refuses_what_is_not_there(store, tmp_path, capsys):
    old = tmp_path / "photos"
    for i in range(3):
        write_image(old / "shoes" / f"{i}.png", colour=(70 * i, 20, 90))
    report = import_images(store, [old])
    os.rename(old, tmp_path / "moved")
    (tmp_path / "moved" / "shoes" / "2.png").unlink()
    assert main(["relocate", str(old), str(tmp_path / "moved"), "--db", str(store.path)]) == 1
    assert "Relocated 2 items; 1 not found" in capsys.readouterr().out
    paths = sorted(it.path for it in store.items(report.added).values())
    assert paths == sorted([str(tmp_path / "moved" / "shoes" / "0.png"), str(tmp_path / "moved" / "shoes" / "1.png"),
                            str(old / "shoes" / "2.png")])


def test_5_a_file_changed_in_place_updates_its_item_and_drops_its_vector(store, tmp_path):
    image = write_image(tmp_path / "kettle.png", colour=(200, 0, 0))
    (item,) = import_images(store, [image]).added
    store.save_embeddings("m", [item], np.ones((1, 4), np.float32))
    before = store.items([item])[item]
    write_image(image, colour=(0, 0, 200), size=(80, 60))
    again = import_images(store, [image])
    assert again.changed == [item] and not again.added and store.item_count() == 1
    after = store.items([item])[item]
    assert after.sha256 == file_sha256(image) != before.sha256
    assert after.thumbnail != before.thumbnail and (after.width, after.height) == (80, 60)
    assert store.items_without_embedding("m") == [(item, str(image.resolve()))]


# --- 6. one error policy ------------------------------------------------------------------------

def test_6_a_folder_as_catalog_is_one_line(tmp_path, capsys):
    assert main(["categories", "--db", str(tmp_path)]) == 2
    assert "is a folder" in one_line_error(capsys)


def test_6_a_catalog_from_a_newer_protoshelf_says_upgrade(tmp_path, capsys):
    path = tmp_path / "future.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '0099_future'")
    assert main(["categories", "--db", str(path)]) == 2
    said = capsys.readouterr().err
    assert "newer version of ProtoShelf" in said and "Updating" not in said  # refused, never "being updated"


@pytest.mark.skipif(AS_ROOT, reason="root writes read-only files anyway")
def test_6_a_read_only_catalog_is_one_line(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    Store(path).close()
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        assert main(["label", "Shoes", str(write_image(tmp_path.parent / "x.png")), "--db", str(path)]) != 0
        one_line_error(capsys)
    finally:
        tmp_path.chmod(0o755)


def test_6_a_lock_held_past_the_busy_timeout_is_one_line(tmp_path, capsys, monkeypatch):
    import protoshelf.core.store

    monkeypatch.setattr(protoshelf.core.store, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "c.sqlite"
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert main(["label", "Shoes", str(write_image(tmp_path / "x.png")), "--db", str(path)]) == 1
        assert "busy" in one_line_error(capsys)
    finally:
        holder.execute("ROLLBACK")


@pytest.mark.parametrize("failure,words", [
    (MemoryError(), "out of memory"),
    (OSError(28, "No space left on device"), "disk is full"),
    (RuntimeError("boom"), "--debug"),
])
def test_6_failures_are_one_line_and_the_traceback_comes_with_debug(tmp_path, capsys, monkeypatch, failure, words):
    import protoshelf.core.cli

    def fail(_args):
        raise failure

    monkeypatch.setattr(protoshelf.core.cli, "cmd_categories", fail)
    db = str(tmp_path / "c.sqlite")
    assert main(["categories", "--db", db]) == 1
    assert words in one_line_error(capsys)
    assert main(["--debug", "categories", "--db", db]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_6_disk_full_busy_and_read_only_from_sqlite_read_as_such():
    assert user_message(sqlite3.OperationalError("database or disk is full")) == DISK_FULL
    assert user_message(sqlite3.OperationalError("database is locked")) == BUSY
    assert user_message(sqlite3.OperationalError("attempt to write a readonly database")) == READ_ONLY
    wrapped = RuntimeError("wrapper")
    wrapped.orig = sqlite3.OperationalError("disk I/O error")
    assert user_message(wrapped) == DISK_FULL


def test_6_ctrl_c_during_start_up_is_a_message(monkeypatch, capsys):
    import protoshelf.core.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(protoshelf.core.cli, "build_parser", interrupted)
    try:
        code = main(["categories"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during start-up escaped main() as a traceback")
    assert code == 130
    assert "Traceback" not in capsys.readouterr().err


# --- 7. processes opening one catalog at once ----------------------------------------------------

@pytest.mark.slow  # six child processes
@pytest.mark.parametrize("start_from", [None, "0002"])
def test_7_processes_first_opening_a_catalog_at_once_all_succeed(tmp_path, start_from):
    path = tmp_path / "c.sqlite"
    if start_from:
        from protoshelf.core.migrations import upgrade
        from protoshelf.core.store import make_engine

        engine = make_engine(path)
        upgrade(engine, start_from)
        engine.dispose()
    start = time.time() + 3
    code = """
        import sys, time
        start = float(sys.argv[2])
        from protoshelf.core.store import Store
        time.sleep(max(0, start - time.time()))
        with Store(sys.argv[1]) as store:
            store.create_category(f"C{sys.argv[3]}")
        """
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path), str(start), str(i)],
                                 cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}) for i in range(6)]
    errors = [(child.wait(timeout=120), child.stderr.read()) for child in children]
    assert all(code == 0 for code, _ in errors), errors
    with Store(path) as store:
        assert sorted(c.name for c in store.categories()) == [f"C{i}" for i in range(6)]


def test_7_opening_a_new_catalog_while_another_connection_begins_writing_it_waits(tmp_path, monkeypatch):
    # The race behind a red CI run: on a still-empty file, SQLite refuses the switch to WAL at once
    # ("database is locked", no busy timeout) while another connection holds the write lock.
    path = tmp_path / "c.sqlite"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("BEGIN IMMEDIATE")
    waits, real_sleep = [], time.sleep

    def counted_sleep(seconds):
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", counted_sleep)
    releaser = threading.Timer(0.3, first.rollback)
    releaser.start()
    try:
        with Store(path) as store:
            store.create_category("Shoes")
    finally:
        releaser.join()
        first.close()
    assert waits  # it met the refusal, rather than arriving after the lock was gone
    with Store(path) as store:
        assert [c.name for c in store.categories()] == ["Shoes"]


# --- 8. big titles CSVs -------------------------------------------------------------------------

def test_8_titles_for_300k_paths_are_applied(store):
    ids = seed_titles(store, [None] * 3)
    shoes = store.create_category("Shoes")
    titles = {f"/elsewhere/{i}.png": f"title {i}" for i in range(300_000)}
    titles["/shop/1.png"] = "Red kettle"
    categories = {f"/elsewhere/{i}.png": "shoes" for i in range(1000)} | {"/shop/2.png": "SHOES"}
    updated, problems = apply_titles_file(store, TitlesFile(titles, categories, []))
    assert updated == 1 and problems == []
    assert store.items([ids[1]])[ids[1]].title == "Red kettle"
    assert store.labels() == {ids[2]: shoes}


# --- 9. a path is checked before a byte is read ------------------------------------------------------

def test_9_fifos_devices_and_giant_sparse_files_are_refused_unread(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    code = """
        import sys
        from protoshelf.core.images import ImageError, file_sha256
        for path in sys.argv[1:]:
            try:
                file_sha256(path)
                print("hashed", path)
            except ImageError as exc:
                print("refused", exc)
        """
    done = run_python(code, str(fifo), "/dev/zero", str(sparse), timeout=20)
    lines = done.stdout.splitlines()
    assert lines[:2] == ["refused not a regular file (a folder, device or pipe)"] * 2
    assert lines[2].startswith("refused file too large")


def test_9_similar_on_a_fifo_answers_at_once(tmp_path, capsys):
    fifo = tmp_path / "query.png"
    os.mkfifo(fifo)
    with Store(tmp_path / "c.sqlite") as store:
        ids = seed_titles(store, [None] * 2)
        store.save_embeddings("toy", ids, np.eye(2, 4, dtype=np.float32))

    def hung(_signum, _frame):
        raise TimeoutError("similar waited for a writer on the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)  # a blocked open() is interrupted, not endless
    signal.alarm(20)
    try:
        code = main(["similar", str(fifo), "--backbone", "toy", "--db", str(tmp_path / "c.sqlite")])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2 and "not a regular file" in one_line_error(capsys)


# --- 10. titles CSVs that never end ---------------------------------------------------------------

def test_10_a_titles_file_that_is_a_device_or_fifo_is_refused(tmp_path):
    fifo = tmp_path / "titles.csv"
    os.mkfifo(fifo)
    code = """
        import sys
        from protoshelf.core.importer import read_titles_csv
        for path in sys.argv[1:]:
            try:
                read_titles_csv(path)
            except ValueError as exc:
                print(exc)
        """
    done = run_python(code, "/dev/zero", str(fifo), timeout=20)
    assert done.stdout.count("not a regular file") == 2, done.stderr


def test_10_lines_are_bounded(tmp_path, monkeypatch):
    import protoshelf.core.importer

    monkeypatch.setattr(protoshelf.core.importer, "MAX_TITLES_LINE", 1000)
    path = tmp_path / "titles.csv"
    path.write_text("path,title\n" + "a.png," + "x" * 5000)
    with pytest.raises(ValueError, match="line longer"):
        read_titles_csv(path)


# --- 11. argument ranges ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["export", "out.csv", "--top-k", "100000000"], ["export", "out.csv", "--top-k", "-1"],
    ["classify", "--threshold", "nan"], ["classify", "--threshold", "1.5"], ["suggest", "-n", "0"],
    ["similar", "x.png", "-k", "-3"], ["finetune", "--epochs", "0"], ["finetune", "--l2sp", "inf"],
    ["embed", "--batch-size", "0"], ["evaluate", "f", "--shots", "-1"], ["duplicates", "o.csv", "--threshold", "nan"],
])
def test_11_out_of_range_arguments_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# --- 12. printed text cannot drive the terminal ------------------------------------------------------

def test_12_hostile_file_names_are_printed_escaped(tmp_path, capsys):
    evil = tmp_path / "x\x1b]0;pwned\x07\nImport: 999 added.png"
    evil.write_bytes(b"not an image")
    assert main(["import", str(tmp_path), "--db", str(tmp_path / "c.sqlite")]) == 3  # its one file skipped
    captured = capsys.readouterr()
    everything = captured.out + captured.err
    assert "\x1b" not in everything and "\x07" not in everything
    assert "\\x1b]0;pwned\\x07\\x0aImport: 999" in captured.err
    assert not any(line.startswith("Import: 999") for line in everything.splitlines())
    assert shown("a\u202eb\u2028c") == "a\\u202eb\\u2028c"


# --- 13. category names that look alike ------------------------------------------------------------

@pytest.mark.parametrize("name,message", [
    ("Fr\u200buit", "invisible"), ("Fr\u200duit", "invisible"), ("Fruit\u2060", "invisible"),
    ("\u0301\u0301", "needs a name"), ("\u0301Fruit", "combining mark"), (" fruit ", "already exists"),
    ("FRUIT", "already exists"), ("\uff26ruit", "already exists"), ("Fruit\u200e", "already exists"),
])
def test_13_names_that_look_like_another_or_nothing_are_refused(store, name, message):
    fruit = store.create_category("Fruit")
    with pytest.raises(StoreError, match=message):
        store.create_category(name)
    tools = store.create_category("Tools")
    with pytest.raises(StoreError, match=message):
        store.rename_category(tools, name)
    assert [c.name for c in store.categories()] == ["Fruit", "Tools"]
    assert store.category_id(" FRUIT ") == fruit
    store.rename_category(fruit, "fruit")  # its own name in another case is fine


# --- 14. a label command that labels nothing changes nothing ----------------------------------------

def test_14_label_with_no_usable_image_fails_and_creates_no_category(tmp_path, capsys):
    db = tmp_path / "c.sqlite"
    assert main(["label", "NewCat", str(tmp_path / "nonexistent.png"), "--db", str(db)]) == 2
    assert "nothing labelled" in one_line_error(capsys)
    with Store(db) as store:
        assert store.categories() == [] and store.item_count() == 0
