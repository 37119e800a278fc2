"""Heat-map pointing accuracy: does a label's highest-scoring patch fall on the object it names?

The world knows where every object is (`Scene.masks`), so the local stream's heat maps can be checked
without any annotation work. A patch counts as on an object when at least `COVER` of its pixels are
that object's visible pixels; the random-patch rate is the share of patches that count as on it, the
accuracy a heat map with no information would get on average.
"""

from collections.abc import Sequence

import numpy as np

from mkt_core.synthetic.world import WorldSpec, generate_scene, scene_seed

COVER = 0.25  # the share of a patch's pixels an object must fill for the patch to be on it


def patch_cover(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """bool `[H, W]` -> `[gh, gw]`: the share of each patch's pixels that the mask covers."""
    gh, gw = grid
    h, w = mask.shape
    if h % gh or w % gw:
        raise ValueError(f"a {h} x {w} mask does not split into a {gh} x {gw} grid")
    return mask.reshape(gh, h // gh, gw, w // gw).mean(axis=(1, 3))


def test_objects(count: int, seed: int, world: WorldSpec, grid: tuple[int, int],
                 labels: Sequence[str]) -> list[list[tuple[int, np.ndarray]]]:
    """For each test scene (the `test` stream, as `mkt_test_set` draws it): (label column, patch cover
    `[gh * gw]`) of each object, regenerated from the scene's seed."""
    column = {label: j for j, label in enumerate(labels)}
    out = []
    for i in range(count):
        scene = generate_scene(scene_seed(seed, "test", i), world)
        out.append([(column[o.label], patch_cover(m, grid).reshape(-1))
                    for o, m in zip(scene.objects, scene.masks, strict=True) if o.label in column])
    return out


def pointing_accuracy(top_patch: np.ndarray, objects: Sequence[Sequence[tuple[int, np.ndarray]]],
                      columns: Sequence[int] | None = None) -> dict[str, float | int | None]:
    """`top_patch[i, j]`: the index of image i's highest patch for label j. Over every (image, object)
    pair whose label is in `columns` (default: all): how often that patch is on the object, and how
    often a patch drawn at random would be."""
    wanted = None if columns is None else set(columns)
    hits, chance = [], []
    for i, scene in enumerate(objects):
        for j, cover in scene:
            if wanted is not None and j not in wanted:
                continue
            on = cover >= COVER
            hits.append(bool(on[int(top_patch[i, j])]))
            chance.append(float(on.mean()))
    if not hits:
        return {"accuracy": None, "random": None, "pairs": 0}
    return {"accuracy": float(np.mean(hits)), "random": float(np.mean(chance)), "pairs": len(hits)}
