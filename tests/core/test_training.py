"""mkt-train end to end on a tiny generic dataset: stages, eval tables, resume, Ctrl-C, DDP, bad images."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main as mkt_train

ROOT = Path(__file__).resolve().parents[2]
SEEN = ["red circle", "blue square", "green star", "yellow ring"]
UNSEEN = ["purple heart", "cyan cross"]


def write_generic_dataset(folder: Path, count: int = 24, corrupt: int = 0, seed: int = 0) -> dict[str, str]:
    """Coloured images with a CSV of their labels and a label file marking unseen labels."""
    rng = np.random.default_rng(seed)
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    rows = ["path,labels"]
    labels = SEEN + UNSEEN
    for i in range(count):
        chosen = sorted(rng.choice(len(labels), size=int(rng.integers(1, 3)), replace=False).tolist())
        pixels = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
        for j in chosen:  # each label paints its own patch, so there is something to learn
            row, col = divmod(j, 3)
            pixels[row * 24:(row + 1) * 24, col * 16:(col + 1) * 16, j % 3] = 250
        name = f"photos/img_{i:03d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=95)
        rows.append(f"{name},{'|'.join(labels[j] for j in chosen)}")
    for i in range(corrupt):
        name = f"photos/broken_{i}.jpg"
        (folder / name).write_bytes(b"this is not a jpeg")
        rows.append(f"{name},{SEEN[0]}")
    (folder / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "labels.tsv").write_text("".join(f"{label}\tseen\n" for label in SEEN)
                                       + "".join(f"{label}\tunseen\n" for label in UNSEEN), encoding="utf-8")
    return {"annotations": str(folder / "train.csv"), "label_file": str(folder / "labels.tsv")}


def _flags(data: dict[str, str], out: Path, **extra) -> list[str]:
    values = {"config": str(ROOT / "trainer/configs/tiny.toml"), "annotations": data["annotations"],
              "label-file": data["label_file"], "out": str(out), "batch-size": "8", "workers": "0",
              "log-every": "1", **extra}
    flags = []
    for key, value in values.items():
        flags += [f"--{key}", *str(value).split()]
    return flags


def _losses(out: Path, stage: int = 1) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r and r["stage"] == stage}


def test_stage1_stage2_eval_end_to_end(tmp_path, capsys):
    data = write_generic_dataset(tmp_path / "data")
    s1, s2, ev = tmp_path / "s1", tmp_path / "s2", tmp_path / "eval"
    assert mkt_train(["stage1", *_flags(data, s1, epochs=2)]) == 0
    assert (s1 / "checkpoints/epoch_002/model.safetensors").is_file()
    assert (s1 / "curves.png").stat().st_size > 1000
    effective = json.loads((s1 / "checkpoints/last/train_config.json").read_text())
    assert effective["batch_size"] == 8 and effective["epochs"] == 2 and effective["preset"] == "tiny"
    losses = _losses(s1)
    assert len(losses) == 6 and all(np.isfinite(list(losses.values())))
    evals = [json.loads(line) for line in (s1 / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) == 2 and set(evals[0]) >= {"zsl", "gzsl"}

    assert mkt_train(["stage2", *_flags(data, s2, epochs=1), "--init", str(s1 / "checkpoints/last")]) == 0
    assert _losses(s2, stage=2)

    capsys.readouterr()
    assert mkt_train(["eval", str(s2 / "checkpoints/last"), *_flags(data, ev)]) == 0
    table = json.loads((ev / "eval.json").read_text())
    assert table["labels"] == 6 and table["unseen_labels"] == 2 and table["images"] == 24
    for setting in ("zsl", "gzsl"):
        for key in ("map", "p@3", "r@3", "f1@3", "f1@5"):
            assert 0.0 <= table[setting][key] <= 1.0
    markdown = (ev / "eval.md").read_text()
    assert "| ZSL |" in markdown and "| GZSL |" in markdown and "F1@5" in markdown
    assert "| ZSL |" in capsys.readouterr().out


def test_stage2_without_a_stage1_checkpoint_is_a_clear_error(tmp_path, capsys):
    data = write_generic_dataset(tmp_path / "data", count=8)
    assert mkt_train(["stage2", *_flags(data, tmp_path / "s2")]) == 1
    assert "--init" in capsys.readouterr().err


def test_a_resumed_run_follows_the_uninterrupted_one(tmp_path):
    data = write_generic_dataset(tmp_path / "data")
    whole, part = tmp_path / "whole", tmp_path / "part"
    common = dict(epochs=3, randaugment="rand-m9-mstd0.5-inc1", **{"eval-every": "0"})
    assert mkt_train(["stage1", *_flags(data, whole, **common)]) == 0
    # stop mid-epoch 2 (step 4 of 9), then resume from the checkpoint it left
    assert mkt_train(["stage1", *_flags(data, part, **common, **{"max-steps": "4"})]) == 0
    assert mkt_train(["stage1", *_flags(data, part, **common), "--resume", str(part / "checkpoints/last")]) == 0
    expected, resumed = _losses(whole), _losses(part)
    assert sorted(resumed) == sorted(expected) == list(range(1, 10))
    for step in expected:
        assert resumed[step] == pytest.approx(expected[step], abs=1e-5), step


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    data = write_generic_dataset(tmp_path / "data", count=48)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "trainer.cli", "stage1", *_flags(data, out, epochs=50, **{"eval-every": "0"})]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    for _ in range(600):  # wait until training is under way
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3 or process.poll() is not None:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr
    state = json.loads((out / "checkpoints/last/config.json").read_text())["extra"]
    assert state["step"] >= 3
    more = {"eval-every": "0", "max-steps": str(state["step"] + 2)}
    assert mkt_train(["stage1", *_flags(data, out, epochs=50, **more), "--resume", str(out / "checkpoints/last")]) == 0
    assert max(_losses(out)) == state["step"] + 2


def test_corrupt_images_are_skipped_and_counted_unless_strict(tmp_path, capsys):
    data = write_generic_dataset(tmp_path / "data", count=14, corrupt=2)
    out = tmp_path / "run"
    assert mkt_train(["stage1", *_flags(data, out, epochs=1, **{"eval-every": "0"})]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["skipped_images"] == 2
    skipped = [json.loads(line)["path"] for line in (out / "metrics.jsonl").read_text().splitlines()
               if '"skipped_image"' in line]
    assert sorted(Path(p).name for p in skipped) == ["broken_0.jpg", "broken_1.jpg"]
    assert mkt_train(["stage1", *_flags(data, tmp_path / "strict", epochs=1, strict="true")]) == 1
    assert "broken_" in capsys.readouterr().err


def test_missing_images_are_counted_and_logged_unless_strict(tmp_path, capsys):
    data = write_generic_dataset(tmp_path / "data", count=12)
    with open(data["annotations"], "a", encoding="utf-8") as f:
        f.write(f"photos/never_downloaded.jpg,{SEEN[0]}\n")
    out = tmp_path / "run"
    assert mkt_train(["stage1", *_flags(data, out, epochs=1, **{"eval-every": "0"})]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["missing_images"] == 1 and result["status"] == "finished"
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
              if '"missing_images"' in line and '"event"' in line]
    assert events[0]["count"] == 1 and events[0]["paths"][0].endswith("never_downloaded.jpg")
    assert mkt_train(["stage1", *_flags(data, tmp_path / "strict", epochs=1, strict="true")]) == 1
    err = capsys.readouterr().err
    assert "never_downloaded.jpg" in err and "file not found" in err


@pytest.mark.slow
def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    data = write_generic_dataset(tmp_path / "data", count=32)
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "trainer.cli", "stage1", *_flags(data, out, epochs=2, **{"batch-size": "4", "eval-every": "1"})]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    checksums = [r for r in records if r.get("event") == "rank_checksums"]
    assert len(checksums) == 1 and len(checksums[0]["checksums"]) == 2
    assert checksums[0]["checksums"][0] == checksums[0]["checksums"][1]
    end = [r for r in records if r.get("event") == "end"][0]
    assert end["ranks_in_sync"] is True
    # 32 images, 2 processes x 4 per step -> 4 steps per epoch, 2 epochs; only rank 0 logged
    assert max(r["step"] for r in records if "loss" in r) == 8
    assert len([r for r in records if r.get("event") == "eval"]) == 2


def test_layer_decay_and_fix_layer_follow_the_released_code():
    """fix_layer N freezes the embeddings (layer 0) and blocks 0..N-1 (layers 1..N); lr scale decay^(L+1-layer)."""
    from mkt_core.model.mkt import create_model
    from mkt_core.train.config import TrainConfig
    from mkt_core.train.trainer import build_optimizer

    model = create_model("tiny")  # 2 blocks: layers 0 (embeddings), 1, 2, heads 3
    optimizer = build_optimizer(model, TrainConfig(fix_layer=1, layer_decay=0.5), lr=1.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("student.backbone.patch_embed", "student.backbone.blocks.0.")) for n in trainable)
    assert "student.backbone.cls_token" not in trainable
    assert any(n.startswith("student.backbone.blocks.1.") for n in trainable)
    scale_of = {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}
    block1 = dict(model.named_parameters())["student.backbone.blocks.1.attn.qkv.weight"]
    head = dict(model.named_parameters())["student.global_head.weight"]
    assert scale_of[id(block1)] == 0.5 ** 1 and scale_of[id(head)] == 1.0


def test_a_run_cut_short_by_max_steps_ends_its_cosine_at_its_last_step(tmp_path):
    data = write_generic_dataset(tmp_path / "data", count=16)
    out = tmp_path / "run"
    assert mkt_train(["stage1", *_flags(data, out, **{"max-steps": "6", "epochs": "50", "schedule": "warmup_cosine",
                                                      "warmup-epochs": "0.5", "lr": "0.01", "eval-every": "0"})]) == 0
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"lr"' in line]
    assert len(lrs) == 6
    assert lrs[0] < lrs[1] and max(lrs) == pytest.approx(0.01)  # 2 steps per epoch: 1 step of warm-up
    assert lrs[-1] < 0.1 * max(lrs)  # decayed by the last step, not by epoch 50


def test_demo_photos_command_writes_photos_and_what_they_show(tmp_path, capsys):
    out = tmp_path / "demo"
    assert mkt_train(["demo-photos", str(out), "--count", "4", "--seed", "1", "--size", "96"]) == 0
    photos = sorted(out.glob("*.jpg"))
    assert len(photos) == 4 and all(Image.open(p).size == (96, 96) for p in photos)
    rows = (out / "labels.csv").read_text().splitlines()
    assert rows[0] == "path,labels" and len(rows) == 5 and rows[1].startswith("scene_00000.jpg,")


def test_label_embeddings_command_writes_the_checkpoints_embeddings(tmp_path, capsys):
    from safetensors import safe_open

    from mkt_core.model.checkpoint import load_model, save_model
    from mkt_core.model.mkt import create_model

    checkpoint = save_model(create_model("tiny"), tmp_path / "ckpt")
    (tmp_path / "labels.txt").write_text("# the world's labels\nred circle\tseen\nblue moon\tunseen\n\n")
    out = tmp_path / "emb.safetensors"
    assert mkt_train(["label-embeddings", str(tmp_path / "labels.txt"), "--out", str(out)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert mkt_train(["label-embeddings", str(tmp_path / "labels.txt"), "--checkpoint", str(checkpoint),
                      "--out", str(out)]) == 0
    with safe_open(str(out), "pt") as f:
        embeddings = f.get_tensor("embeddings")
        assert json.loads(f.metadata()["labels"]) == ["red circle", "blue moon"]
    expected = load_model(checkpoint).encode_labels(["red circle", "blue moon"])
    assert embeddings.shape == (2, 64) and (embeddings - expected).abs().max() < 1e-6

    # a training config's preset and teacher: the same text encoder as the preset's (toy: the shipped teacher)
    (tmp_path / "toy.toml").write_text('preset = "toy"\n[data]\ndataset = "generic"\n')
    by_config, by_preset = tmp_path / "by_config.safetensors", tmp_path / "by_preset.safetensors"
    assert mkt_train(["label-embeddings", str(tmp_path / "labels.txt"), "--config", str(tmp_path / "toy.toml"),
                      "--out", str(by_config)]) == 0
    assert mkt_train(["label-embeddings", str(tmp_path / "labels.txt"), "--preset", "toy",
                      "--out", str(by_preset)]) == 0
    with safe_open(str(by_config), "pt") as a, safe_open(str(by_preset), "pt") as b:
        assert a.get_tensor("embeddings").shape == (2, 128)
        assert (a.get_tensor("embeddings") - b.get_tensor("embeddings")).abs().max() == 0
