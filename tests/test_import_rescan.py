"""Re-importing a folder hashes each file and decodes only content the catalog does not hold yet."""
from __future__ import annotations

import pytest

import protoshelf.core.importer as importer
from conftest import write_image
from protoshelf.core.images import MAX_FILE_BYTES
from protoshelf.core.importer import import_images


@pytest.fixture
def decodes(monkeypatch):
    """Every path the importer decodes, in order (the real decoder still runs)."""
    seen: list[str] = []
    real = importer.open_image

    def counting(source, *args, **kwargs):
        seen.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(importer, "open_image", counting)
    return seen


def test_rescan_decodes_nothing_already_in_the_catalog_and_only_new_files(store, tmp_path, decodes):
    folder = tmp_path / "photos"
    paths = [write_image(folder / f"{i}.png", colour=(40 * i, 20, 20)) for i in range(5)]
    first = import_images(store, [folder])
    assert len(first.added) == 5 and len(decodes) == 5

    decodes.clear()
    again = import_images(store, [folder])
    assert decodes == []
    assert again.added == [] and again.skipped == [] and sorted(again.existing) == sorted(first.added)
    assert again.summary() == "0 added, 5 already in the catalog, 0 skipped"
    assert again.ids_by_path == first.ids_by_path

    new = write_image(folder / "new.png", colour=(0, 0, 250))
    third = import_images(store, [folder])
    assert decodes == [str(new.resolve())]
    assert len(third.added) == 1 and sorted(third.existing) == sorted(first.added) and not third.skipped
    item = store.items(third.added)[third.added[0]]
    assert (item.path, item.width, item.height) == (str(new.resolve()), 64, 48) and item.thumbnail
    assert store.item_count() == len(paths) + 1


def test_rescan_never_calls_the_decoder_at_all(store, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    for i in range(3):
        write_image(folder / f"{i}.jpg", colour=(10, 70 * i, 10))
    import_images(store, [folder])

    def refuse(*_args, **_kwargs):
        raise AssertionError("a file already in the catalog was decoded")

    monkeypatch.setattr(importer, "open_image", refuse)
    report = import_images(store, [folder])
    assert len(report.existing) == 3 and not report.added and not report.skipped


@pytest.mark.parametrize("batch_size", [1, 256])
def test_copies_within_one_import_are_decoded_once(store, tmp_path, decodes, monkeypatch, batch_size):
    monkeypatch.setattr(importer, "BATCH_SIZE", batch_size)
    folder = tmp_path / "photos"
    original = write_image(folder / "a.png")
    for name in ("b.png", "c.png"):
        (folder / name).write_bytes(original.read_bytes())
    report = import_images(store, [folder])
    assert len(decodes) == 1
    assert len(report.added) == 1 and len(report.existing) == 2 and not report.skipped
    assert set(report.ids_by_path.values()) == set(report.added)
    assert store.items(report.added)[report.added[0]].path == str(original.resolve())


def test_copies_of_a_broken_file_are_each_skipped_with_the_reason(store, tmp_path):
    folder = tmp_path / "photos"
    for name in ("x.jpg", "y.jpg"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"\xff\xd8 not really a jpeg")
    report = import_images(store, [folder])
    assert [p.rsplit("/", 1)[-1] for p, _ in report.skipped] == ["x.jpg", "y.jpg"]
    assert all("not an image" in reason for _, reason in report.skipped)
    assert not report.added and not report.existing


def test_empty_and_giant_files_are_refused_before_hashing(store, tmp_path, monkeypatch):
    hashed: list[str] = []
    real = importer.file_sha256
    monkeypatch.setattr(importer, "file_sha256", lambda path: hashed.append(str(path)) or real(path))
    folder = tmp_path / "photos"
    good = write_image(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    with open(folder / "giant.tif", "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    report = import_images(store, [folder])
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in report.skipped}
    assert reasons == {"empty.png": "empty file (0 bytes)", "giant.tif": "file too large (200 MB)"}
    assert hashed == [str(good.resolve())]
    assert len(report.added) == 1
