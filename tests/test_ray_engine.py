"""`embed --engine ray` stores what the local path stores, on a local Ray instance started here."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import write_image
from protoshelf.core.cli import main
from protoshelf.core.embedding import embed_catalog
from protoshelf.core.importer import import_images
from protoshelf.core.store import Store

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'protoshelf[ray]'"
)
MODEL = "efficientnet_lite0"


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def twin_catalogs(tmp_path, count: int):
    """Two catalogs of the same small pictures, imported in the same order (same item ids)."""
    folder = tmp_path / "pictures"
    for i in range(count):
        write_image(folder / f"{i}.jpg", colour=(30 * i, 200 - 20 * i, 90), size=(120 + 10 * i, 90))
    catalogs = []
    for name in ("local", "ray"):
        store = Store(tmp_path / f"{name}.sqlite")
        import_images(store, [folder])
        catalogs.append(store)
    return folder, catalogs


@pytest.mark.slow
@needs_ray
def test_ray_vectors_equal_local_vectors_and_failures_are_reported(tmp_path, extractor, local_ray):
    from protoshelf.core.ray_engine import embed_catalog_on_ray

    folder, (local, on_ray) = twin_catalogs(tmp_path, 6)
    (folder / "5.jpg").unlink()  # an original that went missing after import
    try:
        embed_catalog(local, MODEL, workers=0, extractor=extractor)
        seen = []
        report = embed_catalog_on_ray(on_ray, MODEL, batch_size=2, progress=lambda d, t: seen.append((d, t)))
        assert report.embedded == 5
        assert [(path.rsplit("/", 1)[-1], reason) for path, reason in report.failed] == [("5.jpg", "file not found")]
        assert seen[0] == (0, 6) and seen[-1] == (6, 6)
        expected, got = local.load_embeddings(MODEL), on_ray.load_embeddings(MODEL)
        assert got.item_ids.tolist() == expected.item_ids.tolist()
        np.testing.assert_allclose(got.matrix, expected.matrix, rtol=1e-5, atol=1e-5)
        again = embed_catalog_on_ray(on_ray, MODEL)
        assert again.embedded == 0 and len(again.failed) == 1  # only what is missing is tried again
    finally:
        local.close()
        on_ray.close()


def test_cli_says_how_to_install_ray_when_it_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    Store(tmp_path / "c.sqlite").close()
    code = main(["embed", "--engine", "ray", "--no-titles", "--db", str(tmp_path / "c.sqlite")])
    assert code == 2
    assert "pip install 'protoshelf[ray]'" in capsys.readouterr().err
