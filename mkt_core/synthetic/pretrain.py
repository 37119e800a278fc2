"""Contrastive pretraining of a small CLIP on the synthetic world: the offline stand-in for web-scale CLIP.

MKT needs a teacher that already knows the world's words and pictures. Offline there is no CLIP,
so one is trained here, once, on (image, caption) pairs of the synthetic world, and saved the way
real CLIP checkpoints are loaded (an open_clip folder), so that everything downstream treats it
as any other CLIP: `load_vlp(VLPConfig(pretrained=folder))` or `open_clip.create_model("local-dir:...")`.

What makes a small CLIP competent here (docs/proving-ground.md has the measurements):
- a convolutional image tower (a small ResNet) rather than a small ViT;
- captions that sometimes name only some of the objects, in a few phrasings;
- a hard-negative caption per image (colours swapped between objects, or a colour taken from another
  object of the scene), so that "red star" must mean a red star and not red and a star somewhere;
- captions true of another image in the batch are not counted as negatives (the world knows).
"""

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from mkt_core.model.config import CLIP_MEAN, CLIP_STD, PROMPT_TEMPLATE
from mkt_core.synthetic.world import (
    SEEN,
    UNSEEN_CATEGORY,
    UNSEEN_COMPOSITION,
    SceneBatch,
    SceneObject,
    WorldSpec,
    generate_batch,
    generate_scene,
    scene_seed,
)
from mkt_core.train.config import parse_bool
from mkt_core.train.metrics import average_precision, mean_average_precision

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
EVAL_FILE = "teacher_eval.json"
EVAL_SEED = 20230207  # the held-out evaluation scenes: the same for every teacher, whatever its seed

# The text tower: CLIP's BPE vocabulary (MKT tokenizes with open_clip's SimpleTokenizer), context 32 as MKT's
# prompts need, and narrow: the world has about thirty words, and width 128 cost more than the image tower.
TEXT_CFG: dict[str, Any] = {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3}

# Image towers tried (docs/proving-ground.md has the runs); "toy" uses the first.
VISION_TOWERS: dict[str, dict[str, Any]] = {
    # timm's small test ResNet (deep stem, one block per stage, 0.38 M parameters): learned shapes fastest
    # per CPU second of the towers tried.
    "test-resnet": {"timm_model_name": "test_resnet", "timm_model_pretrained": False, "timm_pool": "avg",
                    "timm_proj": "linear"},
    # open_clip's own ModifiedResNet (CLIP's RN50 design: 3-conv stem, attention pooling), scaled down.
    "rn-w16": {"layers": [1, 1, 1, 1], "width": 16},
    # open_clip's own ViT: 8 x 8 patch tokens at 64 px and a CLS token, so the teacher has a patch grid
    # (two-stream scoring of its tokens, and a student that starts as a copy of it).
    "vit-p8-w96": {"layers": 4, "width": 96, "head_width": 32, "mlp_ratio": 2.0, "patch_size": 8},
    # The calibration note's tower: far slower here, for a GPU machine.
    "resnet18": {"timm_model_name": "resnet18", "timm_model_pretrained": False, "timm_pool": "avg",
                 "timm_proj": "linear"},
}

PRESETS: dict[str, dict[str, Any]] = {
    "toy": {"embed_dim": 128, "vision": "test-resnet", "text_cfg": TEXT_CFG},
    "toy-vit": {"embed_dim": 128, "vision": "vit-p8-w96", "text_cfg": TEXT_CFG},
    "toy-rn": {"embed_dim": 128, "vision": "rn-w16", "text_cfg": TEXT_CFG},
    "toy-resnet18": {"embed_dim": 128, "vision": "resnet18", "text_cfg": TEXT_CFG},
    # For tests: seconds, not minutes.
    "tiny": {"embed_dim": 32, "vision": {"layers": [1, 1, 1, 1], "width": 8},
             "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
}

TEMPLATES = ("{}", "a picture of {}", "there is {} in the scene", "a scene with {}", "{} on a plain background")


def model_config(preset: str, image_size: int) -> dict[str, Any]:
    """The open_clip model config (what `open_clip.CLIP(**cfg)` takes) of a preset at an image size."""
    if preset not in PRESETS:
        raise ValueError(f"unknown teacher preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    spec = PRESETS[preset]
    vision = spec["vision"]
    vision_cfg = copy.deepcopy(VISION_TOWERS[vision] if isinstance(vision, str) else vision)
    vision_cfg["image_size"] = image_size
    return {"embed_dim": spec["embed_dim"], "vision_cfg": vision_cfg, "text_cfg": copy.deepcopy(spec["text_cfg"])}


@dataclass
class PretrainConfig:
    """One teacher pretraining run; the run is a pure function of these fields (and the thread count).

    The defaults are the shipped teacher's run (run D of docs/proving-ground.md).
    """

    preset: str = "toy"
    image_size: int = 64
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    seed: int = 0
    out: str = "runs/toy-teacher"
    # torch CPU threads; 0 leaves torch's default. One thread is steady on a shared 2-core machine (two
    # OpenMP threads ran 3x slower whenever another process was busy) and keeps runs bit-reproducible.
    threads: int = 1
    pool: int = 60000  # training scenes generated up front and cycled through (with flips)
    cache_dir: str | None = None  # where the generated pool is kept between runs (None: not kept)
    hard_negatives: bool = True
    partial_captions: float = 0.5  # probability that a caption names only some of the objects
    plain_article: float = 0.3  # probability of "a" before every word, as MKT's prompt "There is a {}" has
    save_fp16: bool = True
    # An open_clip teacher folder to learn from instead of captions: the image tower is trained to give
    # that teacher's image embedding (cosine), and the text tower is that teacher's, copied and frozen.
    # A ViT learns the world's shapes far more slowly from captions than a ResNet does (docs/proving-ground.md).
    distill_from: str | None = None
    # A saved teacher of the same preset to continue from (its weights; the optimiser and schedule start afresh).
    init_from: str | None = None
    eval_every: int = 250  # steps between quick evaluations (0: only at the end)
    eval_scenes: int = 500  # single-object and multi-object scenes each in the final evaluation
    log_every: int = 50
    world: dict[str, Any] = field(default_factory=dict)  # WorldSpec fields other than image_size

    def world_spec(self) -> WorldSpec:
        return WorldSpec.from_dict({**self.world, "image_size": self.image_size})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- captions and hard negatives -------------------------------------------------------------

Mention = tuple[str, str]  # (colour, shape)


def _phrase(mentions: Sequence[Mention], plain_article: bool) -> str:
    names = [f"{c} {s}" for c, s in mentions]
    phrases = [("a" if plain_article or n[0] not in "aeiou" else "an") + " " + n for n in names]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def sample_mentions(objects: Sequence[SceneObject], rng: np.random.Generator, partial: float) -> list[Mention]:
    """The objects a caption names, in random order: all of them, or with probability `partial` some."""
    order = [(o.colour, o.shape) for o in (objects[i] for i in rng.permutation(len(objects)))]
    if len(order) > 1 and rng.random() < partial:
        order = order[: int(rng.integers(1, len(order)))]
    return order


def hard_negative(mentions: Sequence[Mention], present: set[Mention], world: WorldSpec,
                  rng: np.random.Generator) -> list[Mention]:
    """A caption's mentions changed so that it is false of the scene but uses what the scene shows.

    In order of preference: swap the colours of two named objects; give a named object the colour of
    another object in the scene; as a last resort give it any other colour or shape.
    """
    mentions = list(mentions)
    options: list[list[Mention]] = []
    for i in range(len(mentions)):
        for j in range(i + 1, len(mentions)):
            (ci, si), (cj, sj) = mentions[i], mentions[j]
            if ci != cj and si != sj:
                swapped = list(mentions)
                swapped[i], swapped[j] = (cj, si), (ci, sj)
                options.append(swapped)
    scene_colours = sorted({c for c, _ in present})
    for i, (c, s) in enumerate(mentions):
        for other in scene_colours:
            if other != c and (other, s) not in present:
                changed = list(mentions)
                changed[i] = (other, s)
                options.append(changed)
    options = [o for o in options if len(set(o)) == len(o) and not set(o) <= present]
    if options:
        return options[int(rng.integers(len(options)))]
    for _ in range(100):
        i = int(rng.integers(len(mentions)))
        c, s = mentions[i]
        if rng.random() < 0.5:
            c = world.colours[int(rng.integers(len(world.colours)))]
        else:
            s = world.shapes[int(rng.integers(len(world.shapes)))]
        changed = list(mentions)
        changed[i] = (c, s)
        if len(set(changed)) == len(changed) and not set(changed) <= present:
            return changed
    raise RuntimeError(f"no hard negative for {mentions} in a scene of {sorted(present)}")


# -- the model, its inputs and its loss ------------------------------------------------------

class _Tokens:
    """open_clip's CLIP BPE tokenizer with a cache: the world has few distinct captions."""

    def __init__(self, context_length: int):
        self.tokenizer = open_clip.SimpleTokenizer(context_length=context_length)
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for text, tokens in zip(missing, self.tokenizer(missing), strict=True):
                self.cache[text] = tokens
        return torch.stack([self.cache[t] for t in texts])


def to_input(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 `[N, H, W, 3]` -> normalised float `[N, 3, H, W]`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def _multi_hot(sets: Sequence[Sequence[Mention]], index: dict[Mention, int]) -> torch.Tensor:
    out = torch.zeros(len(sets), len(index))
    for i, items in enumerate(sets):
        for item in items:
            out[i, index[item]] = 1
    return out


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     true_of: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE, with hard-negative texts and known false negatives masked out.

    `image_emb` `[B, D]` and `text_emb` `[T, D]` (T >= B: the first B texts are the images' own
    captions, the rest hard negatives) are L2-normalised; `true_of[t, b]` says whether text t is
    true of image b: such pairs are neither positives nor negatives, except each image's own caption.
    """
    b = image_emb.shape[0]
    logits = logit_scale.exp() * image_emb @ text_emb.T  # [B, T]
    own = torch.zeros_like(true_of, dtype=torch.bool)
    own[torch.arange(b), torch.arange(b)] = True
    ignore = true_of.bool() & ~own  # [T, B]
    logits = logits.masked_fill(ignore.T, float("-inf"))
    target = torch.arange(b)
    image_to_text = F.cross_entropy(logits, target)
    text_to_image = F.cross_entropy(logits[:, :b].T, target)
    return (image_to_text + text_to_image) / 2


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only: not on norms, biases, embeddings or the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        plain = p.ndim < 2 or "token_embedding" in name or "positional_embedding" in name or "logit_scale" in name
        (no_decay if plain else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# -- the training pool -----------------------------------------------------------------------

def _pool(config: PretrainConfig, world: WorldSpec, log: Callable[[str], None]) -> SceneBatch:
    """The training scenes, generated once from the seed (and kept in `cache_dir` when given)."""
    cache = None
    if config.cache_dir:
        key = json.dumps({"world": world.to_dict(), "seed": config.seed, "pool": config.pool}, sort_keys=True)
        digest = f"{hash_text(key):016x}"
        cache = Path(config.cache_dir) / f"pool-{digest}.npz"
        if cache.is_file():
            data = np.load(cache, allow_pickle=False)
            objects = [[SceneObject(**o) for o in scene] for scene in json.loads(str(data["objects"]))]
            log(f"pool: {len(objects)} scenes from {cache}")
            return SceneBatch(data["images"], [str(c) for c in data["captions"]], objects)
    started = time.monotonic()
    pool = generate_batch(config.pool, config.seed, world, "caption")
    log(f"pool: generated {config.pool} scenes in {time.monotonic() - started:.0f} s")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        objects = json.dumps([[dataclasses.asdict(o) for o in scene] for scene in pool.objects])
        np.savez(cache, images=pool.images, captions=np.array(pool.captions), objects=np.array(objects))
    return pool


def hash_text(text: str) -> int:
    """A stable 64-bit hash (Python's own `hash` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


# -- evaluation ------------------------------------------------------------------------------

@dataclass
class EvalScenes:
    single: SceneBatch
    multi: SceneBatch


def eval_scenes(world: WorldSpec, count: int, seed: int = EVAL_SEED) -> EvalScenes:
    """Held-out scenes: `count` with one object each, `count` with two to max_objects objects."""
    if world.max_objects < 2:
        raise ValueError("the teacher's evaluation needs a world with up to two objects or more")
    single, multi = [], []
    for i in range(count):
        single.append(generate_scene(scene_seed(seed, "eval", 2 * i), world, num_objects=1))
        rng = np.random.default_rng(scene_seed(seed, "eval", 2 * i + 1))
        multi.append(generate_scene(rng, world, num_objects=int(rng.integers(2, world.max_objects + 1))))

    def batch(scenes: list) -> SceneBatch:
        images = np.stack([np.asarray(s.image) for s in scenes])
        return SceneBatch(images, [s.caption for s in scenes], [s.objects for s in scenes])

    return EvalScenes(batch(single), batch(multi))


@torch.no_grad()
def _encode_images(clip: nn.Module, images: np.ndarray, mean, std, batch: int = 250) -> torch.Tensor:
    out = [clip.encode_image(to_input(images[i:i + batch], mean, std), normalize=True)
           for i in range(0, len(images), batch)]
    return torch.cat(out).float()


@torch.no_grad()
def _encode_texts(clip: nn.Module, tokens: _Tokens, texts: Sequence[str]) -> torch.Tensor:
    return clip.encode_text(tokens(texts), normalize=True).float()


@torch.no_grad()
def evaluate_teacher(clip: nn.Module, world: WorldSpec, scenes: EvalScenes, mean: Sequence[float],
                     std: Sequence[float], template: str = PROMPT_TEMPLATE) -> dict[str, Any]:
    """Zero-shot quality with MKT's own prompt ("There is a {label} in the scene").

    - single_*: one-object scenes, top-1 over all labels; the shape (category) and colour of the top label;
    - map*: multi-object scenes, mAP over all labels and over each kind of label (seen / unseen);
    - label_binding: a true label ("red star") against its colour-swapped twin ("blue star") whose colour
      and shape are both in the scene, but not together (chance 0.5);
    - caption_binding: the scene's caption against the same caption with two objects' colours swapped.
    """
    was_training = clip.training
    clip.eval()
    tokens = _Tokens(int(clip.context_length))
    labels = world.labels
    column = {x: j for j, x in enumerate(labels)}
    label_emb = _encode_texts(clip, tokens, [template.format(x) for x in labels])

    single = _encode_images(clip, scenes.single.images, mean, std) @ label_emb.T
    top = [labels[j] for j in single.argmax(dim=1).tolist()]
    truth = [objs[0] for objs in scenes.single.objects]
    result: dict[str, Any] = {
        "single_top1": float(np.mean([t == o.label for t, o in zip(top, truth, strict=True)])),
        "single_shape_top1": float(np.mean([t.split(" ")[1] == o.shape for t, o in zip(top, truth, strict=True)])),
        "single_colour_top1": float(np.mean([t.split(" ")[0] == o.colour for t, o in zip(top, truth, strict=True)])),
    }
    for kind in (SEEN, UNSEEN_CATEGORY, UNSEEN_COMPOSITION):
        hits = [t.split(" ")[1] == o.shape for t, o in zip(top, truth, strict=True)
                if world.label_kind(o.label) == kind]
        result[f"single_shape_top1_{kind}"] = float(np.mean(hits)) if hits else None

    image_emb = _encode_images(clip, scenes.multi.images, mean, std)
    scores = (image_emb @ label_emb.T).numpy()
    targets = -np.ones_like(scores, dtype=np.int8)
    for i, objs in enumerate(scenes.multi.objects):
        for o in objs:
            targets[i, column[o.label]] = 1
    result["map"] = mean_average_precision(scores, targets)
    ap = average_precision(scores, targets)
    for kind in (SEEN, UNSEEN_CATEGORY, UNSEEN_COMPOSITION):
        idx = [j for j, x in enumerate(labels) if world.label_kind(x) == kind]
        result[f"map_{kind}"] = float(np.mean(np.nan_to_num(ap[idx], nan=0.0)))

    wins, pairs = [], []
    true_caps, swapped_caps = [], []
    for i, objs in enumerate(scenes.multi.objects):
        present = {(o.colour, o.shape) for o in objs}
        for a in objs:
            for b in objs:
                if a.colour != b.colour and a.shape != b.shape and (b.colour, a.shape) not in present:
                    wins.append(scores[i, column[a.label]] > scores[i, column[f"{b.colour} {a.shape}"]])
        mentions = [(o.colour, o.shape) for o in objs]
        swap = next(((x, y) for x in range(len(objs)) for y in range(x + 1, len(objs))
                     if mentions[x][0] != mentions[y][0] and mentions[x][1] != mentions[y][1]), None)
        if swap is not None:
            x, y = swap
            changed = list(mentions)
            changed[x], changed[y] = (mentions[y][0], mentions[x][1]), (mentions[x][0], mentions[y][1])
            pairs.append(i)
            true_caps.append(_phrase(mentions, False))
            swapped_caps.append(_phrase(changed, False))
    result["label_binding"] = float(np.mean(wins)) if wins else None
    result["label_binding_pairs"] = len(wins)
    if pairs:
        t = _encode_texts(clip, tokens, true_caps)
        s = _encode_texts(clip, tokens, swapped_caps)
        img = image_emb[pairs]
        result["caption_binding"] = float(((img * t).sum(1) > (img * s).sum(1)).float().mean())
    result["scenes"] = {"single": len(scenes.single), "multi": len(scenes.multi)}
    clip.train(was_training)
    return result


# -- saving ----------------------------------------------------------------------------------

def save_teacher(clip: nn.Module, model_cfg: dict[str, Any], out: str | Path, mean: Sequence[float],
                 std: Sequence[float], fp16: bool, extra: dict[str, Any] | None = None) -> Path:
    """An open_clip folder: `open_clip_config.json` (model_cfg, preprocess_cfg) and safetensors weights."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, value in clip.state_dict().items():
        value = value.detach().cpu()
        if fp16 and value.is_floating_point():
            value = value.half()
        state[name] = value.contiguous()
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / WEIGHTS_FILE).chmod(0o644)  # safetensors writes owner-only; the file is meant to be shipped
    image_size = model_cfg["vision_cfg"]["image_size"]
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": list(mean), "std": list(std), "size": image_size,
                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    config.update(extra or {})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


# -- the run ---------------------------------------------------------------------------------

def learning_rate(config: Any, step: int) -> float:
    """Linear warm-up, then cosine to zero (`config`: lr, warmup_steps and steps; the backbone's too)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _say(message: str) -> None:
    print(message, flush=True)  # flushed, so a log redirected to a file follows the run


def run_pretrain(config: PretrainConfig, log: Callable[[str], None] = _say) -> Path:
    """Train the teacher, save it as an open_clip folder at `config.out` with its zero-shot numbers; return it."""
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.monotonic()
    torch.manual_seed(config.seed)
    world = config.world_spec()
    model_cfg = model_config(config.preset, config.image_size)
    clip = open_clip.CLIP(**model_cfg)
    if config.init_from:
        from mkt_core.model.config import VLPConfig
        from mkt_core.model.vlp import load_vlp

        start = load_vlp(VLPConfig(model_name=config.preset, pretrained=config.init_from))
        if start.model_cfg != model_cfg:
            raise ValueError(f"{config.init_from} is not a {config.preset!r} teacher at {config.image_size} px")
        clip.load_state_dict(start.clip.state_dict(), strict=True)
    clip.train()
    mean, std = CLIP_MEAN, CLIP_STD
    tokens = _Tokens(int(model_cfg["text_cfg"]["context_length"]))
    source = _distillation_source(config, clip, model_cfg) if config.distill_from else None
    optimizer = torch.optim.AdamW(_param_groups(clip, config.weight_decay), lr=config.lr, betas=(0.9, 0.98), eps=1e-6)

    pool = _pool(config, world, log)
    index = {(c, s): j for j, (c, s) in enumerate((c, s) for c in world.colours for s in world.shapes)}
    present = [{(o.colour, o.shape) for o in objs} for objs in pool.objects]
    scene_hot = _multi_hot([sorted(p) for p in present], index)  # [pool, C]
    quick_eval = eval_scenes(world, min(300, config.eval_scenes)) if config.eval_every else None
    order_gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(pool), generator=order_gen)
    cursor, history = 0, []
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "pretrain_log.jsonl").open("w", encoding="utf-8")
    train_started = time.monotonic()
    for step in range(config.steps):
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(pool), generator=order_gen), 0
        idx = order[cursor:cursor + config.batch_size].tolist()
        cursor += config.batch_size
        rng = np.random.default_rng([config.seed, 7, step])
        images = to_input(pool.images[idx], mean, std)
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        images[flip] = images[flip].flip(-1)  # a mirrored arrow or moon is still an arrow or moon
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        if source is not None:
            with torch.no_grad():
                target = source.encode_image(images, normalize=True)
            loss = (1 - (clip.encode_image(images, normalize=True) * target).sum(dim=-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _log_step(config, step, loss, clip, train_started, quick_eval, world, mean, std, history, log_file, log)
            continue
        mentions, negatives = [], []
        for i in idx:
            named = sample_mentions(pool.objects[i], rng, config.partial_captions)
            mentions.append(named)
            if config.hard_negatives:
                negatives.append(hard_negative(named, present[i], world, rng))
        texts = [TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(_phrase(m, rng.random() < config.plain_article))
                 for m in mentions + negatives]
        text_hot = _multi_hot(mentions + negatives, index)  # [T, C]
        true_of = (text_hot @ (1 - scene_hot[idx]).T) == 0  # [T, B]: every named object is in the scene

        image_emb = clip.encode_image(images, normalize=True)
        text_emb = clip.encode_text(tokens(texts), normalize=True)
        loss = contrastive_loss(image_emb, text_emb, clip.logit_scale, true_of)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))

        _log_step(config, step, loss, clip, train_started, quick_eval, world, mean, std, history, log_file, log)
    log_file.close()
    train_minutes = (time.monotonic() - train_started) / 60

    clip.eval()
    extra = {"mkt_teacher": {"world": world.to_dict(), "pretrain": config.to_dict(),
                             "prompt_template": PROMPT_TEMPLATE}}
    folder = save_teacher(clip, model_cfg, out, mean, std, config.save_fp16, extra)
    # The numbers are measured on the saved folder, loaded the way MKT loads it.
    from mkt_core.model.config import VLPConfig
    from mkt_core.model.vlp import load_vlp

    vlp = load_vlp(VLPConfig(model_name=config.preset, pretrained=str(folder)))
    result = evaluate_teacher(vlp.clip, world, eval_scenes(world, config.eval_scenes), vlp.mean, vlp.std)
    result.update({"train_minutes": round(train_minutes, 2),
                   "total_minutes": round((time.monotonic() - started) / 60, 2),
                   "threads": torch.get_num_threads(), "config": config.to_dict(),
                   "eval_seed": EVAL_SEED, "template": PROMPT_TEMPLATE,
                   "weights_bytes": (folder / WEIGHTS_FILE).stat().st_size})
    (folder / EVAL_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(json.dumps(_short(result)))
    return folder


def _log_step(config: PretrainConfig, step: int, loss: torch.Tensor, clip: nn.Module, train_started: float,
              quick_eval: EvalScenes | None, world: WorldSpec, mean, std, history: list, log_file,
              log: Callable[[str], None]) -> None:
    """Every `log_every` steps: a line of the run's log, with a quick evaluation every `eval_every`."""
    done = step + 1
    if done % config.log_every and done != config.steps:
        return
    elapsed = time.monotonic() - train_started
    record = {"step": done, "loss": round(loss.item(), 4), "lr": learning_rate(config, step),
              "scale": round(clip.logit_scale.exp().item(), 2), "minutes": round(elapsed / 60, 2),
              "img_per_s": round(done * config.batch_size / elapsed, 1)}
    if quick_eval is not None and config.eval_every and (done % config.eval_every == 0):
        record["eval"] = _short(evaluate_teacher(clip, world, quick_eval, mean, std))
    history.append(record)
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    log(json.dumps(record))


def _distillation_source(config: PretrainConfig, clip: nn.Module, model_cfg: dict[str, Any]) -> nn.Module:
    """The teacher to distil the image tower from; its text tower (and temperature) copied into `clip` and
    frozen, so that only the image tower trains and the two towers stay in one joint space."""
    from mkt_core.model.config import VLPConfig
    from mkt_core.model.vlp import load_vlp

    source = load_vlp(VLPConfig(model_name="source", pretrained=config.distill_from)).clip.eval()
    if source.text_projection.shape[-1] != model_cfg["embed_dim"]:
        raise ValueError(f"{config.distill_from}: its joint space is {source.text_projection.shape[-1]}-d, "
                         f"preset {config.preset!r} wants {model_cfg['embed_dim']}")
    text = {k: v for k, v in source.state_dict().items() if not k.startswith("visual.")}
    missing, unexpected = clip.load_state_dict(text, strict=False)
    if unexpected or any(not k.startswith("visual.") for k in missing):
        raise ValueError(f"{config.distill_from}: its text tower does not fit preset {config.preset!r}")
    for name, param in clip.named_parameters():
        param.requires_grad_(name.startswith("visual."))
    source.requires_grad_(False)
    return source


def _short(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("single_top1", "single_shape_top1", "map", "map_seen", "map_unseen-category", "map_unseen-composition",
            "label_binding", "caption_binding")
    return {k: round(result[k], 3) for k in keys if result.get(k) is not None}


# -- command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `mkt-train pretrain-vlp`: one per PretrainConfig field (world excepted)."""
    defaults = PretrainConfig()
    for f in dataclasses.fields(PretrainConfig):
        if f.name == "world":
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, type=parse_bool, default=default, metavar="BOOL",
                                help=f"(default: {default})")
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=f"(default: {default})")
    parser.add_argument("--world", dest="world", default=None,
                        help="JSON object of WorldSpec fields, e.g. '{\"max_objects\": 2}' (default: standard world)")


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig) if f.name != "world"}
    values["world"] = json.loads(args.world) if args.world else {}
    return PretrainConfig(**values)


def cli_pretrain_vlp(argv: Sequence[str] | None = None) -> int:
    """`mkt-train pretrain-vlp [flags]`: train the toy teacher and print where it went."""
    parser = argparse.ArgumentParser(prog="mkt-train pretrain-vlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    folder = run_pretrain(config_from_args(args))
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_pretrain_vlp())
