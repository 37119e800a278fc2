"""A seeded world of coloured shapes: the offline proving ground for MKT.

Why it exists: NUS-WIDE and web-scale CLIP cannot be had offline, so this world stands in for
both. Scenes hold one to three coloured shapes on noisy, blurred backgrounds; every scene has a
caption ("a red circle and a blue star") and its labels ("red circle", "blue star").

The label split mirrors the paper's benchmark, with two kinds of unseen labels reported apart:
- unseen categories: whole shapes ("moon") never labelled in MKT training, like NUS-WIDE's 81
  unseen concepts; the teacher still sees them in its captions;
- unseen compositions: a colour and a shape that are each seen, but never together ("red heart").

Everything is a pure function of a seed: scene `i` of a set is drawn from the seed
`(seed, stream, i)`, so any scene can be regenerated alone and image bytes never depend on the
batch a scene was drawn in.
"""

import csv
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Fully saturated, far-apart hues (and white), so that colour is never the hard part.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "orange": (250, 140, 20),
    "yellow": (245, 230, 35),
    "green": (35, 180, 55),
    "cyan": (40, 215, 230),
    "blue": (35, 70, 235),
    "purple": (160, 50, 210),
    "white": (245, 245, 245),
}


def _regular(n: int, radius: float, phase: float = -90.0) -> list[tuple[float, float]]:
    return [(radius * math.cos(math.radians(phase + 360.0 * i / n)),
             radius * math.sin(math.radians(phase + 360.0 * i / n))) for i in range(n)]


def _star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    outer_pts, inner_pts = _regular(points, outer), _regular(points, inner, -90.0 + 180.0 / points)
    return [p for pair in zip(outer_pts, inner_pts, strict=True) for p in pair]


def _heart() -> list[tuple[float, float]]:
    pts = []
    for i in range(40):
        t = 2 * math.pi * i / 40
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 16.5, -(y + 3) / 15.5))  # image y points down; centre the bounding box
    return pts


# Each shape is a list of (polygon in unit coordinates, fill): fill 0 cuts a hole (ring, moon).
# Rotation stays within +-max_rotation, so a square never turns into a diamond and vice versa.
SHAPES: dict[str, list[tuple[list[tuple[float, float]], int]]] = {
    "circle": [(_regular(36, 0.92), 255)],
    "square": [([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)], 255)],
    "triangle": [(_regular(3, 1.05, -90.0), 255)],
    "star": [(_star(5, 1.05, 0.42), 255)],
    "cross": [([(-0.3, -1.0), (0.3, -1.0), (0.3, -0.3), (1.0, -0.3), (1.0, 0.3), (0.3, 0.3), (0.3, 1.0),
                (-0.3, 1.0), (-0.3, 0.3), (-1.0, 0.3), (-1.0, -0.3), (-0.3, -0.3)], 255)],
    "ring": [(_regular(36, 0.95), 255), (_regular(36, 0.55), 0)],
    "heart": [(_heart(), 255)],
    "diamond": [([(0.0, -1.05), (0.6, 0.0), (0.0, 1.05), (-0.6, 0.0)], 255)],
    "moon": [(_regular(36, 0.95), 255), ([(x + 0.5, y - 0.2) for x, y in _regular(36, 0.8)], 0)],
    "arrow": [([(-1.0, -0.22), (0.15, -0.22), (0.15, -0.62), (1.0, 0.0), (0.15, 0.62), (0.15, 0.22),
                (-1.0, 0.22)], 255)],
}

DEFAULT_SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "heart", "diamond", "moon", "arrow")
DEFAULT_UNSEEN_SHAPES = ("moon", "arrow")
# One held-out composition per colour and per seen shape (a permutation), so every colour and
# every seen shape stays seen in other compositions.
DEFAULT_UNSEEN_COMPOSITIONS = ("red heart", "orange star", "yellow ring", "green square", "cyan triangle",
                               "blue circle", "purple cross", "white diamond")

SEEN = "seen"
UNSEEN_CATEGORY = "unseen-category"
UNSEEN_COMPOSITION = "unseen-composition"

# Streams keep the sets of one seed apart: the same seed never yields the same scene twice.
STREAMS = {"caption": 0, "train": 1, "test": 2, "demo": 3, "eval": 4}


@dataclass(frozen=True)
class WorldSpec:
    """What the world draws and how its labels split into seen and the two kinds of unseen."""

    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    unseen_shapes: tuple[str, ...] = DEFAULT_UNSEEN_SHAPES
    unseen_compositions: tuple[str, ...] = DEFAULT_UNSEEN_COMPOSITIONS
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    min_radius: float = 0.13  # object radius as a fraction of the image side
    max_radius: float = 0.24
    max_rotation: float = 30.0  # degrees either way
    min_visible: float = 0.6  # an occluded object keeps at least this fraction of its area
    colour_jitter: int = 18  # per channel, so a colour is a region, not one RGB value
    noise: float = 10.0  # std of the per-pixel noise over the whole image

    def __post_init__(self) -> None:
        for name in self.colours:
            if name not in COLOURS:
                raise ValueError(f"unknown colour {name!r}; known: {', '.join(COLOURS)}")
        for name in self.shapes:
            if name not in SHAPES:
                raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
        for name in self.unseen_shapes:
            if name not in self.shapes:
                raise ValueError(f"unseen shape {name!r} is not one of the world's shapes")
        for label in self.unseen_compositions:
            colour, _, shape = label.partition(" ")
            if colour not in self.colours or shape not in self.shapes:
                raise ValueError(f"unseen composition {label!r} is not a colour and shape of this world")
            if shape in self.unseen_shapes:
                raise ValueError(f"unseen composition {label!r} has an unseen shape: it is an unseen category")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.max_objects > len(self.colours) * len(self.shapes):
            raise ValueError("max_objects exceeds the number of distinct compositions")
        if not 0 < self.min_radius <= self.max_radius < 0.5:
            raise ValueError(f"need 0 < min_radius <= max_radius < 0.5, got {self.min_radius}, {self.max_radius}")

    # -- labels ------------------------------------------------------------------------------

    @property
    def compositions(self) -> list[str]:
        """Every "colour shape" label, colours outer, in the world's order."""
        return [f"{c} {s}" for c in self.colours for s in self.shapes]

    @property
    def seen_labels(self) -> list[str]:
        held = set(self.unseen_compositions)
        return [x for x in self.compositions if x.split(" ")[1] not in self.unseen_shapes and x not in held]

    @property
    def unseen_category_labels(self) -> list[str]:
        return [x for x in self.compositions if x.split(" ")[1] in self.unseen_shapes]

    @property
    def unseen_composition_labels(self) -> list[str]:
        return [x for x in self.compositions if x in set(self.unseen_compositions)]

    @property
    def unseen_labels(self) -> list[str]:
        return self.unseen_category_labels + self.unseen_composition_labels

    @property
    def labels(self) -> list[str]:
        """All labels: seen first, then unseen categories, then unseen compositions."""
        return self.seen_labels + self.unseen_labels

    def label_kind(self, label: str) -> str:
        colour, _, shape = label.partition(" ")
        if colour not in self.colours or shape not in self.shapes:
            raise ValueError(f"{label!r} is not a label of this world")
        if shape in self.unseen_shapes:
            return UNSEEN_CATEGORY
        return UNSEEN_COMPOSITION if label in self.unseen_compositions else SEEN

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WorldSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown world keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    x: float  # centre, pixels
    y: float
    radius: float  # pixels
    angle: float  # degrees
    visible: float  # fraction of the object's own area left visible after occlusion

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    image: Image.Image
    caption: str
    labels: list[str]  # the objects' "colour shape" labels, in drawing order, no repeats
    objects: list[SceneObject]
    # Each object's visible pixels (bool `[H, W]`, same order as `objects`): where a heat map should point.
    masks: list[np.ndarray] = dataclasses.field(default_factory=list)


# -- drawing ---------------------------------------------------------------------------------

def _rng(seed_or_rng: int | Sequence[int] | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dull, blotchy, noisy backgrounds: low-saturation, dark to mid grey-browns that no object colour matches."""
    base = rng.uniform(25, 120) + rng.uniform(-18, 18, size=3)
    cells = int(rng.integers(2, 9))
    blotches = rng.normal(0.0, rng.uniform(5, 25), size=(cells, cells, 3))
    low = Image.fromarray(np.clip(blotches + 128, 0, 255).astype(np.uint8))
    smooth = np.asarray(low.resize((size, size), Image.BILINEAR), dtype=np.float32) - 128
    return np.clip(base + smooth, 0, 255)


def _object_mask(shape: str, x: float, y: float, radius: float, angle: float, stretch: float,
                 size: int) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for polygon, fill in SHAPES[shape]:
        pts = [(x + radius * (px * stretch * cos - py * sin), y + radius * (px * stretch * sin + py * cos))
               for px, py in polygon]
        draw.polygon(pts, fill=fill)
    return np.asarray(mask) > 127


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_for(objects: Sequence[SceneObject | tuple[str, str]]) -> str:
    """"a red circle", "a red circle and a blue star", "a red circle, a blue star and an orange ring"."""
    names = [o.label if isinstance(o, SceneObject) else f"{o[0]} {o[1]}" for o in objects]
    phrases = [f"{_article(n)} {n}" for n in names]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def generate_scene(seed_or_rng: int | Sequence[int] | np.random.Generator, world: WorldSpec | None = None,
                   objects: Sequence[tuple[str, str]] | None = None, num_objects: int | None = None) -> Scene:
    """Draw one scene: `objects` fixes its (colour, shape) list, `num_objects` only how many.

    Objects are placed one after another on top of each other; a placement that would leave an
    earlier object less than `world.min_visible` of its area, or touch one of the same colour (the
    two would merge into one blob), is redrawn; an object that finds no place after a few tries is
    left out, so the labels are always what can be seen.
    """
    world = world or WorldSpec()
    rng = _rng(seed_or_rng)
    size = world.image_size
    if objects is None:
        count = num_objects or int(rng.integers(world.min_objects, world.max_objects + 1))
        chosen: list[tuple[str, str]] = []
        while len(chosen) < count:
            pick = (world.colours[int(rng.integers(len(world.colours)))],
                    world.shapes[int(rng.integers(len(world.shapes)))])
            if pick not in chosen:
                chosen.append(pick)
    else:
        chosen = [tuple(o) for o in objects]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"a scene holds each composition once, got {chosen}")
    pixels = _background(rng, size)
    placed: list[SceneObject] = []
    masks: list[np.ndarray] = []
    visible: list[np.ndarray] = []
    for colour, shape in chosen:
        for _ in range(12):
            radius = size * rng.uniform(world.min_radius, world.max_radius)
            x, y = rng.uniform(radius, size - radius, size=2)
            angle = rng.uniform(-world.max_rotation, world.max_rotation)
            mask = _object_mask(shape, x, y, radius, angle, rng.uniform(0.88, 1.12), size)
            apart = all(math.hypot(x - o.x, y - o.y) > radius + o.radius + 2 for o in placed if o.colour == colour)
            if apart and all((v & ~mask).sum() >= world.min_visible * m.sum()
                             for v, m in zip(visible, masks, strict=True)):
                break
        else:
            continue  # no room: leave it out rather than label something hidden
        visible = [v & ~mask for v in visible] + [mask]
        masks.append(mask)
        rgb = np.array(COLOURS[colour], dtype=np.float32)
        rgb = np.clip(rgb + rng.integers(-world.colour_jitter, world.colour_jitter + 1, size=3), 0, 255)
        pixels[mask] = rgb
        placed.append(SceneObject(colour, shape, float(x), float(y), float(radius), float(angle), 1.0))
    placed = [dataclasses.replace(o, visible=float(v.sum() / max(m.sum(), 1)))
              for o, v, m in zip(placed, visible, masks, strict=True)]
    if world.noise > 0:
        pixels = pixels + rng.normal(0.0, world.noise, size=pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return Scene(image, caption_for(placed), [o.label for o in placed], placed, visible)


def scene_seed(seed: int, stream: str, index: int) -> tuple[int, int, int]:
    """The seed of scene `index` of a set: independent of batches, so any scene regenerates alone."""
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {sorted(STREAMS)}, got {stream!r}")
    return (int(seed), STREAMS[stream], int(index))


def iter_scenes(count: int, seed: int, world: WorldSpec | None = None, stream: str = "caption",
                start: int = 0) -> Iterator[Scene]:
    world = world or WorldSpec()
    for i in range(start, start + count):
        yield generate_scene(scene_seed(seed, stream, i), world)


# -- sets ------------------------------------------------------------------------------------

@dataclass
class SceneBatch:
    """Many scenes as one uint8 array `[N, H, W, 3]`: what training reads, without N PIL images."""

    images: np.ndarray
    captions: list[str]
    objects: list[list[SceneObject]]

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def labels(self) -> list[list[str]]:
        return [[o.label for o in objs] for objs in self.objects]


def generate_batch(count: int, seed: int, world: WorldSpec | None = None, stream: str = "caption",
                   start: int = 0) -> SceneBatch:
    """`count` scenes of one stream as an array; scene i is the one `generate_scene` draws alone."""
    world = world or WorldSpec()
    size = world.image_size
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    captions, objects = [], []
    for i, scene in enumerate(iter_scenes(count, seed, world, stream, start)):
        images[i] = np.asarray(scene.image)
        captions.append(scene.caption)
        objects.append(scene.objects)
    return SceneBatch(images, captions, objects)


def caption_dataset(count: int, seed: int, world: WorldSpec | None = None) -> SceneBatch:
    """The teacher's (image, caption) pairs: every colour and shape, unseen ones included."""
    return generate_batch(count, seed, world, "caption")


@dataclass
class MultiLabelSet:
    """Images with 1 / -1 targets over `labels`; `kinds[j]` says whether label j is seen or which unseen."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: list[str]
    kinds: list[str]
    targets: np.ndarray  # int8 [N, L]: 1 present, -1 absent
    objects: list[list[SceneObject]]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def unseen_indices(self) -> list[int]:
        return [j for j, kind in enumerate(self.kinds) if kind != SEEN]

    def indices(self, kind: str) -> list[int]:
        return [j for j, k in enumerate(self.kinds) if k == kind]


def _multilabel(batch: SceneBatch, labels: list[str], world: WorldSpec) -> MultiLabelSet:
    column = {label: j for j, label in enumerate(labels)}
    targets = np.full((len(batch), len(labels)), -1, dtype=np.int8)
    for i, objs in enumerate(batch.objects):
        for o in objs:
            if o.label in column:
                targets[i, column[o.label]] = 1
    return MultiLabelSet(batch.images, list(labels), [world.label_kind(x) for x in labels], targets, batch.objects)


def mkt_train_set(count: int, seed: int, world: WorldSpec | None = None) -> MultiLabelSet:
    """MKT training images: they may show unseen things, but targets cover seen labels only.

    An image showing only unseen things has no positive; the ranking loss skips such images.
    """
    world = world or WorldSpec()
    return _multilabel(generate_batch(count, seed, world, "train"), world.seen_labels, world)


def mkt_test_set(count: int, seed: int, world: WorldSpec | None = None) -> MultiLabelSet:
    """MKT test images with targets over all labels: seen, then unseen categories, then unseen compositions."""
    world = world or WorldSpec()
    return _multilabel(generate_batch(count, seed, world, "test"), world.labels, world)


# -- files -----------------------------------------------------------------------------------

def write_label_file(path: str | Path, labels: Sequence[str], kinds: Sequence[str]) -> Path:
    """One `label<TAB>kind` per line (kind: seen, unseen-category, unseen-composition)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}\t{k}\n" for x, k in zip(labels, kinds, strict=True)), encoding="utf-8")
    return path


def write_multilabel_set(dataset: MultiLabelSet, out_dir: str | Path, image_format: str = "png") -> Path:
    """Images, `annotations.csv` (`path,labels`, positives joined with `|`) and `labels.tsv`; returns the CSV."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    csv_path = out / "annotations.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        for i in range(len(dataset)):
            name = f"images/{i:06d}.{image_format}"
            Image.fromarray(dataset.images[i]).save(out / name)
            positives = [dataset.labels[j] for j in np.flatnonzero(dataset.targets[i] == 1)]
            writer.writerow([name, "|".join(positives)])
    write_label_file(out / "labels.tsv", dataset.labels, dataset.kinds)
    return csv_path


def write_demo_photos(out_dir: str | Path, count: int, seed: int, world: WorldSpec | None = None,
                      quality: int = 90, stream: str = "demo") -> Path:
    """JPEG photos of the world for the app demo, with `labels.csv` (`path,labels`, joined with `|`).

    Paths in the CSV are relative to the CSV's folder; the labels are everything drawn. `stream`
    "eval" gives photos no demo folder shares (the demo model's calibration is fitted on those).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "labels.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        for i, scene in enumerate(iter_scenes(count, seed, world, stream)):
            name = f"scene_{i:05d}.jpg"
            scene.image.save(out / name, "JPEG", quality=quality)
            writer.writerow([name, "|".join(scene.labels)])
    return csv_path


def write_off_world_photos(out_dir: str | Path, count: int, seed: int = 5) -> list[Path]:
    """JPEG photos unlike the world of shapes (soft gradients, blurred blobs, noise), 160 x 120.

    They stand in for a person's ordinary photos beside the world's scenes: a library whose
    first photos are these is the hard case for anything fitted on the first photos it sees.
    """
    from PIL import ImageFilter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        y, x = np.mgrid[0:120, 0:160] / 160.0
        waves = np.stack([np.sin(3 * x + i), np.cos(2 * y + i), x * y], -1)
        pixels = rng.uniform(0, 255, 3) + 90 * waves + rng.normal(0, 12, (120, 160, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, 140)), int(rng.integers(0, 100))
            draw.ellipse([x0, y0, x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))],
                         fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        path = out / f"ordinary_{i:04d}.jpg"
        image.filter(ImageFilter.GaussianBlur(2)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths
