"""ZSL / GZSL evaluation (the paper's protocol) and its JSON and Markdown tables.

ZSL ranks the unseen labels only; GZSL ranks seen and unseen together. Each reports mAP
(a label without a positive counts as AP 0, as the NUS-WIDE reference does) and micro
precision / recall / F1 at top-K. The Open Images protocol is BiAM's
(`mkt_core.train.metrics.open_images_metrics`): per setting, only images with a positive;
GZSL mAP over annotated labels; and WmAP, the number the paper's Table 1 reports.
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mkt_core.data import MultiLabelSplit, collate_skipping_bad
from mkt_core.model.mkt import MKT
from mkt_core.train.metrics import evaluate as metric_table
from mkt_core.train.metrics import open_images_metrics

PROTOCOLS = ("nus-wide", "open-images")


@torch.no_grad()
def evaluate_split(model: MKT, split: MultiLabelSplit, batch_size: int, ks: list[int], device: torch.device,
                   protocol: str = "nus-wide", workers: int = 0) -> dict[str, Any]:
    """Scores batch by batch (local embeddings of a whole test set would not fit in memory), then metrics.

    protocol "nus-wide": every image, mAP over every label of the setting (MKT's NUS-WIDE test);
    "open-images": BiAM's evaluate_openimages.py (`open_images_metrics`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    model.eval()
    label_emb = model.encode_labels(split.labels)
    settings = {"gzsl": list(range(len(split.labels)))}
    if split.unseen:
        settings = {"zsl": list(split.unseen), **settings}
    loader = DataLoader(split.dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_skipping_bad)
    scores: dict[str, list[torch.Tensor]] = {setting: [] for setting in settings}
    targets, skipped = [], []
    for images, batch_targets, _, bad in loader:
        skipped.extend(bad)
        if images.shape[0] == 0:
            continue
        global_emb, local_emb = model.encode_image(images.to(device))
        for setting, columns in settings.items():
            scores[setting].append(model.score(label_emb[columns], global_emb, local_emb).float().cpu())
        targets.append(batch_targets)
    if not targets:
        raise ValueError(f"{split.name}: no readable image to evaluate")
    all_targets = torch.cat(targets).numpy()
    results: dict[str, Any] = {"images": int(all_targets.shape[0]), "skipped_images": len(skipped),
                               "missing_images": len(split.dataset.missing),
                               "labels": len(split.labels), "unseen_labels": len(split.unseen)}
    all_scores = {setting: torch.cat(parts).numpy() for setting, parts in scores.items()}
    if protocol == "open-images":
        if not split.unseen:
            raise ValueError(f"{split.name}: the Open Images protocol needs unseen labels (the test split)")
        # the unseen labels' own ranking (ZSL) is kept: in the release's score mode it differs from
        # the unseen columns of the GZSL ranking
        results.update(open_images_metrics(all_scores["gzsl"], all_targets, split.unseen, ks=tuple(ks),
                                           zsl_scores=all_scores["zsl"]))
        return results
    for setting, columns in settings.items():
        results[setting] = metric_table(all_scores[setting], all_targets[:, columns], ks=tuple(ks))
        results[setting]["images"] = int(all_targets.shape[0])
    return results


def write_eval_tables(results: dict[str, Any], out_dir: str | Path, title: str = "MKT evaluation") -> Path:
    """eval.json (fractions) and eval.md (percentages, the paper's table layout)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    settings = [s for s in ("zsl", "gzsl") if s in results]
    ks = sorted({int(key.split("@")[1]) for s in settings for key in results[s] if key.startswith("f1@")})
    weighted = any("wmap" in results[s] for s in settings)  # Open Images: the paper's Table 1 reports WmAP
    header = ["setting", "mAP"] + (["WmAP"] if weighted else []) + [f"{m}@{k}" for k in ks for m in ("P", "R", "F1")]
    lines = [f"# {title}", "", f"{results.get('images', '?')} images, {results.get('labels', '?')} labels "
             f"({results.get('unseen_labels', 0)} unseen); {results.get('skipped_images', 0)} unreadable images "
             "skipped. Percentages.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for setting in settings:
        row = results[setting]
        cells = [setting.upper(), f"{100 * row['map']:.1f}"] + ([f"{100 * row['wmap']:.1f}"] if weighted else [])
        cells += [f"{100 * row[f'{m}@{k}']:.1f}" for k in ks for m in ("p", "r", "f1")]
        lines.append("| " + " | ".join(cells) + " |")
    path = out_dir / "eval.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
