"""The when-does-fine-tuning-help benchmark: paired episodes, the gain's interval, and the GPU
check's use of it, on tiny trees of real pictures (CPU, one epoch)."""
import numpy as np
import pytest

from benchmarks import finetune_when, gpu_check
from benchmarks.datasets import PHOTOS, TWEMOJI
from tests.conftest import write_image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def tiny_trees(root, per_category=4):
    for tree in (TWEMOJI, PHOTOS):
        for name, colour in COLOURS.items():
            for i in range(per_category):
                write_image(root / tree / name / f"{name}{i}.png", colour, size=(40, 40))
    return root


def test_helps_only_when_the_whole_interval_of_the_paired_gain_is_above_zero():
    assert finetune_when.helps({"finetune_gain": (0.05, 0.02)})
    assert not finetune_when.helps({"finetune_gain": (0.05, 0.08)})
    assert not finetune_when.helps({"finetune_gain": (-0.01, 0.005)})
    assert not finetune_when.helps({"finetune_gain": (0.2, float("nan"))})  # one episode: no interval
    assert finetune_when.interval([0.5, 0.5, 0.5]) == (0.5, 0.0)


def test_sampling_keeps_categories_with_enough_pictures_and_never_reuses_support_as_query(tmp_path):
    by_category = finetune_when.category_images(tiny_trees(tmp_path) / TWEMOJI)
    by_category["tiny"] = by_category["red"][:2]
    support, labels, queries, truth = finetune_when.sample(by_category, 2, 5, 8, np.random.default_rng(0))
    assert set(labels) == set(COLOURS) and "tiny" not in truth  # 2 pictures cannot give 2 shots + 2 queries
    assert not set(support) & set(queries) and len(queries) == 2 * len(COLOURS)


@pytest.mark.slow
def test_the_gpu_check_runs_the_benchmark_on_a_named_device(tmp_path, capsys):
    trees = tiny_trees(tmp_path / "trees")
    cells = finetune_when.run(finetune_when.trees_in(trees), ["twemoji"], [2], episodes=2, ways=3, epochs=1)
    cell = cells["twemoji/2"]
    assert cell["episodes"] == 2 and cell["ways"] == 3
    accuracy = cell["accuracy"]
    assert all(0 <= mean <= 1 for mean, _ in accuracy.values())
    assert cell["finetune_gain"][0] == pytest.approx(accuracy["ft+auto"][0] - accuracy["auto"][0])
    assert "fine-tuning measured to help" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no benchmark tree"):
        gpu_check.main(["--device", "cpu", "--finetune-when", str(tmp_path / "nowhere")])
