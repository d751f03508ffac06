"""The `protoshelf` command's entry point: a subcommand runs headless (protoshelf.core.cli), none opens the app.

The app's imports start only once we know a window is wanted, and first we check that Qt's X11
plugin can load: on a fresh Debian/Ubuntu desktop it lacks a few system libraries, and Qt's own
message ("Could not load the Qt platform plugin 'xcb'") does not say which. We print the one
command that installs them instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Debian/Ubuntu packages of the libraries Qt's xcb plugin links to; names follow the soname rule
# (libfoo.so.N -> libfooN) except where Debian says otherwise.
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
# Everything the README's set-up lists, so one command covers a bare desktop.
SYSTEM_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0", "libegl1")


def debian_package(soname: str) -> str:
    if soname in XCB_PACKAGES:
        return XCB_PACKAGES[soname]
    name, _, version = soname.partition(".so.")
    return f"{name.lower()}{'-' if name[-1].isdigit() else ''}{version.split('.')[0]}"


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames that `ldd` reports as "not found", once each, in order."""
    names = [line.split("=>")[0].strip() for line in ldd_output.splitlines() if "not found" in line]
    return list(dict.fromkeys(names))


def install_command(sonames: list[str]) -> str:
    return "sudo apt install " + " ".join(dict.fromkeys(debian_package(s) for s in sonames))


def xcb_plugin() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(spec.submodule_search_locations[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def wants_xcb(environ=os.environ) -> bool:
    """Qt picks xcb on X11 (and on Wayland without its plugin); QT_QPA_PLATFORM overrides."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return sys.platform.startswith("linux") and bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def xcb_problem() -> str | None:
    """A one-line fix when Qt's X11 plugin would fail to load, else None (also when we cannot tell)."""
    plugin, ldd = xcb_plugin(), shutil.which("ldd")
    if plugin is None or ldd is None or not wants_xcb():
        return None
    try:
        output = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(output)
    if not missing:
        return None
    return (f"The desktop app needs system libraries that are missing ({', '.join(missing)}). "
            f"Install them with:\n    {install_command(missing)}")


def open_app(db_path, demo: bool = False) -> int:
    problem = xcb_problem()
    if problem is not None:
        print(f"protoshelf: {problem}", file=sys.stderr)
        return 1
    try:
        from protoshelf.gui.app import run_app
    except ImportError as exc:
        print(f"protoshelf: the desktop app cannot start: {exc}", file=sys.stderr)
        return 1
    return run_app(db_path, demo=demo)


def main(argv: list[str] | None = None) -> int:
    from protoshelf.core.cli import main as cli_main

    return cli_main(argv, open_app=open_app)


def console() -> None:
    """The installed `protoshelf` command."""
    from protoshelf.core.cli import exit_without_final_collection

    exit_without_final_collection(main())


if __name__ == "__main__":
    console()
