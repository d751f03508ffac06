"""Schema migrations (Alembic). `upgrade` runs on every open, so old catalogs keep working."""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent
UPGRADE_WAIT_S = 3600.0
"""How long opening a catalog waits while another process upgrades it: rebuilding the items table
of a million-item catalog takes minutes, longer than one busy timeout."""
_ALEMBIC = threading.Lock()
"""Alembic runs env.py through module-global proxies (`alembic.context`), so two threads opening
catalogs at once would tear each other's state down (KeyError: 'config')."""


def alembic_config(engine: Engine | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


@lru_cache(maxsize=1)
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(revisions, their parents), read from the version files' text: importing Alembic to learn
    them would cost a third of a second on every `protoshelf categories`."""
    revisions, parents = set(), set()
    for path in (HERE / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision\s*=\s*['\"]([^'\"]+)", source, re.MULTILINE)
        down = re.search(r"^down_revision\s*=\s*['\"]([^'\"]+)", source, re.MULTILINE)
        revisions.update([revision[1]] if revision else [])
        parents.update([down[1]] if down else [])
    return frozenset(revisions), frozenset(parents)


def head_revision() -> str | None:
    revisions, parents = _revisions()
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


def known_revisions() -> frozenset[str]:
    """Every schema version this ProtoShelf knows; a catalog at another one was made by a newer one."""
    return _revisions()[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").first():
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. A catalog already at head is only read, so opening one never
    waits for another process's write lock; otherwise env.py takes that lock before anything else."""
    if revision == "head" and head_revision() is not None and current_revision(engine) == head_revision():
        return
    from alembic import command
    from sqlalchemy.exc import OperationalError

    from protoshelf.core.store import retry_while_locked

    def attempt() -> None:
        with _ALEMBIC:
            command.upgrade(alembic_config(engine), revision)

    # "locked": another process holds the write lock, most likely upgrading this very catalog; each
    # try waits one busy timeout, and the whole upgrade is waited for up to UPGRADE_WAIT_S.
    retry_while_locked(attempt, UPGRADE_WAIT_S, pause_s=0.05, errors=OperationalError)
