"""The proving ground's ablation table: its scoring on hand cases, and a quick run that must learn."""

import json
from pathlib import Path

import numpy as np
import pytest

from mkt_core.synthetic.benchmark import ROWS, chance_levels, score_table
from mkt_core.synthetic.world import SEEN, UNSEEN_CATEGORY, UNSEEN_COMPOSITION
from trainer.cli import main as mkt_train

KINDS = [SEEN, SEEN, UNSEEN_CATEGORY, UNSEEN_COMPOSITION]
TARGETS = np.array([[1, -1, 1, -1],
                    [-1, 1, -1, -1],
                    [-1, -1, -1, 1],
                    [1, -1, -1, -1]])


def test_score_table_ranks_each_kind_alone_and_with_the_seen_labels():
    scores = np.array([[0.9, 0.1, 0.8, 0.0],
                       [0.2, 0.7, 0.1, 0.3],
                       [0.0, 0.1, 0.9, 0.2],  # the unseen category outscores the true composition here
                       [0.8, 0.2, 0.1, 0.0]])
    table = score_table(scores, TARGETS, KINDS)
    # Unseen category: its one positive (image 0) ranks second of four -> AP 1/2.
    assert table["by_kind"][UNSEEN_CATEGORY]["zsl"]["map"] == pytest.approx(0.5)
    # Unseen composition: its positive (image 2) ranks second behind image 1 -> AP 1/2.
    assert table["by_kind"][UNSEEN_COMPOSITION]["zsl"]["map"] == pytest.approx(0.5)
    assert table["zsl"]["map"] == pytest.approx(0.5)
    # A label's AP does not depend on the labels ranked with it; seen labels are ranked perfectly.
    assert table["seen"]["map"] == pytest.approx(1.0)
    assert table["gzsl"]["map"] == pytest.approx(0.75)
    # F1@3 over all four labels (micro): 5 of the 12 top-3 picks are positives, and all 5 positives are picked.
    assert table["gzsl"]["f1@3"] == pytest.approx(2 * (5 / 12) / (5 / 12 + 1))


def test_chance_levels_are_the_share_of_positive_images():
    chance = chance_levels(TARGETS, KINDS)
    assert chance["map_seen"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert chance["map_unseen"] == pytest.approx(1 / 4)
    assert chance[f"map_{UNSEEN_CATEGORY}"] == pytest.approx(1 / 4)


@pytest.mark.slow
def test_quick_benchmark_learns_and_a_rerun_reuses_its_checkpoints(tmp_path, capsys):
    out = tmp_path / "bench"
    assert mkt_train(["toy-benchmark", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(results["rows"]) == list(ROWS)
    chance = results["chance"]
    for name, row in results["rows"].items():
        for setting in ("zsl", "gzsl"):
            assert set(row[setting]) == {"map", "f1@3", "f1@5"}
            assert all(0 <= v <= 1 for v in row[setting].values())
        assert set(row["by_kind"]) == {UNSEEN_CATEGORY, UNSEEN_COMPOSITION}
        # Learning happened: seen labels far above chance, unseen ones above it (the ordering of the
        # rows is a finding to report, not asserted here).
        assert row["seen"]["map"] > 4 * chance["map_seen"], name
        assert row["zsl"]["map"] > 1.5 * chance["map_unseen"], name
    # the teacher's own zero-shot row, scored by this run: far above chance on the unseen labels
    assert results["rows"]["vlp_zero_shot"]["zsl"]["map"] > 10 * chance["map_unseen"]
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| mkt_full |" in table and "Unseen kind: unseen-composition" in table

    # Every stage left a checkpoint; a rerun trains nothing and reports the same table.
    for row in ROWS[1:]:
        assert (Path(results["rows"][row]["checkpoint"]) / "model.safetensors").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoints/last/model.safetensors")}
    assert len(stamps) == 8
    assert mkt_train(["toy-benchmark", "--quick", "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert again["rows"] == results["rows"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
