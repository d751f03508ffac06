"""Shared fixtures: real SQLite catalogs in tmp folders, real images made with Pillow."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from protoshelf.core.schema import Item  # noqa: E402
from protoshelf.core.store import Store  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"


@contextlib.contextmanager
def no_network():
    """Every socket connection refused: what ships in packages must load without one."""
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture
def store(tmp_path: Path):
    catalog = Store(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def seed_titles(store: Store, titles: list) -> list[int]:
    """Bare items with these titles (None for none), without image files; returns their ids."""
    with store._write() as s:
        items = [Item(path=f"/shop/{i}.png", sha256=f"{i:064x}", title=t, width=1, height=1, file_size=1)
                 for i, t in enumerate(titles)]
        s.add_all(items)
        s.flush()
        return [it.id for it in items]


def write_image(path: Path, colour=(200, 30, 30), size=(64, 48), fmt: str | None = None, **save) -> Path:
    """A small real image file; random noise on top of `colour` so hashes differ per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((str(path), colour))) % 2**32)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path, fmt, **save)
    return path


@pytest.fixture(scope="session")
def extractor():
    """The default backbone on the CPU (the process's shared one), with the network refused."""
    import torch

    from protoshelf.core.constants import DEFAULT_BACKBONE
    from protoshelf.core.embedding import pretrained_extractor

    with no_network():
        return pretrained_extractor(DEFAULT_BACKBONE, torch.device("cpu"))
