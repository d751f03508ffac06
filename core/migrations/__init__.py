"""Schema migrations (Alembic). `upgrade` runs on every open, so old catalogs keep working."""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent
_ALEMBIC = threading.Lock()
"""Alembic runs env.py through module-global proxies (`alembic.context`), so two threads opening
catalogs at once would tear each other's state down (KeyError: 'config')."""


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision, read from the version files' text: importing Alembic to learn it would
    cost a third of a second on every `protoshelf categories`."""
    revisions, parents = set(), set()
    for path in (HERE / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision\s*=\s*['\"]([^'\"]+)", source, re.MULTILINE)
        down = re.search(r"^down_revision\s*=\s*['\"]([^'\"]+)", source, re.MULTILINE)
        revisions.update([revision[1]] if revision else [])
        parents.update([down[1]] if down else [])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").first():
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and head_revision() is not None and current_revision(engine) == head_revision():
        return
    from alembic import command

    with _ALEMBIC:
        command.upgrade(alembic_config(engine), revision)
