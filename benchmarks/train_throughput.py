"""Stage-1 training speed with the real data pipeline against the same steps on tensors in memory.

The data pipeline (JPEG files -> decode -> augment -> batches in worker processes) must never
be what the GPU or CPU waits on: the goal is `ratio` >= 0.9.

    .venv/bin/python benchmarks/train_throughput.py --preset tiny --steps 16

Prints one JSON object. Nothing is asserted.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from mkt_core.train.config import TrainConfig  # noqa: E402
from mkt_core.train.trainer import Trainer  # noqa: E402


def write_dataset(folder: Path, images: int, size: int, labels: int, seed: int = 0) -> tuple[Path, Path]:
    """A generic-layout dataset: random-texture JPEGs, a CSV of their labels, a label file."""
    rng = np.random.default_rng(seed)
    names = [f"label {i}" for i in range(labels)]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = ["path,labels"]
    for i in range(images):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / "images" / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        chosen = rng.choice(labels, size=rng.integers(1, 4), replace=False)
        rows.append(f"images/{path.name},{'|'.join(names[j] for j in chosen)}")
    (folder / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    label_file = folder / "labels.tsv"
    label_file.write_text("".join(f"{name}\tseen\n" for name in names), encoding="utf-8")
    return folder / "train.csv", label_file


def time_pipeline(trainer: Trainer, steps: int, warmup: int) -> float:
    """Steps through the real loader, after warm-up steps that start the worker processes."""
    trainer.config.max_steps = trainer.step + warmup
    trainer.run()
    trainer.config.max_steps = trainer.step + steps
    started = time.perf_counter()
    trainer.run()
    return steps * trainer.config.batch_size / (time.perf_counter() - started)


def time_in_memory(trainer: Trainer, steps: int) -> float:
    """The same loss, backward and optimiser step on one batch already in memory."""
    images = torch.randn(trainer.config.batch_size, 3, trainer.model.config.image_size,
                         trainer.model.config.image_size, device=trainer.device)
    targets = torch.ones(trainer.config.batch_size, len(trainer.train_split.labels), dtype=torch.int8,
                         device=trainer.device)
    targets[:, 1::2] = -1
    labels = trainer.labels_for_training()
    labels = labels.to(trainer.device) if isinstance(labels, torch.Tensor) else labels
    trainer.model.train()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.optimizer.zero_grad(set_to_none=True)
        total, _, _ = trainer.loss_module(images, targets, labels)
        total.backward()
        trainer.optimizer.step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * trainer.config.batch_size / (time.perf_counter() - started)


def time_epoch(trainer: Trainer) -> dict:
    """One whole epoch from where the trainer is: images/s and the peak GPU memory it took."""
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = trainer.steps_per_epoch
    trainer.config.max_steps = trainer.step + steps
    started = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() if trainer.device.type == "cuda" else None
    return {"steps": steps, "seconds": round(seconds, 2),
            "images_per_second": round(steps * trainer.config.batch_size / seconds, 2),
            "amp": trainer.use_amp, "peak_gpu_memory_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--images", type=int, default=0,
                        help="images on disk (default: enough that every timed step stays inside one epoch, "
                             "so checkpoints and plots at epoch ends are not timed)")
    parser.add_argument("--image-size", type=int, default=256, help="side of the JPEGs written to disk")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch", action="store_true",
                        help="also time one whole epoch over --images through the real loader (AMP on CUDA, "
                             "as training runs), with the peak GPU memory")
    args = parser.parse_args()

    images = args.images or args.batch_size * (args.repeats * (args.steps + 2) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        csv, label_file = write_dataset(Path(tmp) / "data", images, args.image_size, labels=20)
        config = TrainConfig(preset=args.preset, dataset="generic", annotations=str(csv), label_file=str(label_file),
                             batch_size=args.batch_size, workers=args.workers, epochs=1000, eval_every=0,
                             out=str(Path(tmp) / "run"), device=args.device, student_pretrained=False,
                             vlp_pretrained="", log_every=10_000)
        trainer = Trainer(config, stage=1)
        time_in_memory(trainer, 2)  # warm-up
        # interleaved repeats, best of each: other load on the machine hits both alike
        memory_rates, pipeline_rates = [], []
        for _ in range(args.repeats):
            memory_rates.append(time_in_memory(trainer, args.steps))
            pipeline_rates.append(time_pipeline(trainer, args.steps, warmup=2))
        memory_rate, pipeline_rate = max(memory_rates), max(pipeline_rates)
        epoch = time_epoch(trainer) if args.epoch else None
    result = {
        "benchmark": "train_throughput",
        "preset": args.preset,
        "images_per_second": round(pipeline_rate, 2),
        "in_memory_images_per_second": round(memory_rate, 2),
        "ratio": round(pipeline_rate / memory_rate, 3),
        "steps": args.steps,
        "images_on_disk": images,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "epoch": epoch,
        "device": str(trainer.device) + (f" ({torch.cuda.get_device_name()})" if trainer.device.type == "cuda" else ""),
        **machine_facts(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
