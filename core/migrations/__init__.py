"""Schema migrations (Alembic). `upgrade` runs on every open, so old catalogs keep working."""
from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent
_ALEMBIC = threading.Lock()
"""Alembic runs env.py through module-global proxies (`alembic.context`), so two threads opening
catalogs at once would tear each other's state down (KeyError: 'config')."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _ALEMBIC:
        command.upgrade(alembic_config(engine), revision)
