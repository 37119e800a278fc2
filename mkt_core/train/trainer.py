"""The two training stages, evaluation, checkpoints with exact resume, and DistributedDataParallel.

One `Trainer` runs stage 1 (student and heads; L_rank + lambda * L_dist) or stage 2 (prompt
context only; L_rank). A run is reproducible from its seed: the data order of an epoch and
the augmentation of an image are pure functions of (seed, epoch, index), so a run resumed
from a checkpoint takes exactly the steps the uninterrupted run would have taken.
Launched by `torchrun`, it trains on every process and rank 0 writes checkpoints and logs.
"""

import json
import math
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mkt_core.data import MultiLabelSplit, collate_skipping_bad, eval_transform, train_transform
from mkt_core.model.checkpoint import load_model, save_model
from mkt_core.model.from_bundle import is_bundle, model_from_bundle
from mkt_core.model.mkt import MKT, create_model
from mkt_core.model.safe_load import safe_torch_load
from mkt_core.train.config import TrainConfig
from mkt_core.train.evaluation import evaluate_split

STATE_FILE = "training_state.pt"
TRAIN_CONFIG_FILE = "train_config.json"


# -- processes and devices ------------------------------------------------------------------

@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group when launched by torchrun (RANK / WORLD_SIZE in the environment)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- data order and augmentation as functions of (seed, epoch, index) ------------------------

class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch, split across processes; can start part-way through an epoch."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        self.size, self.seed, self.rank, self.world_size, self.shuffle = size, seed, rank, world_size, shuffle
        self.epoch = 0
        self.start = 0  # samples of this process's share already consumed

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def per_process(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_process() * self.world_size
        order += order[: total - len(order)]  # pad so every process takes the same number of steps
        # (epoch, index) pairs: the workers learn the epoch from the key, so they can persist
        return iter((self.epoch, index) for index in order[self.rank:total:self.world_size][self.start:])

    def __len__(self) -> int:
        return self.per_process() - self.start


class SeededAugmentation(Dataset):
    """Seeds the RNGs before each item so that its random augmentation depends only on (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        item_seed = (self.seed * 1_000_003 + epoch * 10_007 + index) % 2**31
        torch.manual_seed(item_seed)
        random.seed(item_seed)
        np.random.seed(item_seed)
        return self.dataset[index]


# -- optimiser and schedule ----------------------------------------------------------------

def _vit_layer_id(name: str, num_blocks: int) -> int:
    """Layer index for layer-wise lr decay (BEiT style, as the released code): embeddings 0, block i -> i + 1."""
    if name.startswith(("cls_token", "pos_embed", "patch_embed", "norm_pre", "reg_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_blocks + 1


def build_optimizer(model: MKT, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no decay on 1-D ones; optional layer decay / frozen layers."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    num_blocks = len(getattr(model.student.backbone, "blocks", []))
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = 1.0
        if name.startswith("student.backbone."):
            layer = _vit_layer_id(name[len("student.backbone."):], num_blocks)
            if config.fix_layer and layer <= config.fix_layer:  # as released: layer ids up to N stay frozen
                param.requires_grad_(False)
                continue
            if config.layer_decay:
                scale = config.layer_decay ** (num_blocks + 1 - layer)
        decay = 0.0 if param.ndim <= 1 else config.weight_decay
        groups.setdefault((scale, decay), []).append(param)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    param_groups = [{"params": params, "lr_scale": scale, "weight_decay": decay, "lr": lr * scale}
                    for (scale, decay), params in groups.items()]
    return torch.optim.AdamW(param_groups, lr=lr)


def learning_rate(config: TrainConfig, peak: float, epoch_progress: float, total_epochs: float | None = None) -> float:
    """lr at a fractional epoch: constant (paper) or linear warm-up then half-cosine (released code).

    The cosine ends where training ends: `total_epochs` (a run cut short by max_steps), else config.epochs.
    """
    if config.schedule == "constant":
        return peak
    if config.schedule != "warmup_cosine":
        raise ValueError(f"schedule must be 'constant' or 'warmup_cosine', got {config.schedule!r}")
    if epoch_progress < config.warmup_epochs:
        return peak * epoch_progress / config.warmup_epochs
    end = config.epochs if total_epochs is None else total_epochs
    span = max(end - config.warmup_epochs, 1e-8)
    cosine = 0.5 * (1 + math.cos(math.pi * min((epoch_progress - config.warmup_epochs) / span, 1.0)))
    return config.min_lr + (peak - config.min_lr) * cosine


# -- datasets from the config ----------------------------------------------------------------

def load_split(config: TrainConfig, split: str, image_size: int, mean, std, train: bool,
               eval_resize: str = "squash") -> MultiLabelSplit:
    from mkt_core.data import load_generic, load_nus_wide, load_open_images

    transform = (train_transform(image_size, mean, std, config.randaugment, config.crop_scale) if train
                 else eval_transform(image_size, mean, std, eval_resize))
    # JPEG draft mode decodes big photos at a fraction of their size, never below the crop's needs
    options = {"strict": config.strict, "decode_size": image_size}
    if config.dataset == "nus-wide":
        return load_nus_wide(config.data_root, split, transform, **options)
    if config.dataset == "open-images":
        return load_open_images(config.data_root, split, transform, **options)
    if config.dataset == "generic":
        annotations = config.annotations if split == "train" else (config.test_annotations or config.annotations)
        return load_generic(annotations, config.label_file, transform, split=split, **options)
    raise ValueError(f"dataset must be nus-wide, open-images or generic, got {config.dataset!r}")


def eval_protocol(config: TrainConfig) -> str:
    """Open Images is evaluated as BiAM does; NUS-WIDE and the generic layout as MKT's NUS-WIDE test."""
    return "open-images" if config.dataset == "open-images" else "nus-wide"


# -- the loop --------------------------------------------------------------------------------

class _LossModule(nn.Module):
    """Lets DistributedDataParallel see the loss computation as a forward call."""

    def __init__(self, model: MKT):
        super().__init__()
        self.model = model

    def forward(self, images, targets, labels):
        out = self.model.training_loss(images, targets, labels)
        distill = out.distill if out.distill is not None else torch.zeros((), device=images.device)
        return out.total, out.rank, distill


class Trainer:
    def __init__(self, config: TrainConfig, stage: int):
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.config, self.stage = config, stage
        self.device = pick_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        self.out = Path(config.out)
        seed_everything(config.seed)
        self.model = self._build_model().to(self.device)
        self.model.set_stage(stage)
        mc = self.model.config
        self.train_split = load_split(config, "train", mc.image_size, mc.mean, mc.std, train=True)
        self.test_split = None
        if config.eval_every:
            self.test_split = load_split(config, "test", mc.image_size, mc.mean, mc.std, train=False,
                                         eval_resize=mc.eval_resize)
        self.peak_lr = config.lr if config.lr is not None else (1e-3 if stage == 1 else 3e-5)
        self.optimizer = build_optimizer(self.model, config, self.peak_lr)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.data = SeededAugmentation(self.train_split.dataset, config.seed)
        self.sampler = EpochSampler(len(self.data), config.seed, self.dist.rank, self.dist.world_size)
        self.loader = DataLoader(self.data, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.workers, collate_fn=collate_skipping_bad, drop_last=True,
                                 pin_memory=self.device.type == "cuda", persistent_workers=config.workers > 0,
                                 worker_init_fn=_ignore_sigint_in_worker if config.workers else None)
        self.steps_per_epoch = len(self.sampler) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {config.batch_size} is larger than the {len(self.sampler)} training "
                             f"images of each process")
        self.step = 0
        self.skipped: list[str] = []
        self.loss_module = _LossModule(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.loss_module = nn.parallel.DistributedDataParallel(
                self.loss_module, device_ids=ids, find_unused_parameters=self.model.config.streams != "both")

    def _build_model(self) -> MKT:
        config = self.config
        if config.init and is_bundle(config.init):  # an app's model: training goes on from what it tags with
            model = model_from_bundle(config.init, teacher=config.vlp_pretrained)
            if config.model_overrides():
                model.config = model.config.replace(**config.model_overrides())
            if self.stage == 1 and model.config.distill_weight and not model.has_teacher:
                raise ValueError(f"{config.init}: this MKT bundle does not carry its teacher (CLIP's image tower), "
                                 "so stage 1 cannot distil: give --vlp-pretrained (the CLIP it was distilled from: "
                                 "an open_clip tag, file or folder) or --distill-weight 0")
            return model
        if config.init:
            model = load_model(config.init)
            if config.model_overrides():
                model.config = model.config.replace(**config.model_overrides())
            return model
        if self.stage == 2:
            raise ValueError("stage 2 starts from a stage-1 checkpoint: give --init CHECKPOINT")
        from mkt_core.model.config import get_preset

        mc = get_preset(config.preset, **config.model_overrides())
        if config.vlp_pretrained is not None:
            mc.vlp.pretrained = config.vlp_pretrained or None
        if config.student_pretrained is not None:
            mc.student.pretrained = config.student_pretrained
        return create_model(mc)

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, name: str) -> Path:
        folder = self.out / "checkpoints" / name
        save_model(self.model, folder, extra={"stage": self.stage, "step": self.step})
        state = {
            "step": self.step,
            "stage": self.stage,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rng_python": _python_rng_state(),
            "rng_numpy": _numpy_rng_state(),
            "skipped": list(self.skipped),
        }
        torch.save(state, folder / (STATE_FILE + ".tmp"))
        (folder / (STATE_FILE + ".tmp")).replace(folder / STATE_FILE)
        (folder / TRAIN_CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2), encoding="utf-8")
        return folder

    def resume(self, folder: str | Path) -> None:
        folder = Path(folder)
        saved = load_model(folder)
        self.model.load_state_dict(saved.state_dict())
        state = safe_torch_load(folder / STATE_FILE)
        if state["stage"] != self.stage:
            raise ValueError(f"{folder}: a stage-{state['stage']} checkpoint cannot resume stage {self.stage}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.skipped = list(state.get("skipped", []))
        torch.set_rng_state(state["rng_torch"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        _set_python_rng_state(state["rng_python"])
        _set_numpy_rng_state(state["rng_numpy"])

    # -- logging ---------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"stage": self.stage, "time": round(time.time(), 3), **record}) + "\n")

    # -- training ----------------------------------------------------------------------------

    def labels_for_training(self) -> list[str] | torch.Tensor:
        labels = self.train_split.labels
        if self.stage == 2:
            return labels  # the prompt trains: embeddings are recomputed every step
        with torch.no_grad():
            return self.model.encode_labels(labels).detach()

    def run(self) -> dict[str, Any]:
        config = self.config
        total_steps = self.steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        label_input = self.labels_for_training()
        interrupted = {"flag": False}
        previous = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum, frame):  # finish the step in flight, then save and stop
            interrupted["flag"] = True

        if self.dist.is_main and sys.platform != "win32":
            signal.signal(signal.SIGINT, on_interrupt)
        missing = self.train_split.dataset.missing
        if missing and self.step == 0:
            self.log({"event": "missing_images", "count": len(missing), "paths": missing[:100]})
        self.log({"event": "start", "step": self.step, "total_steps": total_steps, "device": str(self.device)})
        progress = _progress(total_steps, self.step, self.dist.is_main and config.progress)
        result: dict[str, Any] = {"status": "finished"}
        try:
            while self.step < total_steps:
                epoch, start_step = divmod(self.step, self.steps_per_epoch)
                self._train_epoch(epoch, start_step, total_steps, label_input, progress, interrupted)
                if interrupted["flag"]:
                    if self.dist.is_main:
                        folder = self.save("last")
                        print(f"\ninterrupted at step {self.step}: saved {folder}; resume with --resume {folder}",
                              file=sys.stderr)
                    result["status"] = "interrupted"
                    break
                if self.step % self.steps_per_epoch == 0:
                    self._end_of_epoch(epoch)
                elif self.step >= total_steps and self.dist.is_main:  # stopped by max_steps mid-epoch
                    self.save("last")
        finally:
            progress.close()
            if self.dist.is_main and sys.platform != "win32":
                signal.signal(signal.SIGINT, previous)
        result.update(step=self.step, skipped_images=len(self.skipped), missing_images=len(missing))
        if self.dist.enabled:
            result["ranks_in_sync"] = self._check_ranks_in_sync()
        self.log({"event": "end", **result})
        return result

    def _train_epoch(self, epoch, start_step, total_steps, label_input, progress, interrupted) -> None:
        config = self.config
        self.sampler.set_epoch(epoch, start_step * config.batch_size)
        self.model.train()
        label_input = label_input.to(self.device) if isinstance(label_input, torch.Tensor) else label_input
        started, seen = time.perf_counter(), 0
        for images, targets, _, bad in self.loader:
            self._note_skipped(bad)
            lr = learning_rate(config, self.peak_lr, self.step / self.steps_per_epoch,
                               total_steps / self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            images = images.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
            with autocast:
                total, rank_loss, distill = self.loss_module(images, targets, label_input)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            seen += images.shape[0] * self.dist.world_size
            rate = seen / max(time.perf_counter() - started, 1e-9)
            progress.update(1)
            progress.set_postfix(loss=f"{total.item():.4f}", img_s=f"{rate:.1f}", epoch=epoch)
            if self.step % config.log_every == 0 or self.step == 1:
                self.log({"step": self.step, "epoch": self.step / self.steps_per_epoch, "loss": total.item(),
                          "rank_loss": rank_loss.item(), "distill_loss": distill.item(), "lr": lr,
                          "images_per_second": rate})
            if self.step >= total_steps or interrupted["flag"]:
                break

    def _note_skipped(self, bad: list[int]) -> None:
        if not bad:
            return
        paths = self.train_split.dataset.paths
        for index in bad:
            self.skipped.append(str(paths[index]))
            self.log({"event": "skipped_image", "path": str(paths[index])})

    def _end_of_epoch(self, epoch: int) -> None:
        if self.dist.is_main:
            self.save(f"epoch_{epoch + 1:03d}")
            self.save("last")
        if self.test_split is not None and self.config.eval_every and (epoch + 1) % self.config.eval_every == 0:
            if self.dist.is_main:
                results = self.evaluate()
                self.log({"event": "eval", "epoch": epoch + 1, "step": self.step, **results})
                plot_curves(self.out / "metrics.jsonl", self.out / "curves.png")
            if self.dist.enabled:
                dist.barrier()
        elif self.dist.is_main:
            plot_curves(self.out / "metrics.jsonl", self.out / "curves.png")

    def evaluate(self) -> dict[str, Any]:
        return evaluate_split(self.model, self.test_split, self.config.eval_batch_size, self.config.f1_k,
                              self.device, protocol=eval_protocol(self.config),
                              workers=self.config.workers)

    def _check_ranks_in_sync(self) -> bool:
        """All processes must end with identical weights; compare a checksum of every trainable tensor."""
        checksum = torch.zeros(1, dtype=torch.float64, device=self.device)
        for param in self.model.parameters():
            if param.requires_grad:
                checksum += param.detach().double().sum() + param.detach().double().abs().sum() * 1e-3
        gathered = [torch.zeros_like(checksum) for _ in range(self.dist.world_size)]
        dist.all_gather(gathered, checksum)
        values = [g.item() for g in gathered]
        self.log({"event": "rank_checksums", "checksums": values})
        return all(v == values[0] for v in values)


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_python_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss"]))


def _numpy_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached)}


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))


def _ignore_sigint_in_worker(worker_id: int) -> None:
    """Ctrl-C is the main process's to handle: it finishes the step, saves and stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, disable=not enabled, unit="step", dynamic_ncols=True,
                file=sys.stderr, mininterval=1.0)


def plot_curves(metrics_file: Path, out_file: Path) -> None:
    """Loss per step and eval mAP per epoch, as one PNG a researcher can glance at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, evals = [], [], []
    for line in Path(metrics_file).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "loss" in record:
            steps.append(record["step"])
            losses.append(record["loss"])
        elif record.get("event") == "eval":
            evals.append(record)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps, losses)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_title("loss")
    for setting in ("zsl", "gzsl"):
        points = [(r["step"], r[setting]["map"]) for r in evals if setting in r]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=f"{setting.upper()} mAP")
    right.set_xlabel("step")
    right.set_title("evaluation")
    if evals:
        right.legend()
    figure.tight_layout()
    figure.savefig(out_file, dpi=90)
    plt.close(figure)
