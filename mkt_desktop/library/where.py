"""Where in a photo a label is, as numbers: the label's score on each patch of the model's grid (the heat map).

    mkt-desktop where ~/Pictures/boat.jpg "red boat" --json
"""

import numpy as np
from sqlalchemy import select

from mkt_desktop.library.db import Photo


def where(lib, photo, label: str) -> dict:
    """The photo's score for the label, its patch grid [rows][cols] and the best patch.

    A model without a local stream (CLIP zero-shot) has no patches: `patch_scores` is None.
    """
    text = lib.check_label(label)  # a text the model cannot read is refused, naming why
    photo_id = photo if isinstance(photo, int) else lib.photo_id(photo)
    with lib.Session() as session:
        path = session.scalar(select(Photo.path).where(Photo.id == photo_id)) or str(photo)
    embedding_id = lib._embedding_id(photo_id)
    queries = lib.label_queries(text)  # adapted to the person's decisions, if any: the one score
    score = float(lib.store.score_labels(queries[:1], ids=[embedding_id], local_emb=queries[1:])[0, 0])
    grid = lib.patch_scores(photo_id, text)
    result = {"photo": path, "label": text, "score": round(score, 6), "patch_grid": None, "patch_scores": None,
              "peak": None}
    if grid is not None:
        grid = np.asarray(grid, dtype=np.float64)
        row, col = np.unravel_index(int(np.argmax(grid)), grid.shape)
        result["patch_grid"] = [int(grid.shape[0]), int(grid.shape[1])]
        result["patch_scores"] = [[round(float(v), 6) for v in line] for line in grid]
        # the patch's centre as fractions of the width and height (the model sees the photo squashed square)
        result["peak"] = {"row": int(row), "col": int(col), "score": round(float(grid[row, col]), 6),
                          "x": round((col + 0.5) / grid.shape[1], 4), "y": round((row + 0.5) / grid.shape[0], 4)}
    return result


def where_text(result: dict) -> str:
    """The same for a person: the score, the grid with the best patch marked, and where that patch is."""
    lines = [f"{result['photo']}: {result['label']!r} scores {result['score']:.4f}"]
    if result["patch_scores"] is None:
        lines.append("this model has no patch scores (a global-only model such as CLIP zero-shot)")
        return "\n".join(lines)
    peak = result["peak"]
    for r, line in enumerate(result["patch_scores"]):
        lines.append(" ".join(f"{v:7.3f}{'*' if (r, c) == (peak['row'], peak['col']) else ' '}"
                              for c, v in enumerate(line)))
    lines.append(f"best patch: row {peak['row']}, column {peak['col']} (at {peak['x']:.0%} across, "
                 f"{peak['y']:.0%} down), score {peak['score']:.4f}")
    return "\n".join(lines)
