"""The shipped training configs are what their comments say: the paper's recipe, or the release's."""

import json
from pathlib import Path

import pytest

from mkt_core.train.config import build_config
from mkt_core.train.trainer import learning_rate
from tests.core.test_training import write_generic_dataset
from trainer.cli import main as mkt_train

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


def test_nus_wide_config_trains_the_papers_batch_sizes_and_learning_rates():
    stage1 = build_config(CONFIGS / "nus-wide.toml", {}, stage=1)
    stage2 = build_config(CONFIGS / "nus-wide.toml", {}, stage=2)
    assert (stage1.batch_size, stage1.lr, stage1.weight_decay) == (128, 1e-3, 5e-3)
    assert (stage2.batch_size, stage2.lr) == (16, 3e-5)
    assert stage1.preset == stage2.preset == "paper-vit-b16"


def test_open_images_config_trains_four_epochs_then_two():
    assert build_config(CONFIGS / "open-images.toml", {}, stage=1).epochs == 4
    assert build_config(CONFIGS / "open-images.toml", {}, stage=2).epochs == 2


def test_release_recipe_is_the_released_scripts():
    stage1 = build_config(CONFIGS / "nus-wide-release.toml", {}, stage=1)
    assert stage1.preset == "release-vit-b16"
    assert (stage1.epochs, stage1.batch_size, stage1.lr, stage1.weight_decay) == (20, 64, 1e-3, 0.05)
    assert (stage1.schedule, stage1.warmup_epochs, stage1.min_lr) == ("warmup_cosine", 2, 1e-6)
    assert (stage1.layer_decay, stage1.fix_layer, stage1.amp) == (0.65, 10, False)
    assert (stage1.randaugment, stage1.crop_scale) == ("rand-m9-mstd0.5-inc1", 0.08)

    # train_nus_second_stage.py: lr 1e-3, 4 epochs, weight decay 0.05, min lr 1e-8, no warm-up, AMP
    stage2 = build_config(CONFIGS / "nus-wide-release.toml", {}, stage=2)
    assert (stage2.epochs, stage2.lr, stage2.weight_decay, stage2.min_lr) == (4, 1e-3, 0.05, 1e-8)
    assert (stage2.warmup_epochs, stage2.schedule, stage2.amp) == (0, "warmup_cosine", True)
    assert learning_rate(stage2, stage2.lr, 0.0) == pytest.approx(1e-3)  # no warm-up: full lr at once
    assert learning_rate(stage2, stage2.lr, 2.0) == pytest.approx((1e-3 + 1e-8) / 2)
    assert learning_rate(stage2, stage2.lr, 4.0) == pytest.approx(1e-8)
    # a flag still wins over the stage's table
    assert build_config(CONFIGS / "nus-wide-release.toml", {"lr": 5e-4}, stage=2).lr == 5e-4


def test_each_stage_of_mkt_train_reads_its_own_table(tmp_path):
    data = write_generic_dataset(tmp_path / "data", count=12)
    config = tmp_path / "two-stages.toml"
    config.write_text('preset = "tiny"\ndataset = "generic"\nworkers = 0\neval_every = 0\nbatch_size = 8\n'
                      '[stage1]\nbatch_size = 4\nepochs = 1\n[stage2]\nbatch_size = 2\nlr = 2e-3\nmax_steps = 1\n',
                      encoding="utf-8")
    common = ["--config", str(config), "--annotations", data["annotations"], "--label-file", data["label_file"]]
    assert mkt_train(["stage1", *common, "--out", str(tmp_path / "s1")]) == 0
    assert mkt_train(["stage2", *common, "--out", str(tmp_path / "s2"),
                      "--init", str(tmp_path / "s1/checkpoints/last")]) == 0
    used1 = json.loads((tmp_path / "s1/checkpoints/last/train_config.json").read_text())
    used2 = json.loads((tmp_path / "s2/checkpoints/last/train_config.json").read_text())
    assert (used1["batch_size"], used1["lr"]) == (4, None)
    assert (used2["batch_size"], used2["lr"], used2["max_steps"]) == (2, 2e-3, 1)
    bad = tmp_path / "bad.toml"
    bad.write_text("[stage2]\nbatch_sise = 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="batch_sise"):
        build_config(bad, {}, stage=1)
