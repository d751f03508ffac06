"""Desktop integration: a freedesktop.org launcher entry and icon, so ProtoShelf appears in the menu.

`protoshelf install-desktop` writes them under the user's XDG data folder (no root needed); the
entry runs this very interpreter, so it opens the ProtoShelf of the virtual environment it came from.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ICON = Path(__file__).resolve().parent / "resources" / "protoshelf.svg"
APP_ID = "protoshelf"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def desktop_entry(command: str) -> str:
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=ProtoShelf",
        "GenericName=Product categoriser",
        "Comment=Few-shot product categorisation: label a few examples, classify the catalog",
        f"Exec={command}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Office;Graphics;",
        f"StartupWMClass={APP_ID}",
        "",
    ])


def launch_command() -> str:
    """The interpreter that runs us, so the entry works inside a virtual environment too."""
    script = Path(sys.executable).with_name("protoshelf")
    return f'"{script}" gui' if script.exists() else f'"{sys.executable}" -m protoshelf.gui.launcher gui'


def install_desktop_entry(home: Path | None = None, command: str | None = None) -> tuple[Path, Path]:
    """Write the entry and the icon; returns their paths. Running it again replaces both."""
    home = home or data_home()
    entry = home / "applications" / f"{APP_ID}.desktop"
    icon = home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ICON, icon)
    entry.write_text(desktop_entry(command or launch_command()), encoding="utf-8")
    return entry, icon
