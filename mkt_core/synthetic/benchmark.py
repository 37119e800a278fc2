"""The proving ground's ablation table: MKT on the synthetic world with the shipped toy teacher.

`mkt-train toy-benchmark` writes the world's train and test sets as a generic dataset (PNG files, an
annotation CSV, a label file), trains every row with the project's own `Trainer` exactly as a NUS-WIDE
run would be trained, and scores the test set with the model's own `score`. Rows:

    vlp_zero_shot             the teacher alone (CLIP zero-shot with MKT's prompt), no training
    mkt_no_distill_no_prompt  stage 1 with lambda = 0
    mkt_distill               stage 1 with lambda = 1
    mkt_prompt                stage 1 with lambda = 0, then stage 2
    mkt_full                  stage 1 with lambda = 1, then stage 2
    mkt_local_only            mkt_full with the local stream alone
    mkt_global_only           mkt_full with the global stream alone

The budget is the same for every row: one stage-1 run of `stage1_steps` (same seed, same data order),
plus `stage2_steps` of prompt tuning for the rows that have it. Four stage-1 runs are needed; they
run as separate processes, `jobs` at a time, each on `threads` CPU threads.

Each unseen kind is also scored alone: ZSL ranks that kind's labels only, GZSL ranks the seen labels
with that kind's. (A label's AP does not depend on the other labels ranked with it, so a kind's mAP is
the same in both; F1@K is not.)
"""

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mkt_core.model.config import TOY_TEACHER
from mkt_core.synthetic.world import (
    SEEN,
    UNSEEN_CATEGORY,
    UNSEEN_COMPOSITION,
    WorldSpec,
    mkt_test_set,
    mkt_train_set,
    write_multilabel_set,
)
from mkt_core.train.metrics import evaluate as metric_table

ROWS = ("vlp_zero_shot", "mkt_no_distill_no_prompt", "mkt_distill", "mkt_prompt", "mkt_full",
        "mkt_local_only", "mkt_global_only")
UNSEEN_KINDS = (UNSEEN_CATEGORY, UNSEEN_COMPOSITION)
KS = (3, 5)


@dataclass
class BenchmarkConfig:
    """One benchmark run; `quick` picks the CI-sized defaults."""

    out: str = "runs/toy-benchmark"
    teacher: str = str(TOY_TEACHER)
    train_images: int = 25600
    test_images: int = 2000
    stage1_steps: int = 1200
    stage2_steps: int = 300
    batch_size: int = 64
    stage1_lr: float = 1e-3  # the paper's stage-1 learning rate
    # The released code's schedule (warm-up, then cosine to the last step): short runs end better decayed.
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 0.2
    # The paper's 3e-5 moves the context vectors too little in a few hundred steps; CoOp uses 2e-3.
    stage2_lr: float = 1e-3
    distill_weight: float = 1.0
    # The measured table (docs/proving-ground.md) distilled over every image, those showing only unseen
    # things included; the release (and the model default) distils only images with a seen positive.
    distill_images: str = "all"
    top_k: int | None = None  # None: the toy preset's (6 of 64 patches, the paper's ratio)
    crop_scale: float = 1.0  # a crop may cut an object out and make its label false: flips only
    seed: int = 0
    jobs: int = 2  # stage-1 runs in parallel (processes)
    threads: int = 1  # torch threads per process
    quick: bool = False

    @classmethod
    def quick_defaults(cls, **changes: Any) -> "BenchmarkConfig":
        base = cls(train_images=2560, test_images=500, stage1_steps=80, stage2_steps=24, quick=True)
        return dataclasses.replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- data -------------------------------------------------------------------------------------

def write_world_data(config: BenchmarkConfig, world: WorldSpec) -> dict[str, Path]:
    """The world's train and test sets as a generic dataset; written once per output folder and seed."""
    root = Path(config.out) / "data"
    stamp = root / "done.json"
    wanted = {"train_images": config.train_images, "test_images": config.test_images, "seed": config.seed,
              "world": world.to_dict()}
    paths = {"train": root / "train" / "annotations.csv", "test": root / "test" / "annotations.csv",
             "labels": root / "test" / "labels.tsv"}
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return paths
    write_multilabel_set(mkt_train_set(config.train_images, config.seed, world), root / "train")
    write_multilabel_set(mkt_test_set(config.test_images, config.seed, world), root / "test")
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


def chance_levels(targets: np.ndarray, kinds: list[str]) -> dict[str, float]:
    """The mAP a random ranking gets (about each label's share of positive images), per group of labels."""
    share = (targets == 1).mean(axis=0)
    groups = {"seen": [SEEN], "unseen": list(UNSEEN_KINDS), **{kind: [kind] for kind in UNSEEN_KINDS}}
    return {f"map_{name}": float(np.mean([share[j] for j, k in enumerate(kinds) if k in members]))
            for name, members in groups.items()}


@torch.no_grad()
def test_scores(model, split, teacher_only: bool = False, batch_size: int = 250) -> np.ndarray:
    """Scores `[images, labels]` of the test split: the model's own, or the teacher's zero-shot cosine."""
    from mkt_core.data import collate_skipping_bad

    model.eval()
    label_emb = model.encode_labels(split.labels)
    loader = DataLoader(split.dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skipping_bad)
    out = []
    for images, _, _, bad in loader:
        if bad:
            raise ValueError(f"{split.name}: test images {bad} could not be read")
        if teacher_only:
            image_emb = torch.nn.functional.normalize(model.teacher_features(images), dim=-1)
            out.append(image_emb @ label_emb.t())
        else:
            global_emb, local_emb = model.encode_image(images)
            out.append(model.score(label_emb, global_emb, local_emb))
    return torch.cat(out).float().numpy()


def _test_split(model, data: dict[str, Path]):
    from mkt_core.data import load_generic
    from mkt_core.data.transforms import eval_transform

    mc = model.config
    return load_generic(data["test"], data["labels"], eval_transform(mc.image_size, mc.mean, mc.std, mc.eval_resize),
                        split="test", strict=True)


def _kinds(split, world: WorldSpec) -> tuple[np.ndarray, list[str]]:
    targets = np.asarray(split.dataset.targets)
    return targets, [world.label_kind(label) for label in split.labels]


# -- training rows --------------------------------------------------------------------------------

# stage-1 run -> (row after stage 1 or None, row after stage 2, model overrides)
CHAINS: dict[str, tuple[str | None, str, dict[str, Any]]] = {
    "no_distill": ("mkt_no_distill_no_prompt", "mkt_prompt", {"distill_weight": 0.0}),
    "distill": ("mkt_distill", "mkt_full", {}),
    "local": (None, "mkt_local_only", {"streams": "local"}),
    "global": (None, "mkt_global_only", {"streams": "global"}),
}


def _train_config(config: BenchmarkConfig, data: dict[str, Path], run: str, stage: int, **changes: Any):
    from mkt_core.train.config import TrainConfig

    stage1 = stage == 1
    return TrainConfig(
        preset="toy", vlp_pretrained=config.teacher, dataset="generic",
        annotations=str(data["train"]), test_annotations=str(data["test"]), label_file=str(data["labels"]),
        strict=True, workers=0, crop_scale=config.crop_scale, epochs=10**6, batch_size=config.batch_size,
        schedule=config.schedule, warmup_epochs=config.warmup_epochs,
        lr=config.stage1_lr if stage1 else config.stage2_lr, max_steps=config.stage1_steps if stage1
        else config.stage2_steps, eval_every=0, seed=config.seed, device="cpu", top_k=config.top_k,
        out=str(Path(config.out) / "runs" / f"{run}-stage{stage}"), log_every=20, progress=False, **changes)


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


def run_chain(config: BenchmarkConfig, data: dict[str, Path], run: str) -> dict[str, Any]:
    """Stage 1 (and the row it makes), then stage 2 (and its row); in a process of its own."""
    from mkt_core.model.checkpoint import load_model

    torch.set_num_threads(config.threads)
    world = WorldSpec()
    stage1_row, stage2_row, overrides = CHAINS[run]
    overrides = {"distill_weight": config.distill_weight, "distill_images": config.distill_images, **overrides}
    stage1_config = _train_config(config, data, run, 1, **overrides)
    checkpoint1 = train_stage(stage1_config, 1)
    stage2_config = _train_config(config, data, run, 2, init=str(checkpoint1))
    checkpoint2 = train_stage(stage2_config, 2)
    seconds1 = train_seconds(Path(stage1_config.out))
    seconds2 = round(seconds1 + train_seconds(Path(stage2_config.out)), 1)
    rows: dict[str, Any] = {}
    for name, checkpoint, seconds in ((stage1_row, checkpoint1, seconds1), (stage2_row, checkpoint2, seconds2)):
        if name is None:
            continue
        model = load_model(checkpoint)
        split = _test_split(model, data)
        targets, kinds = _kinds(split, world)
        rows[name] = {**score_table(test_scores(model, split), targets, kinds), "checkpoint": str(checkpoint),
                      "train_seconds": seconds}
    return rows


def zero_shot_row(config: BenchmarkConfig, data: dict[str, Path]) -> tuple[dict[str, Any], dict[str, float]]:
    """The teacher's own row, and the chance levels of the test set."""
    from mkt_core.model.mkt import create_model

    model = create_model("toy", vlp=_vlp_config(config))
    split = _test_split(model, data)
    targets, kinds = _kinds(split, WorldSpec())
    return score_table(test_scores(model, split, teacher_only=True), targets, kinds), chance_levels(targets, kinds)


def _vlp_config(config: BenchmarkConfig):
    from mkt_core.model.config import get_preset

    vlp = get_preset("toy").vlp
    vlp.pretrained = config.teacher
    return vlp


def _teacher_facts(teacher: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"path": teacher}
    eval_file = Path(teacher) / "teacher_eval.json"
    if eval_file.is_file():
        saved = json.loads(eval_file.read_text(encoding="utf-8"))
        facts.update({k: v for k, v in saved.items() if k != "config"})
        facts["pretrain_config"] = saved.get("config")
    return facts


# -- the whole table --------------------------------------------------------------------------------

def run_benchmark(config: BenchmarkConfig, log=lambda message: print(message, flush=True)) -> dict[str, Any]:
    started = time.perf_counter()
    torch.set_num_threads(config.threads * config.jobs)
    world = WorldSpec()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = write_world_data(config, world)
    log(f"data: {config.train_images} train / {config.test_images} test scenes in {out / 'data'} "
        f"({time.perf_counter() - started:.0f} s)")
    zero_shot, chance = zero_shot_row(config, data)
    rows: dict[str, Any] = {"vlp_zero_shot": zero_shot}
    spawn = torch.multiprocessing.get_context("spawn")  # each worker sets its own thread count
    with ProcessPoolExecutor(max_workers=config.jobs, mp_context=spawn) as pool:
        futures = {run: pool.submit(run_chain, config, data, run) for run in CHAINS}
        for run, future in futures.items():
            rows.update(future.result())
            log(f"{run}: done ({time.perf_counter() - started:.0f} s)")
    results = {
        "rows": {name: rows[name] for name in ROWS},
        "chance": chance,
        "teacher": _teacher_facts(config.teacher),
        "config": {**config.to_dict(), "world": world.to_dict(), "labels": {
            "seen": len(world.seen_labels), UNSEEN_CATEGORY: len(world.unseen_category_labels),
            UNSEEN_COMPOSITION: len(world.unseen_composition_labels)}},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "results.md").write_text(results_markdown(results), encoding="utf-8")
    return results


def results_markdown(results: dict[str, Any]) -> str:
    """The table in percentages, the paper's layout: ZSL and GZSL x mAP, F1@3, F1@5 (and seen-label mAP)."""
    columns = ["map", *[f"f1@{k}" for k in KS]]

    def cells(part: dict[str, float]) -> list[str]:
        return [f"{100 * part[c]:.1f}" for c in columns]

    def block(title: str, pick, with_seen: bool = False) -> list[str]:
        head = ["row", *[f"ZSL {c}" for c in columns], *[f"GZSL {c}" for c in columns]]
        head += ["seen map"] if with_seen else []
        lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in results["rows"].items():
            part = pick(row)
            seen = [f"{100 * row['seen']['map']:.1f}"] if with_seen else []
            lines.append("| " + " | ".join([name, *cells(part["zsl"]), *cells(part["gzsl"]), *seen]) + " |")
        return lines + [""]

    config, chance = results["config"], results["chance"]
    lines = [f"## MKT on the synthetic world ({'quick' if config['quick'] else 'full'} run)", "",
             ", ".join(f"{n} {kind}" for kind, n in config["labels"].items()) + " labels; "
             f"{config['train_images']} training and {config['test_images']} test "
             f"scenes; stage 1 {config['stage1_steps']} steps, stage 2 {config['stage2_steps']} steps, batch "
             f"{config['batch_size']}; {results['seconds']:.0f} s. Metrics in %. Chance mAP: "
             + ", ".join(f"{k[4:]} {100 * v:.1f}" for k, v in chance.items()) + ".", ""]
    lines += block("All unseen labels", lambda row: row, with_seen=True)
    for kind in UNSEEN_KINDS:
        lines += block(f"Unseen kind: {kind}", lambda row, kind=kind: row["by_kind"][kind])
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder: data/, runs/, results.json, results.md")
    parser.add_argument("--quick", action="store_true", help="the CI-sized run (about 4 minutes on 2 cores)")
    for field in dataclasses.fields(BenchmarkConfig):
        if field.name in ("out", "quick"):
            continue
        kind = int if field.name == "top_k" else field.type  # the others are plain int, float or str
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind, default=None,
                            help=f"default: {field.default} (full run)")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchmarkConfig)
               if f.name not in ("out", "quick") and getattr(args, f.name) is not None}
    changes["out"] = args.out
    return BenchmarkConfig.quick_defaults(**changes) if args.quick else BenchmarkConfig(**changes)
