"""Train on my tags: a library's decisions -> stage 1 -> stage 2 -> a bundle in the cache's trained/ folder.

The window's "Train on my tags…" and `mkt-desktop train` run this. The app never imports the training stack:
each step is `mkt-train` in a child process (`python -m trainer.cli`), one after another, and progress is read
from the metrics.jsonl each stage writes. Cancel sends the child Ctrl-C (it finishes its step, saves and
stops); nothing is written where the app looks for models until the export has finished, and a bundle is
only ever renamed into place whole (the exporter's own rule).

From a CLIP bundle the student is CLIP's image tower (the release variant) and the teacher that same tower;
from an MKT bundle (the demo, the authors' model) the student goes on from where it is, without distillation
(a bundle does not carry its teacher). In both, only the last two blocks and the projection train, as the
release does. The GPU is used when there is one (`device`).
"""

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mkt_core.runtime.bundle import load_bundle
from mkt_desktop.library.catalogue import TRAINED_FOLDER
from mkt_desktop.library.training_set import decision_counts, library_model_folder

RUNS_FOLDER = "training"  # in the cache folder: each run's checkpoints and logs
CONFIG = "library"  # trainer/configs/library.toml
TRAINED_BLOCKS = 2  # the release trains the last two of CLIP ViT-B/16's twelve blocks
# How much of the whole each step is, for one progress bar: the stages by their steps, the export a bit.
WEIGHTS = {"stage1": 0.6, "stage2": 0.3, "export": 0.1}


@dataclass
class TrainingProgress:
    step: str  # "stage1", "stage2" or "export"
    done: float  # of the whole run, 0..1
    message: str
    eta_seconds: float | None


@dataclass
class TrainingReport:
    bundle: Path | None  # the new model, None when cancelled
    cancelled: bool
    photos: int
    accepted: int
    rejected: int
    seconds: float
    run_folder: Path


@dataclass
class TrainingPlan:
    """What will run: the library, the model it starts from, and where everything goes."""

    db_path: Path
    start_model: Path  # the bundle folder training starts from
    name: str
    run_folder: Path
    bundle: Path
    fix_layer: int
    distill: bool
    device: str = "auto"
    epochs: int | None = None  # None: the config's
    counts: dict[str, int] = field(default_factory=dict)  # photos with decisions, accepted, rejected
    commands: dict[str, list[str]] = field(default_factory=dict)


def training_available() -> str | None:
    """Why this installation cannot train (the training stack is missing), or None."""
    missing = [name for name in ("torch", "timm", "open_clip", "trainer") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"training needs {', '.join(missing)}, which this installation lacks: install the project with "
                "`pip install -e .` (make venv does)")
    return None


def plan_training(lib, name: str | None = None, device: str = "auto", epochs: int | None = None,
                  start_model: str | Path | None = None) -> TrainingPlan:
    """The run for `lib`, starting from its model (or `start_model`, a bundle folder)."""
    folder = Path(start_model) if start_model else library_model_folder(lib)
    bundle = load_bundle(folder)
    manifest = bundle.manifest
    if bundle.kind == "clip":
        vision = manifest["torch"]["model_cfg"].get("vision_cfg", {})
        depth = vision.get("layers") if isinstance(vision.get("layers"), int) else 0
        distill = True
    else:
        depth = manifest["torch"]["config"]["student"].get("timm_kwargs", {}).get("depth", 12)
        distill = False
    name = name or "mine-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    if Path(name).name != name or not name.strip():
        raise ValueError(f"the new model's name must be a plain folder name, got {name!r}")
    cache = lib.cache_dir
    plan = TrainingPlan(db_path=lib.db_path, start_model=folder, name=name, run_folder=cache / RUNS_FOLDER / name,
                        bundle=cache / TRAINED_FOLDER / name, fix_layer=max(int(depth) - TRAINED_BLOCKS, 0),
                        distill=distill, device=device, epochs=epochs, counts=decision_counts(lib))
    if not plan.counts["accepted"]:
        raise ValueError("there are no accepted tags to learn from yet: accept a label on some photos first")
    plan.commands = _commands(plan)
    return plan


def with_epochs(plan: TrainingPlan, epochs: int | None) -> TrainingPlan:
    """The same run with another number of passes over the tagged photos."""
    changed = dataclasses.replace(plan, epochs=epochs)
    changed.commands = _commands(changed)
    return changed


def _commands(plan: TrainingPlan) -> dict[str, list[str]]:
    train = [sys.executable, "-m", "trainer.cli"]
    common = ["--config", CONFIG, "--data", f"library:{plan.db_path}", "--device", plan.device, "--progress", "false"]
    if plan.epochs is not None:
        common += ["--epochs", str(plan.epochs)]
    stage1 = [*train, "stage1", *common, "--init", str(plan.start_model), "--fix-layer", str(plan.fix_layer),
              "--out", str(plan.run_folder / "stage1")]
    if not plan.distill:
        stage1 += ["--distill-weight", "0"]
    stage2 = [*train, "stage2", *common, "--init", str(plan.run_folder / "stage1" / "checkpoints" / "last"),
              "--out", str(plan.run_folder / "stage2")]
    export = [*train, "export", str(plan.run_folder / "stage2" / "checkpoints" / "last"), "--out", str(plan.bundle),
              "--name", f"{plan.name} (trained on {plan.db_path.name})"]
    return {"stage1": stage1, "stage2": stage2, "export": export}


def run_training(plan: TrainingPlan, progress: Callable[[TrainingProgress], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> TrainingReport:
    """Run the plan's steps; a failed step raises RuntimeError with its error line and its log file."""
    problem = training_available()
    if problem:
        raise RuntimeError(problem)
    if plan.bundle.exists():
        raise FileExistsError(f"{plan.bundle}: a model of that name exists already")
    counts = plan.counts
    started = time.monotonic()
    done_before = 0.0
    for step, command in plan.commands.items():
        finished = _run_step(plan, step, command, done_before, started, progress, cancel)
        if not finished:
            return TrainingReport(None, True, seconds=time.monotonic() - started, run_folder=plan.run_folder,
                                  **counts)
        done_before += WEIGHTS[step]
    if progress:
        progress(TrainingProgress("export", 1.0, f"Trained: {plan.bundle.name}", 0.0))
    return TrainingReport(plan.bundle, False, seconds=time.monotonic() - started, run_folder=plan.run_folder, **counts)


def _run_step(plan: TrainingPlan, step: str, command: list[str], done_before: float, started: float,
              progress, cancel) -> bool:
    """One child process to its end; False when cancelled."""
    plan.run_folder.mkdir(parents=True, exist_ok=True)
    log_path = plan.run_folder / f"{step}.log"
    metrics = plan.run_folder / step / "metrics.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        cancelled = False
        while child.poll() is None:
            if cancel is not None and cancel() and not cancelled:
                cancelled = True
                _interrupt(child)
            if progress:
                progress(_progress(step, metrics, done_before, started))
            try:
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    if cancelled or child.returncode == 130:
        return False
    if child.returncode != 0:
        raise RuntimeError(f"{step} failed: {_error_line(log_path)} (the whole log: {log_path})")
    return True


def _interrupt(child: subprocess.Popen) -> None:
    """Ctrl-C: the trainer finishes the step in flight, saves and exits; killed if it has not within 60 s."""
    if sys.platform == "win32":
        child.terminate()
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()


def _progress(step: str, metrics: Path, done_before: float, started: float) -> TrainingProgress:
    fraction, message = 0.0, {"stage1": "Stage 1: the image model learns your tags",
                              "stage2": "Stage 2: the prompt learns your tags",
                              "export": "Exporting the new model"}[step]
    if step != "export":
        total, current = _steps(metrics)
        if total:
            fraction = current / total
            message += f" (step {current}/{total})"
    done = done_before + WEIGHTS[step] * fraction
    elapsed = time.monotonic() - started
    eta = elapsed * (1 - done) / done if done > 0.02 else None
    return TrainingProgress(step, done, message, eta)


def _steps(metrics: Path) -> tuple[int, int]:
    """(total steps, steps done) from a stage's metrics.jsonl so far."""
    total = current = 0
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the line being written
        if record.get("event") == "start":
            total = int(record["total_steps"])
        if "step" in record:
            current = max(current, int(record["step"]))
    return total, current


def _error_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1].strip()
