"""The paper variant's student start: the toy ViT pretrained on the world's images without MKT's labels.

The paper's student starts ImageNet-pretrained: it already knows many visual categories, NUS-WIDE's unseen
ones among them, but was never trained on NUS-WIDE's labels. The analogue here: the `toy` student's
backbone trained to say which colours and which shapes a scene holds (18 separate attributes on the
caption stream's scenes: all ten shapes, moon and arrow included, but never a colour-shape composition,
which are MKT's labels). A linear head on the class token reads the attributes and is thrown away after.
"""

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mkt_core.synthetic.pretrain import eval_scenes, learning_rate, to_input
from mkt_core.synthetic.world import SceneObject, WorldSpec, generate_batch
from mkt_core.train.metrics import average_precision

BACKBONE_FILE = "backbone.safetensors"
RESULT_FILE = "backbone.json"


@dataclass
class BackboneConfig:
    """One attribute pretraining run of the student backbone; a pure function of these fields."""

    preset: str = "toy"
    steps: int = 1200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    pool: int = 25600  # caption-stream scenes generated once and cycled through (with flips)
    seed: int = 0
    eval_scenes: int = 500

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def attribute_targets(objects: list[list[SceneObject]], world: WorldSpec) -> torch.Tensor:
    """`[N, colours + shapes]`: 1 where a scene holds an object of that colour / that shape."""
    names = list(world.colours) + list(world.shapes)
    column = {name: j for j, name in enumerate(names)}
    out = torch.zeros(len(objects), len(names))
    for i, objs in enumerate(objects):
        for o in objs:
            out[i, column[o.colour]] = 1
            out[i, column[o.shape]] = 1
    return out


def _backbone(preset: str) -> tuple[nn.Module, Any]:
    from mkt_core.model.config import get_preset
    from mkt_core.model.student import Student

    mc = get_preset(preset)
    return Student(mc, load_weights=False).backbone, mc


def pretrain_backbone(config: BackboneConfig, out: str | Path,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the backbone on attributes, save `backbone.safetensors` and `backbone.json` in `out`; a
    finished run of the same config is reused."""
    out = Path(out)
    result_file = out / RESULT_FILE
    if result_file.is_file() and (out / BACKBONE_FILE).is_file():
        saved = json.loads(result_file.read_text(encoding="utf-8"))
        if saved.get("config") == config.to_dict():
            return saved
    started = time.monotonic()
    torch.manual_seed(config.seed)
    world = WorldSpec()
    backbone, mc = _backbone(config.preset)
    head = nn.Linear(backbone.embed_dim, len(world.colours) + len(world.shapes))
    params = list(backbone.parameters()) + list(head.parameters())
    decay = [p for p in params if p.ndim >= 2]
    plain = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": plain, "weight_decay": 0.0}], lr=config.lr)
    pool = generate_batch(config.pool, config.seed, world, "caption")
    targets = attribute_targets(pool.objects, world)
    log(f"backbone: {config.pool} caption scenes in {time.monotonic() - started:.0f} s")
    order_gen = torch.Generator().manual_seed(config.seed)
    order, cursor = torch.randperm(len(pool), generator=order_gen), 0
    backbone.train()
    for step in range(config.steps):
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(pool), generator=order_gen), 0
        idx = order[cursor:cursor + config.batch_size].tolist()
        cursor += config.batch_size
        images = to_input(pool.images[idx], mc.mean, mc.std)
        flip = torch.from_numpy(np.random.default_rng([config.seed, 11, step]).random(len(idx)) < 0.5)
        images[flip] = images[flip].flip(-1)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        logits = head(backbone.forward_features(images)[:, 0])
        loss = F.binary_cross_entropy_with_logits(logits, targets[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 100 == 0 or step + 1 == config.steps:
            log(f"backbone step {step + 1}: loss {loss.item():.4f}")
    result = {"config": config.to_dict(), **evaluate_attributes(backbone, head, world, mc, config.eval_scenes),
              "seconds": round(time.monotonic() - started, 1), "final_loss": round(loss.item(), 4)}
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(out / BACKBONE_FILE))
    result_file.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


@torch.no_grad()
def evaluate_attributes(backbone: nn.Module, head: nn.Module, world: WorldSpec, mc, count: int) -> dict[str, Any]:
    """Attribute AP on held-out multi-object scenes (the teacher's eval scenes): what the start knows."""
    backbone.eval()
    scenes = eval_scenes(world, count).multi
    logits = head(backbone.forward_features(to_input(scenes.images, mc.mean, mc.std))[:, 0]).numpy()
    targets = attribute_targets(scenes.objects, world).numpy() * 2 - 1
    ap = average_precision(logits, targets.astype(np.int8))
    names = list(world.colours) + list(world.shapes)
    colours = len(world.colours)
    return {"colour_map": float(np.nanmean(ap[:colours])), "shape_map": float(np.nanmean(ap[colours:])),
            "shape_ap": {name: float(a) for name, a in zip(names[colours:], ap[colours:], strict=True)}}


def init_checkpoint(backbone_dir: str | Path, teacher: str, seed: int, out: str | Path, preset: str = "toy") -> Path:
    """An MKT checkpoint to start stage 1 from: the pretrained backbone, fresh heads drawn from `seed`."""
    from mkt_core.model.checkpoint import save_model
    from mkt_core.model.config import get_preset
    from mkt_core.model.mkt import create_model

    out = Path(out)
    if (out / "config.json").is_file():  # written last by save_model
        return out
    torch.manual_seed(seed)
    mc = get_preset(preset)
    mc.vlp.pretrained = teacher
    model = create_model(mc)
    model.student.backbone.load_state_dict(load_file(str(Path(backbone_dir) / BACKBONE_FILE)), strict=True)
    return save_model(model, out, extra={"backbone": str(backbone_dir), "seed": seed})
