"""The one-command GPU check: it steps aside without CUDA, and its steps work (here on the CPU)."""
from __future__ import annotations

import torch

from benchmarks import gpu_check
from benchmarks.embedding_throughput import run


def test_without_cuda_it_says_so_and_succeeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_the_finetune_step_reembeds_the_whole_catalog(tmp_path):
    summary = gpu_check.finetune_check("cpu", tmp_path, per_category=2, epochs=1)
    assert "+ft" in summary["backbone"]
    assert summary["items"] == 6 and summary["embedded"] == 6 and summary["finite"]


def test_the_ratio_benchmark_runs_on_a_named_device_and_stores_what_forward_computes():
    figures = run(images=4, side=160, rounds=1, naive_images=0, device="cpu")
    assert figures["device"] == "cpu" and figures["naive_images_per_s"] is None
    assert figures["min_cosine_stored_vs_forward"] > 0.9999
    assert 0 < figures["end_to_end_vs_forward"] and set(figures["stages_cpu_ms_per_image"]) >= {"decode", "forward"}
