"""The proving ground's table: each of the paper's claims as the paper states it, on the synthetic world.

`mkt-train toy-benchmark` writes the world's train and test sets as a generic dataset (PNG files, an
annotation CSV, a label file), trains every row with the project's own `Trainer` exactly as a NUS-WIDE
run would be trained, and scores the test set with the model's own `score` (Eq. 3). The teacher is the
toy ViT CLIP (`assets/toy-vit-teacher`), whose image tower has a patch grid. Rows (`rows(config)`):

    vlp_zero_shot            the teacher alone, global embedding (the app's CLIP bundle without patches)
    vlp_two_stream           the teacher's patch tokens through its own projection as the local stream (Eq. 3)
    vlp_two_stream_value     the same with MaskCLIP's value path in the last block (the app's default)
    clip_ft                  the teacher's tower fine-tuned with the ranking loss, global stream only (Table 1)
    mkt_*                    the paper's variant (Tables 2 and 4): the `toy` student started from a backbone
                             pretrained on the world's images without MKT's labels (`backbone.py`)
    mkt_full_random_start    mkt_full from random weights (the first edition's student)
    release_*                the release variant: the student is a copy of the teacher's tower, one shared
                             projection, only the last blocks train
    sweep_lambda_*, sweep_k_*  Fig. 5a and 5b on `sweep_variant`, one seed

Every row has the same data and budget (`stage1_steps`, plus `stage2_steps` of prompt tuning where the
row has it). A unit is one (row, seed); each writes `units/<row>/seed-<s>.json` when it finishes, and a
rerun skips finished units (and reuses finished training stages), so the table can be built over
several sittings. `results.json` gives each row's mean and standard deviation over its seeds.

Each unseen kind is also scored alone: ZSL ranks that kind's labels only, GZSL ranks the seen labels
with that kind's. Pointing: how often a label's highest patch falls on its object (`pointing.py`).
"""

import argparse
import dataclasses
import functools
import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mkt_core.assets import TOY_VIT_TEACHER
from mkt_core.model.config import get_preset
from mkt_core.synthetic.pointing import pointing_accuracy, test_objects
from mkt_core.synthetic.world import (
    SEEN,
    UNSEEN_CATEGORY,
    UNSEEN_COMPOSITION,
    WorldSpec,
    mkt_test_set,
    mkt_train_set,
    write_multilabel_set,
)
from mkt_core.train.config import parse_bool
from mkt_core.train.metrics import evaluate as metric_table

UNSEEN_KINDS = (UNSEEN_CATEGORY, UNSEEN_COMPOSITION)
KS = (3, 5)
VARIANTS = ("teacher", "paper", "paper_random", "release")
PRESETS = {"paper": "toy", "paper_random": "toy", "release": "toy-release"}  # the model preset of each variant
LAMBDAS = (0.0, 0.5, 1.0, 2.0, 5.0)
TOP_KS = (1, 3, 6, 12, 32, 64)


@dataclass(frozen=True)
class Row:
    """One row of the table: which model, which stream(s), which loss, whether stage 2 runs."""

    name: str
    variant: str  # one of VARIANTS
    distill: float = 0.0  # lambda of stage 1
    prompt: bool = False  # stage 2 (prompt tuning) after stage 1
    streams: str = "both"
    top_k: int | None = None  # None: the config's (the preset's when that is None too)
    patch_path: str | None = None  # teacher rows: None global only, else ClipTwoStreamGraph's patch path
    claim: bool = True  # a trained row that tests a claim: every seed; otherwise the first seed only

    def stage1_name(self, seed: int) -> str:
        """The stage-1 run folder: rows that train the same stage 1 share it."""
        k = "default" if self.top_k is None else str(self.top_k)
        return f"{self.variant}-lambda{self.distill:g}-{self.streams}-k{k}-seed{seed}"


def rows(config: "BenchmarkConfig") -> list[Row]:
    """Every row, in the order they run (the rows that decide claims first)."""
    out = [
        # no training: a seed would change nothing, so one is run
        Row("vlp_zero_shot", "teacher", claim=False),
        Row("vlp_two_stream", "teacher", patch_path="plain", claim=False),
        Row("vlp_two_stream_value", "teacher", patch_path="value", claim=False),
        Row("release_no_distill", "release", 0.0),
        Row("release_distill", "release", 1.0),
        Row("release_full", "release", 1.0, prompt=True),
        Row("clip_ft", "release", 0.0, streams="global"),
        Row("mkt_no_distill_no_prompt", "paper", 0.0),
        Row("mkt_distill", "paper", 1.0),
        Row("mkt_full", "paper", 1.0, prompt=True),
        Row("mkt_prompt", "paper", 0.0, prompt=True),
        Row("mkt_local_only", "paper", 0.0, streams="local"),
        Row("mkt_global_only", "paper", 0.0, streams="global"),
        Row("mkt_full_random_start", "paper_random", 1.0, prompt=True),
    ]
    if config.sweeps:
        variant = config.sweep_variant
        default_k = config.top_k if config.top_k is not None else get_preset(PRESETS[variant]).top_k
        out += [Row(f"sweep_lambda_{lam:g}", variant, lam, claim=False) for lam in LAMBDAS]
        # the default k is named as the other rows name it, so that its point shares their stage 1
        out += [Row(f"sweep_k_{k}", variant, config.distill_weight, top_k=None if k == default_k else k, claim=False)
                for k in TOP_KS]
    return out


@dataclass
class BenchmarkConfig:
    """One benchmark; `quick` picks the CI-sized defaults."""

    out: str = "runs/toy-benchmark"
    teacher: str = str(TOY_VIT_TEACHER)
    train_images: int = 25600
    test_images: int = 2000
    data_seed: int = 0  # the world's train and test sets: the same for every row and seed
    seeds: str = "0,1,2"  # training seeds of the rows that test a claim (sweeps take the first)
    stage1_steps: int = 1200
    stage2_steps: int = 300
    batch_size: int = 64
    stage1_lr: float = 1e-3  # the paper's stage-1 learning rate
    # The released code's schedule (warm-up, then cosine to the last step): short runs end better decayed.
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 0.2
    # The paper's 3e-5 moves the context vectors too little in a few hundred steps; CoOp uses 2e-3.
    stage2_lr: float = 1e-3
    distill_weight: float = 1.0  # lambda of the rows that distil (the lambda sweep excepted)
    # The first edition's table distilled over every image, those showing only unseen things included;
    # the release (and the model default) distils only images with a seen positive.
    distill_images: str = "all"
    top_k: int | None = None  # None: each preset's (6 of 64 patches, the paper's ratio)
    crop_scale: float = 1.0  # a crop may cut an object out and make its label false: flips only
    # The release trains only the last blocks (its fix_layer 10 of 12 blocks, layer decay 0.65); the toy
    # teacher has 4 blocks, so the last two train.
    release_fix_layer: int = 2
    release_layer_decay: float = 0.65
    backbone_steps: int = 1200  # the paper variant's backbone pretraining (attributes, no MKT labels)
    backbone_pool: int = 25600
    sweeps: bool = True
    sweep_variant: str = "release"
    only: str = ""  # comma-separated row names: run only these (default: every row)
    jobs: int = 1  # training chains in parallel (processes)
    threads: int = 1  # torch threads per process
    quick: bool = False

    @classmethod
    def quick_defaults(cls, **changes: Any) -> "BenchmarkConfig":
        base = cls(train_images=2560, test_images=500, stage1_steps=80, stage2_steps=24, backbone_steps=80,
                   backbone_pool=2560, seeds="0", sweeps=False, jobs=2, quick=True)
        return dataclasses.replace(base, **changes)

    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def unit_key(self, row: Row, seed: int) -> str:
        """What a unit's result depends on: a finished unit with another key is run again."""
        ignored = ("out", "seeds", "only", "jobs", "threads", "sweeps", "quick")
        fields = {k: v for k, v in self.to_dict().items() if k not in ignored}
        fields["teacher"] = teacher_digest(self.teacher)  # its weights, not its path: any checkout resumes
        spec = {k: v for k, v in dataclasses.asdict(row).items() if k != "claim"}  # how many seeds: not a result
        text = json.dumps({"config": fields, "row": spec, "seed": seed}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@functools.cache
def teacher_digest(teacher: str) -> str:
    """A short hash of the teacher folder's files (config and weights)."""
    digest = hashlib.sha256()
    for path in sorted(Path(teacher).glob("open_clip_*")):
        digest.update(path.name.encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# -- data -------------------------------------------------------------------------------------

def write_world_data(config: BenchmarkConfig, world: WorldSpec) -> dict[str, Path]:
    """The world's train and test sets as a generic dataset; written once per output folder."""
    root = Path(config.out) / "data"
    stamp = root / "done.json"
    wanted = {"train_images": config.train_images, "test_images": config.test_images, "seed": config.data_seed,
              "world": world.to_dict()}
    paths = {"train": root / "train" / "annotations.csv", "test": root / "test" / "annotations.csv",
             "labels": root / "test" / "labels.tsv"}
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return paths
    write_multilabel_set(mkt_train_set(config.train_images, config.data_seed, world), root / "train")
    write_multilabel_set(mkt_test_set(config.test_images, config.data_seed, world), root / "test")
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return paths


# -- scoring ------------------------------------------------------------------------------------

def score_table(scores: np.ndarray, targets: np.ndarray, kinds: list[str]) -> dict[str, Any]:
    """ZSL (unseen labels only) and GZSL (all) metrics, and the same for each unseen kind alone."""
    seen = [j for j, kind in enumerate(kinds) if kind == SEEN]
    unseen = [j for j, kind in enumerate(kinds) if kind != SEEN]

    def table(columns: list[int]) -> dict[str, float]:
        result = metric_table(scores[:, columns], targets[:, columns], ks=KS)
        return {"map": result["map"], **{f"f1@{k}": result[f"f1@{k}"] for k in KS}}

    by_kind = {}
    for kind in UNSEEN_KINDS:
        columns = [j for j, k in enumerate(kinds) if k == kind]
        if columns:
            by_kind[kind] = {"zsl": table(columns), "gzsl": table(seen + columns)}
    return {"zsl": table(unseen), "gzsl": table(seen + unseen), "seen": table(seen), "by_kind": by_kind}


def pointing_table(top_patch: np.ndarray, objects, kinds: list[str]) -> dict[str, Any]:
    """Pointing accuracy over every labelled object, and by kind of label."""
    out = {"all": pointing_accuracy(top_patch, objects)}
    for kind in (SEEN, *UNSEEN_KINDS):
        out[kind] = pointing_accuracy(top_patch, objects, [j for j, k in enumerate(kinds) if k == kind])
    return out


def chance_levels(targets: np.ndarray, kinds: list[str]) -> dict[str, float]:
    """The mAP a random ranking gets (about each label's share of positive images), per group of labels."""
    share = (targets == 1).mean(axis=0)
    groups = {"seen": [SEEN], "unseen": list(UNSEEN_KINDS), **{kind: [kind] for kind in UNSEEN_KINDS}}
    return {f"map_{name}": float(np.mean([share[j] for j, k in enumerate(kinds) if k in members]))
            for name, members in groups.items()}


@torch.no_grad()
def test_outputs(model, split, patch_path: str | None = None, teacher: bool = False,
                 batch_size: int = 250) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores `[images, labels]` of the test split and each label's highest patch `[images, labels]`.

    `teacher`: the teacher alone, as the app's CLIP bundle scores it: its cosine (global only), or with
    `patch_path` its patch tokens as the local stream of Eq. 3 (`ClipTwoStreamGraph`, MKT's k).
    """
    from mkt_core.data import collate_skipping_bad
    from mkt_core.model.export import ClipImageGraph, ClipTwoStreamGraph
    from mkt_core.model.scoring import two_stream_scores

    model.eval()
    label_emb = model.encode_labels(split.labels)
    graph = None
    if teacher:
        graph = ClipImageGraph(model.vlp.clip) if patch_path is None else ClipTwoStreamGraph(model.vlp.clip,
                                                                                             patch_path)
    loader = DataLoader(split.dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skipping_bad)
    scores, tops = [], []
    for images, _, _, bad in loader:
        if bad:
            raise ValueError(f"{split.name}: test images {bad} could not be read")
        if graph is None:
            global_emb, local_emb = model.encode_image(images)
            scores.append(model.score(label_emb, global_emb, local_emb))
        elif patch_path is None:
            global_emb, local_emb = graph(model.teacher_input(images)), None
            scores.append(global_emb @ label_emb.t())
        else:
            global_emb, local_emb = graph(model.teacher_input(images))
            scores.append(two_stream_scores(label_emb, global_emb, local_emb, model.config.top_k))
        if local_emb is not None:
            tops.append(torch.einsum("bnd,ld->bnl", local_emb.float(), label_emb.float()).argmax(dim=1))
    top = torch.cat(tops).numpy() if tops else None
    return torch.cat(scores).float().numpy(), top


def _test_split(model, data: dict[str, Path]):
    from mkt_core.data import load_generic
    from mkt_core.data.transforms import eval_transform

    mc = model.config
    return load_generic(data["test"], data["labels"], eval_transform(mc.image_size, mc.mean, mc.std, mc.eval_resize),
                        split="test", strict=True)


def score_model(model, data: dict[str, Path], config: BenchmarkConfig, patch_path: str | None = None,
                teacher: bool = False) -> dict[str, Any]:
    """A row's metrics on the test set: score_table, plus pointing where the model has patches."""
    world = WorldSpec()
    split = _test_split(model, data)
    targets = np.asarray(split.dataset.targets)
    kinds = [world.label_kind(label) for label in split.labels]
    scores, top = test_outputs(model, split, patch_path, teacher)
    result = {**score_table(scores, targets, kinds), "chance": chance_levels(targets, kinds), "pointing": None}
    if top is not None:
        grid = _grid(model, teacher)
        objects = test_objects(len(targets), config.data_seed, world, grid, split.labels)
        result["pointing"] = pointing_table(top, objects, kinds)
    return result


def _grid(model, teacher: bool) -> tuple[int, int]:
    if teacher:
        size = model.vlp.model_cfg["vision_cfg"]["image_size"] // model.vlp.model_cfg["vision_cfg"]["patch_size"]
        return (size, size)
    return model.student.grid_size


# -- training ---------------------------------------------------------------------------------------

def _train_config(config: BenchmarkConfig, data: dict[str, Path], row: Row, seed: int, stage: int,
                  init: str | None = None):
    from mkt_core.train.config import TrainConfig

    out = Path(config.out) / "runs" / (row.stage1_name(seed) + ("" if stage == 1 else "-prompt"))
    common = dict(
        vlp_pretrained=config.teacher, dataset="generic", annotations=str(data["train"]),
        test_annotations=str(data["test"]), label_file=str(data["labels"]), strict=True, workers=0,
        crop_scale=config.crop_scale, epochs=10**6, batch_size=config.batch_size, schedule=config.schedule,
        warmup_epochs=config.warmup_epochs, eval_every=0, seed=seed, device="cpu", out=str(out), log_every=20,
        progress=False, init=init)
    if stage == 2:
        return TrainConfig(preset="toy", lr=config.stage2_lr, max_steps=config.stage2_steps, **common)
    model = dict(distill_weight=row.distill, distill_images=config.distill_images, streams=row.streams,
                 top_k=row.top_k if row.top_k is not None else config.top_k)
    if row.variant == "release":
        return TrainConfig(preset="toy-release", lr=config.stage1_lr, max_steps=config.stage1_steps,
                           fix_layer=config.release_fix_layer, layer_decay=config.release_layer_decay,
                           **model, **common)
    return TrainConfig(preset="toy", lr=config.stage1_lr, max_steps=config.stage1_steps, **model, **common)


def train_stage(train_config, stage: int) -> Path:
    """Run one stage and return its last checkpoint; a finished run of the same config is reused and an
    interrupted one resumed, so a rerun of the benchmark only trains what is missing."""
    from mkt_core.model.checkpoint import read_checkpoint_config
    from mkt_core.train.trainer import TRAIN_CONFIG_FILE, Trainer

    last = Path(train_config.out) / "checkpoints" / "last"
    wanted = json.loads(json.dumps(train_config.to_dict()))
    saved = last / TRAIN_CONFIG_FILE
    same = saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) == wanted
    if same and read_checkpoint_config(last)["extra"].get("step") == train_config.max_steps:
        return last
    if not same and (Path(train_config.out) / "metrics.jsonl").is_file():
        (Path(train_config.out) / "metrics.jsonl").unlink()  # another config's log: start afresh
    trainer = Trainer(train_config, stage)
    if same:
        trainer.resume(last)
    if trainer.run()["status"] != "finished":
        raise RuntimeError(f"{train_config.out}: stage {stage} was interrupted; run the benchmark again to resume")
    return last


def train_seconds(run_folder: Path) -> float:
    """Wall time of a stage from its metrics log (also right when the checkpoint was reused)."""
    times = [json.loads(line)["time"] for line in (run_folder / "metrics.jsonl").read_text().splitlines() if line]
    return round(times[-1] - times[0], 1) if times else 0.0


def backbone_dir(config: BenchmarkConfig) -> Path:
    return Path(config.out) / "backbone"


def ensure_backbone(config: BenchmarkConfig, log=print) -> dict[str, Any]:
    """The paper variant's pretrained backbone (trained once, for every seed)."""
    from mkt_core.synthetic.backbone import BackboneConfig, pretrain_backbone

    return pretrain_backbone(BackboneConfig(steps=config.backbone_steps, pool=config.backbone_pool),
                             backbone_dir(config), log)


def paper_start(config: BenchmarkConfig, seed: int, log=print) -> Path:
    """The paper variant's stage-1 start for a seed: the pretrained backbone and heads drawn from the seed."""
    from mkt_core.synthetic.backbone import init_checkpoint

    ensure_backbone(config, log)
    return init_checkpoint(backbone_dir(config), config.teacher, seed, Path(config.out) / "inits" / f"paper-seed{seed}")


def run_unit(config: BenchmarkConfig, data: dict[str, Path], row: Row, seed: int) -> dict[str, Any]:
    """Train what the row needs (reusing finished stages) and score it."""
    from mkt_core.model.checkpoint import load_model
    from mkt_core.model.config import get_preset
    from mkt_core.model.mkt import create_model

    if row.variant == "teacher":
        vlp_model = get_preset("toy")
        vlp_model.vlp.pretrained = config.teacher
        model = create_model(vlp_model)
        if config.top_k is not None:
            model.config = model.config.replace(top_k=config.top_k)
        return {**score_model(model, data, config, row.patch_path, teacher=True), "train_seconds": 0.0}
    init = str(paper_start(config, seed)) if row.variant == "paper" else None
    stage1 = _train_config(config, data, row, seed, 1, init)
    checkpoint = train_stage(stage1, 1)
    seconds = train_seconds(Path(stage1.out))
    if row.prompt:
        stage2 = _train_config(config, data, row, seed, 2, str(checkpoint))
        checkpoint = train_stage(stage2, 2)
        seconds = round(seconds + train_seconds(Path(stage2.out)), 1)
    return {**score_model(load_model(checkpoint), data, config), "checkpoint": str(checkpoint),
            "train_seconds": seconds}


# -- units: one (row, seed) each, written when finished ------------------------------------------------

def unit_file(config: BenchmarkConfig, row: Row, seed: int) -> Path:
    return Path(config.out) / "units" / row.name / f"seed-{seed}.json"


def finished_unit(config: BenchmarkConfig, row: Row, seed: int) -> dict[str, Any] | None:
    """A unit's saved result, if it finished under the current config."""
    path = unit_file(config, row, seed)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    return saved if saved.get("key") == config.unit_key(row, seed) else None


def plan(config: BenchmarkConfig) -> list[tuple[Row, int]]:
    """The units to run, in order: every row's first seed, then the claim rows' other seeds, then the sweeps."""
    wanted = {name.strip() for name in config.only.split(",") if name.strip()}
    chosen = [r for r in rows(config) if not wanted or r.name in wanted]
    unknown = wanted - {r.name for r in rows(config)}
    if unknown:
        raise ValueError(f"unknown rows {sorted(unknown)}; known: {', '.join(r.name for r in rows(config))}")
    seeds = config.seed_list()
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    sweeps = [r for r in chosen if r.name.startswith("sweep_")]
    units = [(r, seeds[0]) for r in chosen if r not in sweeps]
    units += [(r, s) for s in seeds[1:] for r in chosen if r.claim]
    return units + [(r, seeds[0]) for r in sweeps]


def run_chain(config: BenchmarkConfig, data: dict[str, Path], units: list[tuple[Row, int]]) -> list[str]:
    """Units that share training stages, one after another; each result is written as it finishes."""
    torch.set_num_threads(config.threads)
    done = []
    for row, seed in units:
        if finished_unit(config, row, seed) is not None:
            continue
        started = time.perf_counter()
        result = run_unit(config, data, row, seed)
        result.update(row=row.name, seed=seed, key=config.unit_key(row, seed),
                      seconds=round(time.perf_counter() - started, 1))
        path = unit_file(config, row, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
        tmp.replace(path)
        done.append(f"{row.name} seed {seed}")
        print(f"{row.name} seed {seed}: done ({result['seconds']:.0f} s)", flush=True)  # as it lands, from any process
    return done


def _chains(units: list[tuple[Row, int]]) -> list[list[tuple[Row, int]]]:
    """Units grouped by the stage-1 run they share (so two processes never train the same run)."""
    groups: dict[str, list[tuple[Row, int]]] = {}
    for row, seed in units:
        key = row.name if row.variant == "teacher" else row.stage1_name(seed)
        groups.setdefault(key, []).append((row, seed))
    return list(groups.values())


def run_benchmark(config: BenchmarkConfig, train: bool = True,
                  log=lambda message: print(message, flush=True)) -> dict[str, Any]:
    """Run the units not yet finished (unless `train` is False), then gather every finished one."""
    from mkt_core.synthetic.results import gather

    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    world = WorldSpec()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = write_world_data(config, world)
    units = plan(config)
    pending = [(r, s) for r, s in units if finished_unit(config, r, s) is None]
    log(f"data in {out / 'data'}; {len(units) - len(pending)} of {len(units)} units already finished")
    if train and pending:
        if config.jobs > 1:  # made before the chains run in parallel; one process makes them when first needed
            for seed in sorted({s for r, s in pending if r.variant == "paper"}):
                paper_start(config, seed, log)
        chains = _chains(pending)
        if config.jobs <= 1:
            for chain in chains:
                run_chain(config, data, chain)
        else:
            spawn = torch.multiprocessing.get_context("spawn")  # each worker sets its own thread count
            with ProcessPoolExecutor(max_workers=config.jobs, mp_context=spawn) as pool:
                for future in [pool.submit(run_chain, config, data, chain) for chain in chains]:
                    future.result()
        log(f"trained and scored {len(pending)} units in {time.perf_counter() - started:.0f} s")
    finished = {(r.name, s): finished_unit(config, r, s) for r, s in units}
    results = gather(config, [r for r in rows(config) if any(r.name == u.name for u, _ in units)], finished)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    from mkt_core.synthetic.results import results_markdown

    (out / "results.md").write_text(results_markdown(results), encoding="utf-8")
    return results


# -- command line ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder: data/, runs/, units/, results.json, results.md")
    parser.add_argument("--quick", action="store_true", help="the CI-sized run (a few minutes on 2 cores)")
    parser.add_argument("--collect", action="store_true", help="train nothing: gather the finished units only")
    parser.add_argument("--publish", action="store_true",
                        help="also write docs/results/toy-benchmark.json and .md and copy the finished units "
                             "to docs/results/units/")
    for field in dataclasses.fields(BenchmarkConfig):
        if field.name in ("out", "quick"):
            continue
        if field.name == "sweeps":
            kind = parse_bool
        elif field.name == "top_k":
            kind = int
        else:
            kind = {"int": int, "float": float, "str": str}[field.type if isinstance(field.type, str)
                                                            else field.type.__name__]
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind, default=None,
                            help=f"default: {field.default} (full run)")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchmarkConfig)
               if f.name not in ("out", "quick") and getattr(args, f.name) is not None}
    changes["out"] = args.out
    return BenchmarkConfig.quick_defaults(**changes) if args.quick else BenchmarkConfig(**changes)
