"""The training run's config: one flat dataclass, read from TOML, overridable by flags.

Every field has help text; `mkt-train --help` is generated from it, so a new option is
documented the moment it is added. A TOML file's `[stage1]` and `[stage2]` tables hold what
differs between the two stages (the paper trains them with different batch sizes and learning
rates); they apply only to that stage and win over the file's other keys.
"""

import argparse
import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy_default(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


def copy_default(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class TrainConfig:
    # what to train
    preset: str = _opt("tiny", "model preset (paper-vit-b16, release-vit-b16, tiny, tiny-release)")
    init: str | None = _opt(None, "checkpoint folder to start from (stage 2 and eval need the stage-1 one), or a "
                                  "model bundle the app uses (MKT: the same model; CLIP: the release variant)")
    vlp_pretrained: str | None = _opt(None, "VLP weights: an open_clip tag, a local file or open_clip folder; "
                                            "default: the preset's")
    student_pretrained: bool | None = _opt(None, "load timm's pretrained student weights; default: the preset's")
    top_k: int | None = _opt(None, "k of the local stream's top-k mean; default: the preset's")
    distill_weight: float | None = _opt(None, "lambda of L_rank + lambda * L_dist; default: the preset's (1.0)")
    score_mode: str | None = _opt(None, "'paper' (Eq. 3) or 'released_code' (per-stream L2 across labels)")
    streams: str | None = _opt(None, "'both', 'global' or 'local' (two-stream ablation)")
    prompt_tuning: str | None = _opt(None, "'context' (CoOp, paper) or 'token_table' (released code)")
    normalize_label_embeddings: bool | None = _opt(
        None, "L2-normalise label embeddings; the release preset uses CLIP's raw text features (false)")
    distill_images: str | None = _opt(None, "'with_positive' (distil only images with a seen positive, as the "
                                            "release) or 'all'; default: the preset's")
    eval_resize: str | None = _opt(None, "evaluation pixels: 'squash' (whole image to a square) or 'center_crop' "
                                         "(resize 256, centre crop 224: the release); default: the model's")

    # data
    data: str = _opt("", "library:PATH/library.sqlite trains on a library's decisions (accepted tags positive, "
                         "rejected negative, the rest unknown), from the library's model unless --init is given")
    dataset: str = _opt("generic", "dataset layout: nus-wide, open-images or generic")
    data_root: str = _opt("", "dataset root folder (nus-wide, open-images)")
    annotations: str = _opt("", "generic layout: CSV or JSONL of (path, labels) for training")
    test_annotations: str = _opt("", "generic layout: CSV or JSONL for evaluation (default: the training file)")
    label_file: str = _opt("", "generic layout: label file marking seen / unseen labels")
    strict: bool = _opt(False, "stop at the first missing or corrupt image instead of skipping it")
    workers: int = _opt(2, "data loader worker processes")
    randaugment: str | None = _opt(None, "timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 (released code)")
    crop_scale: float = _opt(0.5, "smallest area fraction kept by the random resized crop (1.0: whole image; "
                                  "the release: 0.08)")

    # optimisation
    epochs: int = _opt(20, "training epochs")
    batch_size: int = _opt(64, "images per step on each process")
    eval_batch_size: int = _opt(128, "images per evaluation step")
    lr: float | None = _opt(None, "peak learning rate; default 1e-3 in stage 1, 3e-5 in stage 2 (paper)")
    min_lr: float = _opt(1e-6, "final learning rate of the cosine schedule")
    weight_decay: float = _opt(5e-3, "AdamW weight decay (paper: 5e-3; released code: 0.05)")
    schedule: str = _opt("constant", "'constant' (paper) or 'warmup_cosine' (released code)")
    warmup_epochs: float = _opt(2.0, "warm-up epochs of the warmup_cosine schedule")
    layer_decay: float | None = _opt(None, "layer-wise lr decay of the student ViT (released code: 0.65)")
    fix_layer: int = _opt(0, "freeze the student's embeddings and first N blocks (released code: 10; 0: none)")
    amp: bool = _opt(True, "mixed precision on CUDA (ignored on CPU)")
    seed: int = _opt(42, "random seed (model init, data order, augmentation)")
    max_steps: int | None = _opt(None, "stop after this many steps in total (smoke tests, benchmarks)")

    # evaluation and output
    f1_k: list[int] = _opt([3, 5], "K of precision / recall / F1 at top-K (NUS-WIDE 3, 5; Open Images 10, 20)")
    eval_every: int = _opt(1, "evaluate on the test split every N epochs (0: never during training)")
    out: str = _opt("runs/mkt", "output folder: checkpoints, metrics.jsonl, curves.png, eval tables")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    log_every: int = _opt(10, "write a metrics.jsonl line every N steps")
    progress: bool = _opt(True, "show a progress bar on stderr")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_overrides(self) -> dict[str, Any]:
        keys = ("top_k", "distill_weight", "score_mode", "streams", "prompt_tuning", "normalize_label_embeddings",
                "distill_images", "eval_resize")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


STAGE_TABLES = {"stage1": 1, "stage2": 2}


def read_toml(path: str | Path, stage: int | None = None) -> dict[str, Any]:
    """The file's keys, flat; the `[stage1]` / `[stage2]` table of `stage` last (none for eval)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    flat: dict[str, Any] = {}
    staged: dict[str, Any] = {}
    for key, value in data.items():
        if key in STAGE_TABLES:
            if not isinstance(value, dict):
                raise ValueError(f"{path}: [{key}] must be a table")
            _check_keys(path, value)
            if STAGE_TABLES[key] == stage:
                staged = value
        elif isinstance(value, dict):  # [data], [optim] ... tables are only for readability
            flat.update(value)
        else:
            flat[key] = value
    _check_keys(path, flat)
    return {**flat, **staged}


def _check_keys(path: Path, values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown config keys {unknown}; see mkt-train --help")


def build_config(toml_path: str | Path | None, overrides: dict[str, Any], stage: int | None = None) -> TrainConfig:
    """TOML first (with the table of `stage`), then flags: a flag that was given always wins."""
    values = read_toml(toml_path, stage) if toml_path else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def parse_bool(text: str) -> bool:
    """A command-line flag's true or false (the toy benchmark's and `mkt-train`'s flags too)."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
