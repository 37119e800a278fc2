"""The benchmark's finished units gathered into one table: mean and standard deviation per metric.

`results.json` has the shape `{"rows": {row: {"seeds": [...], "zsl": {"map": {"mean", "sd"}, ...},
"gzsl": ..., "seen": ..., "by_kind": ..., "pointing": ...}}, "teacher": ..., "config": ..., "chance": ...}`,
metrics as fractions in [0, 1]. The standard deviation is the sample one (n - 1); with one seed it is
None, since one run says nothing about the spread. Rows with no finished unit are listed under
`not_run`, never filled in.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mkt_core.synthetic.world import SEEN, UNSEEN_CATEGORY, UNSEEN_COMPOSITION, WorldSpec

METRIC_PARTS = ("zsl", "gzsl", "seen", "by_kind", "pointing", "train_seconds")
UNSEEN_KINDS = (UNSEEN_CATEGORY, UNSEEN_COMPOSITION)
REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "docs" / "results"


def mean_sd(values: list[float]) -> dict[str, float | None]:
    """{"mean", "sd"} of one metric over seeds (sd None for a single seed)."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else None}


def summarise(parts: list[Any]) -> Any:
    """The same tree of metrics from each seed -> one tree with {"mean", "sd"} at every number."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: summarise([p[key] for p in parts]) for key in first}
    if first is None or any(p is None for p in parts):
        return None
    return mean_sd([float(p) for p in parts])


def teacher_facts(teacher: str) -> dict[str, Any]:
    """The teacher's path and its own zero-shot numbers (`teacher_eval.json`, written by pretrain-vlp)."""
    facts: dict[str, Any] = {"path": teacher}
    eval_file = Path(teacher) / "teacher_eval.json"
    if eval_file.is_file():
        saved = json.loads(eval_file.read_text(encoding="utf-8"))
        facts.update({k: v for k, v in saved.items() if k != "config"})
        facts["pretrain_config"] = saved.get("config")
    return facts


def gather(config, rows: list, finished: dict[tuple[str, int], dict[str, Any] | None]) -> dict[str, Any]:
    """The results of every row with at least one finished unit; the others named in `not_run`."""
    table, not_run, chance = {}, [], None
    for row in rows:
        units = sorted(((seed, result) for (name, seed), result in finished.items()
                        if name == row.name and result is not None), key=lambda item: item[0])
        if not units:
            not_run.append(row.name)
            continue
        results = [result for _, result in units]
        chance = chance or results[0].get("chance")
        table[row.name] = {"seeds": [seed for seed, _ in units], "variant": row.variant, "claim": row.claim,
                           **{part: summarise([r[part] for r in results]) for part in METRIC_PARTS}}
    world = WorldSpec()
    return {
        "rows": table,
        "not_run": not_run,
        "release_goal": release_goal(table),
        "chance": chance,
        "teacher": teacher_facts(config.teacher),
        "config": {**config.to_dict(), "world": world.to_dict(), "labels": {
            "seen": len(world.seen_labels), UNSEEN_CATEGORY: len(world.unseen_category_labels),
            UNSEEN_COMPOSITION: len(world.unseen_composition_labels)}},
    }


def release_goal(table: dict[str, Any], row: str = "release_full") -> dict[str, Any] | None:
    """The release variant's goal: MKT trained from the teacher beats the teacher's own zero-shot on GZSL
    mAP and keeps at least 90 % of its ZSL mAP on unseen categories (means over the seeds run)."""
    if row not in table or "vlp_zero_shot" not in table:
        return None
    mkt, teacher = table[row], table["vlp_zero_shot"]
    gzsl = (mkt["gzsl"]["map"]["mean"], teacher["gzsl"]["map"]["mean"])
    category = (mkt["by_kind"][UNSEEN_CATEGORY]["zsl"]["map"]["mean"],
                teacher["by_kind"][UNSEEN_CATEGORY]["zsl"]["map"]["mean"])
    kept = category[0] / category[1] if category[1] else None
    gzsl_met, category_met = gzsl[0] > gzsl[1], kept is not None and kept >= 0.9
    return {"row": row, "seeds": mkt["seeds"],
            "gzsl_map": {"mkt": gzsl[0], "teacher": gzsl[1], "met": gzsl_met},
            "unseen_category_zsl_map": {"mkt": category[0], "teacher": category[1], "kept": kept,
                                        "met": category_met},
            "met": gzsl_met and category_met}


def _cell(metric: dict[str, float | None] | None, scale: float = 100.0) -> str:
    if metric is None:
        return "–"
    if metric["sd"] is None:
        return f"{scale * metric['mean']:.1f}"
    return f"{scale * metric['mean']:.1f} ± {scale * metric['sd']:.1f}"


def results_markdown(results: dict[str, Any]) -> str:
    """The table in percentages (mean ± sd over the seeds; a lone seed has no sd)."""
    config, chance = results["config"], results["chance"] or {}
    lines = [f"## MKT on the synthetic world ({'quick' if config['quick'] else 'full'} run)", "",
             ", ".join(f"{n} {kind}" for kind, n in config["labels"].items()) + " labels; "
             f"{config['train_images']} training and {config['test_images']} test scenes; stage 1 "
             f"{config['stage1_steps']} steps, stage 2 {config['stage2_steps']} steps, batch {config['batch_size']}. "
             "Metrics in %, mean ± sd over the seeds (n = the seeds run). Chance mAP: "
             + ", ".join(f"{k[4:]} {100 * v:.1f}" for k, v in chance.items()) + ".", ""]
    head = ["row", "n", "ZSL map", "ZSL f1@3", "ZSL f1@5", "GZSL map", "GZSL f1@3", "GZSL f1@5", "seen map",
            "pointing", "random patch"]
    lines += ["### All unseen labels", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["rows"].items():
        point = (row["pointing"] or {}).get("all") or {}
        cells = [name, str(len(row["seeds"])), *[_cell(row["zsl"][m]) for m in ("map", "f1@3", "f1@5")],
                 *[_cell(row["gzsl"][m]) for m in ("map", "f1@3", "f1@5")], _cell(row["seen"]["map"]),
                 _cell(point.get("accuracy")), _cell(point.get("random"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    head = ["row", *[f"{kind} {part}" for kind in UNSEEN_KINDS for part in ("ZSL map", "GZSL map", "pointing")],
            "seen pointing"]
    lines += ["### By kind of unseen label", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["rows"].items():
        point = row["pointing"] or {}
        cells = [name]
        for kind in UNSEEN_KINDS:
            part = row["by_kind"].get(kind, {})
            cells += [_cell(part.get("zsl", {}).get("map")), _cell(part.get("gzsl", {}).get("map")),
                      _cell((point.get(kind) or {}).get("accuracy"))]
        cells.append(_cell((point.get(SEEN) or {}).get("accuracy")))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    goal = results.get("release_goal")
    if goal:
        g, c = goal["gzsl_map"], goal["unseen_category_zsl_map"]
        lines += [f"Release goal ({goal['row']}, seeds {goal['seeds']}): GZSL mAP {100 * g['mkt']:.1f} against the "
                  f"teacher's {100 * g['teacher']:.1f} ({'met' if g['met'] else 'not met'}); unseen-category ZSL mAP "
                  f"{100 * c['mkt']:.1f} against {100 * c['teacher']:.1f}, "
                  + (f"{100 * c['kept']:.0f} % kept" if c["kept"] is not None else "teacher at 0")
                  + f" ({'met' if c['met'] else 'not met'}: 90 % needed). "
                  f"Goal {'met' if goal['met'] else 'not met'}.", ""]
    if results["not_run"]:
        lines += ["Not run yet: " + ", ".join(results["not_run"]) + ".", ""]
    return "\n".join(lines)


def publish(results: dict[str, Any], units_dir: Path, target: Path = PUBLISHED) -> list[Path]:
    """Write `toy-benchmark.json` / `.md` under docs/results and copy the finished units beside them."""
    target.mkdir(parents=True, exist_ok=True)
    written = [target / "toy-benchmark.json", target / "toy-benchmark.md"]
    written[0].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    written[1].write_text(results_markdown(results), encoding="utf-8")
    shutil.rmtree(target / "units", ignore_errors=True)  # a mirror: units no longer finished go too
    for path in sorted(Path(units_dir).glob("*/seed-*.json")):
        copy = target / "units" / path.parent.name / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        written.append(copy)
    return written
