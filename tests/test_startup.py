"""Start-up: commands that need no model import no torch, OpenMP is told how to wait before torch
loads, and the launcher's first-run help."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protoshelf.core import OPENMP_SPIN, wait_briefly_then_sleep
from protoshelf.core.desktop import install_desktop_entry
from protoshelf.gui import launcher

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "sentence_transformers", "scipy", "PySide6")


def modules_after(code: str) -> set[str]:
    """Which heavy modules a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.rsplit("LOADED:", 1)[1].split())


@pytest.mark.parametrize("argv", [["--help"], ["categories"], ["label", "--help"], ["export", "--help"]])
def test_commands_without_a_model_import_no_torch(tmp_path, argv):
    db = tmp_path / "c.sqlite"
    code = (f"import sys\nfrom protoshelf.gui.launcher import main\n"
            f"try:\n    main([*{argv!r}, '--db', {str(db)!r}])\nexcept SystemExit:\n    pass")
    assert modules_after(code) == set()


def test_the_app_window_imports_no_torch():
    """The window is built from these; torch loads on a worker after it is shown."""
    assert "torch" not in modules_after("import protoshelf.gui.app, protoshelf.gui.main_window")


SPIN_WHEN_TORCH_LOADS = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("AT TORCH:", os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))
            sys.meta_path.remove(self)
sys.meta_path.insert(0, Watch())
"""


@pytest.mark.parametrize("entry", ["protoshelf.core.cli", "protoshelf.gui.jobs"])
def test_openmp_is_told_to_spin_briefly_before_torch_loads(entry):
    """libgomp reads its settings once, when torch loads it: after that, setting them does nothing."""
    code = f"{SPIN_WHEN_TORCH_LOADS}import {entry}\nimport protoshelf.core.embedding"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert f"AT TORCH: PASSIVE {OPENMP_SPIN}" in result.stdout


@pytest.mark.parametrize("own", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}])
def test_a_users_own_openmp_waiting_wins(own):
    environ = dict(own)
    wait_briefly_then_sleep(environ)
    assert environ == own
    untouched: dict[str, str] = {}
    wait_briefly_then_sleep(untouched)
    assert untouched == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": OPENMP_SPIN}


def test_a_missing_xcb_library_prints_the_apt_command(monkeypatch, capsys):
    ldd = ("\tlibQt6XcbQpa.so.6 => /x/libQt6XcbQpa.so.6 (0x1)\n\tlibxcb-cursor.so.0 => not found\n"
           "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-cursor.so.0 => not found\n")
    assert launcher.missing_libraries(ldd) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    monkeypatch.setattr(launcher, "wants_xcb", lambda: True)
    monkeypatch.setattr(launcher.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, ldd, ""))
    assert launcher.open_app(None) == 1
    err = capsys.readouterr().err
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4\n" in err + "\n"
    assert launcher.debian_package("libfoo2.so.3") == "libfoo2-3"


def test_offscreen_needs_no_xcb(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not launcher.wants_xcb()
    assert launcher.xcb_problem() is None


def test_install_desktop_writes_an_entry_and_an_icon(tmp_path):
    entry, icon = install_desktop_entry(tmp_path, command='"/opt/venv/bin/protoshelf" gui')
    text = entry.read_text()
    assert entry == tmp_path / "applications" / "protoshelf.desktop"
    assert 'Exec="/opt/venv/bin/protoshelf" gui' in text and "Icon=protoshelf" in text
    assert icon.read_text().startswith("<svg")
