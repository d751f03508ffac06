"""The app builds the pretrained backbone once, for embedding and the concept vectors alike."""
from __future__ import annotations

from protoshelf.core import backbones
from protoshelf.core.importer import import_images
from protoshelf.core.names import concept_model
from protoshelf.core.store import Store
from tests.conftest import write_image
from tests.gui.conftest import wait_idle


def test_a_fresh_catalog_builds_the_backbone_once_at_start(qtbot, open_window, tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    with Store(path) as store:
        import_images(store, [write_image(tmp_path / f"{i}.png", (60 * i, 90, 200 - 60 * i)) for i in range(3)])
    monkeypatch.setattr(backbones, "_shared", {})  # as in a fresh process
    built = []
    construct = backbones.Backbone.__init__
    monkeypatch.setattr(backbones.Backbone, "__init__", lambda self, *a, **k: built.append(a[0]) or construct(self, *a, **k))
    window = open_window(path)
    wait_idle(qtbot, window.session, timeout=180_000)
    with Store(path) as store:  # embedded, and the concept head ran on the same backbone
        assert len(store.load_embeddings("efficientnet_lite0")) == len(store.load_embeddings(concept_model("efficientnet_lite0"))) == 3
    assert built == ["efficientnet_lite0"]


def test_the_category_names_use_the_title_model_the_sessions_device_loaded(qtbot, open_window, tmp_path, monkeypatch):
    # On a GPU machine titles were embedded on "cuda" and names on the CPU: two copies of the model.
    from protoshelf.core import text

    path = tmp_path / "c.sqlite"
    pictures = [write_image(tmp_path / f"{i}.png", (60 * i, 90, 200 - 60 * i)) for i in range(3)]
    with Store(path) as store:
        report = import_images(store, pictures, titles={str(p.resolve()): f"red shoe {i}" for i, p in enumerate(pictures)})
        store.set_labels([report.ids_by_path[str(pictures[0].resolve())]], store.ensure_category("Shoes"))
    monkeypatch.setattr(text, "_shared", {})
    monkeypatch.setattr(text, "resolve_device", lambda device: "accelerator" if device == "auto" else device)
    loaded = []
    construct = text.TitleEncoder.__init__
    monkeypatch.setattr(text.TitleEncoder, "__init__", lambda self, device: loaded.append(device) or construct(self, "cpu"))

    window = open_window(path, embed_titles=True, device="auto")
    wait_idle(qtbot, window.session, timeout=180_000)

    assert window.session.predictions is not None
    assert loaded == ["accelerator"]
