"""A synthetic WhatsUp-style benchmark: Controlled-like images of two drawn objects, fully offline.

Two subsets mirror the real Controlled ones (Kamath et al., 2023, "What's 'up' with vision-language
models?"), in the published schema, so the existing WhatsUp task code scores them unchanged:

* ``Synthetic_A`` (like Controlled_A): ``left of``, ``right of``, ``on``, ``under``. Left/right:
  the two objects side by side around the centre; on/under: stacked and touching.
* ``Synthetic_B`` (like Controlled_B): ``left of``, ``right of``, ``in front of``, ``behind``, on a
  darker "floor". Front/behind is shown by overlap and scale: the front object is larger, lower and
  drawn over the one behind.

Objects are a colour and a shape (:data:`COLOURS` x :data:`SHAPES`); the two objects of an image
always differ in both. Every object pair is rendered in all four relations of its subset, so pair
and set accuracy are defined. Rows: ``id``, ``question`` (the whole LLaVA-1.5 prompt,
``<image>\\nUSER: Where is the red circle in relation to the blue square? Answer with left, right,
on or under.\\nASSISTANT:``), ``answer`` (``["Left"]``), ``image_path``
(``data/<folder>/<obj1>_<relation>_<obj2>.jpeg``, e.g. ``red-circle_left_of_blue-square.jpeg``).

Object pairs are split once, by :data:`PAIR_SPLIT_SEED`, into unordered pairs for the shipped
benchmark (A and B disjoint), a development set and a training set (:func:`pair_split`): a model
trained on the training pairs never sees a benchmark pair, in either order.

The benchmark ships with the package (``adaptvis_tasks/packaged_data/whatsup_synthetic/``, ~1 MB):
shipped bytes make it identical on every machine, whereas re-rendering depends on the Pillow and
libjpeg versions. ``python -m adaptvis_tasks.whatsup_synthetic <dir>`` rebuilds it (and the
tests check that the shipped files equal a fresh build on this machine's Pillow).

Training examples (:func:`training_example`) add one kind of question the benchmark does not ask,
object localisation (``Where is the red circle in the image? Answer with left, right, top or
bottom.``), used by ``scripts/train_embedded_model.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from adaptvis_tasks.prompts import format_llava15_prompt

IMAGE_SIZE = 64
JPEG_QUALITY = 95
PAIR_SPLIT_SEED = 2025
BENCHMARK_SEED = 13

#: Named colours (RGB) and shapes; an object is one of each.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 80, 225),
    "green": (30, 165, 60),
    "yellow": (240, 215, 30),
    "purple": (140, 55, 185),
    "orange": (245, 135, 25),
    "black": (25, 25, 25),
    "cyan": (40, 205, 215),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")

Obj = tuple[str, str]
OBJECTS: tuple[Obj, ...] = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)


@dataclass(frozen=True)
class SubsetSpec:
    """One synthetic subset: its name, image folder, relations and option clause."""

    name: str
    folder: str
    relations: tuple[tuple[str, str], ...]  # (file-name token, gold answer)
    options: str
    background: tuple[int, int, int]
    rows: int


SUBSETS: dict[str, SubsetSpec] = {
    "Synthetic_A": SubsetSpec(
        name="Synthetic_A",
        folder="whatsup_synthetic_a",
        relations=(("left_of", "Left"), ("right_of", "Right"), ("on", "On"), ("under", "Under")),
        options="left, right, on or under",
        background=(236, 232, 220),
        rows=412,
    ),
    "Synthetic_B": SubsetSpec(
        name="Synthetic_B",
        folder="whatsup_synthetic_b",
        relations=(("left_of", "Left"), ("right_of", "Right"), ("in-front_of", "Front"), ("behind", "Behind")),
        options="left, right, front or behind",
        background=(160, 160, 168),
        rows=408,
    ),
}
"""Row counts match the published Controlled_A (412) and Controlled_B (408)."""

LOCALISATION_OPTIONS = "left, right, top or bottom"


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------


def noun(obj: Obj) -> str:
    """``red circle``."""
    return f"{obj[0]} {obj[1]}"


def file_token(obj: Obj) -> str:
    """``red-circle`` (no underscore: the reference splits file names on ``_``)."""
    return f"{obj[0]}-{obj[1]}"


def llava15_prompt(body: str) -> str:
    """The LLaVA-1.5 prompt as the published ``question`` column holds it (the tasks' own template)."""
    return format_llava15_prompt(body)


def relation_question(subset: str, first: Obj, second: Obj) -> str:
    """The published WhatsUp question for ``subset`` about ``first`` relative to ``second``."""
    return llava15_prompt(
        f"Where is the {noun(first)} in relation to the {noun(second)}? Answer with {SUBSETS[subset].options}."
    )


def localisation_question(obj: Obj) -> str:
    """A training-only question: where is one object in the image."""
    return llava15_prompt(f"Where is the {noun(obj)} in the image? Answer with {LOCALISATION_OPTIONS}.")


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, cx: float, cy: float, half: float) -> None:
    colour = COLOURS[obj[0]]
    x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
    shape = obj[1]
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif shape == "cross":
        arm = half * 0.38
        draw.rectangle((x0, cy - arm, x1, cy + arm), fill=colour)
        draw.rectangle((cx - arm, y0, cx + arm, y1), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def _canvas(background: tuple[int, int, int], rng: random.Random) -> Image.Image:
    tint = rng.randint(-6, 6)
    return Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), tuple(min(255, max(0, c + tint)) for c in background))


def _layout(relation: str, rng: random.Random) -> list[tuple[int, float, float, float]]:
    """Drawing order as (object index 0=first/1=second, centre x, centre y, half size), in pixels.

    The first object is the one the question asks about; ``relation`` is its relation to the second.
    """
    c = IMAGE_SIZE / 2
    jx, jy = rng.uniform(-4, 4), rng.uniform(-4, 4)
    if relation in ("left", "right"):
        half = rng.uniform(8, 10)
        gap = rng.uniform(14, 18)
        sign = -1 if relation == "left" else 1
        return [
            (0, c + jx + sign * gap, c + jy + rng.uniform(-2, 2), half),
            (1, c + jx - sign * gap, c + jy + rng.uniform(-2, 2), half),
        ]
    if relation in ("on", "under"):
        half = rng.uniform(8, 10)
        sign = -1 if relation == "on" else 1
        # stacked and touching: centres one object height apart, small horizontal wobble
        return [
            (0, c + jx + rng.uniform(-2, 2), c + jy + sign * half, half),
            (1, c + jx + rng.uniform(-2, 2), c + jy - sign * half, half),
        ]
    if relation in ("front", "behind"):
        front_half, back_half = rng.uniform(10, 12), rng.uniform(6.5, 8)
        dx = rng.uniform(5, 9) * rng.choice((-1, 1))
        back = (c + jx - dx / 2, c + jy - 7, back_half)
        front = (c + jx + dx / 2, c + jy + 6, front_half)
        if relation == "front":  # first object in front: draw the second (behind) first
            return [(1, *back), (0, *front)]
        return [(0, *back), (1, *front)]
    if relation in ("top", "bottom"):  # single-object localisation
        half = rng.uniform(8, 10)
        return [(0, c + jx, c + (-1 if relation == "top" else 1) * rng.uniform(14, 18), half)]
    raise ValueError(f"unknown relation {relation!r}")


def render(subset: str, first: Obj, second: Obj | None, relation: str, rng: random.Random) -> Image.Image:
    """One picture of ``first`` in ``relation`` to ``second`` (``second=None``: ``first`` alone)."""
    image = _canvas(SUBSETS[subset].background, rng)
    draw = ImageDraw.Draw(image)
    objects = (first, second)
    if second is None and relation in ("left", "right"):
        half = rng.uniform(8, 10)
        sign = -1 if relation == "left" else 1
        plan = [(0, IMAGE_SIZE / 2 + sign * rng.uniform(14, 18), IMAGE_SIZE / 2 + rng.uniform(-4, 4), half)]
    else:
        plan = _layout(relation, rng)
    for index, cx, cy, half in plan:
        obj = objects[index]
        if obj is None:
            raise ValueError(f"relation {relation!r} needs two objects")
        _draw(draw, obj, cx, cy, half)
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    """The image as the benchmark stores it (baseline JPEG, quality :data:`JPEG_QUALITY`)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def as_stored(image: Image.Image) -> Image.Image:
    """The image after a JPEG round trip: what a model sees when it reads the benchmark file."""
    return Image.open(io.BytesIO(jpeg_bytes(image))).convert("RGB")


# ----------------------------------------------------------------------------------------------
# Object pairs: benchmark / development / training
# ----------------------------------------------------------------------------------------------


def _distinct(first: Obj, second: Obj) -> bool:
    return first[0] != second[0] and first[1] != second[1]


@dataclass(frozen=True)
class PairSplit:
    """Ordered object pairs per use; no unordered pair appears in two uses."""

    benchmark: dict[str, tuple[tuple[Obj, Obj], ...]]
    dev: tuple[tuple[Obj, Obj], ...]
    train: tuple[tuple[Obj, Obj], ...]


def pair_split(seed: int = PAIR_SPLIT_SEED, dev_pairs: int = 60) -> PairSplit:
    """Split all unordered pairs of objects differing in colour and shape (560) by ``seed``.

    The benchmark gets 103 (A) + 102 (B) unordered pairs, each in one random order; the
    development set ``dev_pairs``; training gets the rest, in both orders.
    """
    rng = random.Random(f"whatsup-synthetic-pairs:{seed}")
    unordered = [(a, b) for i, a in enumerate(OBJECTS) for b in OBJECTS[i + 1 :] if _distinct(a, b)]
    rng.shuffle(unordered)
    oriented = [pair if rng.random() < 0.5 else (pair[1], pair[0]) for pair in unordered]
    benchmark: dict[str, tuple[tuple[Obj, Obj], ...]] = {}
    start = 0
    for name, spec in SUBSETS.items():
        count = spec.rows // 4
        benchmark[name] = tuple(oriented[start : start + count])
        start += count
    dev = tuple(oriented[start : start + dev_pairs])
    rest = unordered[start + dev_pairs :]
    train = tuple(pair for a, b in rest for pair in ((a, b), (b, a)))
    return PairSplit(benchmark=benchmark, dev=dev, train=train)


# ----------------------------------------------------------------------------------------------
# Benchmark rows
# ----------------------------------------------------------------------------------------------


def benchmark_rows(subset: str, seed: int = BENCHMARK_SEED) -> list[tuple[dict[str, Any], Image.Image]]:
    """``(row, image)`` for every row of ``subset``: each benchmark pair in its four relations, pair by pair."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown synthetic subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    spec = SUBSETS[subset]
    rng = random.Random(f"whatsup-synthetic-render:{seed}:{subset}")
    out = []
    for first, second in pair_split().benchmark[subset]:
        for token, gold in spec.relations:
            name = f"{file_token(first)}_{token}_{file_token(second)}.jpeg"
            image = render(subset, first, second, gold.lower(), rng)
            row = {
                "id": len(out),
                "question": relation_question(subset, first, second),
                "answer": [gold],
                "image_path": f"data/{spec.folder}/{name}",
            }
            out.append((row, image))
    return out


def write_benchmark(root: Path | str, seed: int = BENCHMARK_SEED) -> Path:
    """Write ``<root>/<subset>/test.jsonl`` and ``<root>/images/<folder>/<name>.jpeg`` for both subsets."""
    root = Path(root)
    for subset, spec in SUBSETS.items():
        rows = benchmark_rows(subset, seed)
        (root / subset).mkdir(parents=True, exist_ok=True)
        folder = root / "images" / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        with open(root / subset / "test.jsonl", "w", encoding="utf-8") as handle:
            for row, image in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                (folder / row["image_path"].rsplit("/", 1)[1]).write_bytes(jpeg_bytes(image))
    return root


# ----------------------------------------------------------------------------------------------
# Training examples
# ----------------------------------------------------------------------------------------------

#: Relation frequencies of the training questions: our choice, shaped like the paper's Figure 15
#: (LLaVA's training data: left/right far more common than on/under; front/behind rare).
TRAINING_RELATION_FREQUENCIES: dict[str, float] = {
    "left": 0.30,
    "right": 0.30,
    "on": 0.12,
    "under": 0.12,
    "front": 0.08,
    "behind": 0.08,
}


@dataclass(frozen=True)
class Example:
    """One training example: picture, LLaVA-1.5 prompt and the one-word answer (``Left``, ``Top``, ...)."""

    image: Image.Image
    prompt: str
    answer: str
    kind: str  # "relation" or "localisation"
    subset: str


def relation_example(pairs: Sequence[tuple[Obj, Obj]], rng: random.Random, relation: str | None = None) -> Example:
    """A relation question about a random pair; relation drawn by :data:`TRAINING_RELATION_FREQUENCIES`."""
    if relation is None:
        names, weights = zip(*TRAINING_RELATION_FREQUENCIES.items(), strict=True)
        relation = rng.choices(names, weights)[0]
    if relation in ("on", "under"):
        subset = "Synthetic_A"
    elif relation in ("front", "behind"):
        subset = "Synthetic_B"
    else:
        subset = rng.choice(tuple(SUBSETS))
    first, second = rng.choice(pairs)
    image = as_stored(render(subset, first, second, relation, rng))
    return Example(image, relation_question(subset, first, second), relation.capitalize(), "relation", subset)


_LOCALISATION_ANSWER = {
    "left": "left",
    "right": "right",
    "on": "top",
    "under": "bottom",
    "front": "bottom",
    "behind": "top",
}


def localisation_example(pairs: Sequence[tuple[Obj, Obj]], rng: random.Random, single: bool) -> Example:
    """Where is one object in the image: alone (``single``) or next to a second object."""
    first, second = rng.choice(pairs)
    if single:
        subset = rng.choice(tuple(SUBSETS))
        where = rng.choice(("left", "right", "top", "bottom"))
        image = render(subset, first, None, where, rng)
    else:
        relation = rng.choice(tuple(TRAINING_RELATION_FREQUENCIES))
        subset = "Synthetic_A" if relation in ("on", "under") else "Synthetic_B"
        if relation in ("left", "right"):
            subset = rng.choice(tuple(SUBSETS))
        where = _LOCALISATION_ANSWER[relation]
        image = render(subset, first, second, relation, rng)
    return Example(as_stored(image), localisation_question(first), where.capitalize(), "localisation", subset)


def corpus() -> list[str]:
    """Every kind of text the model reads or writes (for training its tokenizer)."""
    texts = []
    for first in OBJECTS:
        texts.append(localisation_question(first))
        for second in OBJECTS:
            if _distinct(first, second):
                for subset in SUBSETS:
                    texts.append(relation_question(subset, first, second))
    answers = ["Left", "Right", "On", "Under", "Front", "Behind", "Top", "Bottom"]
    # as often as the questions, so that every answer word becomes one token
    texts.extend(f"ASSISTANT: {answer}" for answer in answers for _ in range(len(texts) // len(answers)))
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the benchmark (rows and images) into a folder."""
    parser = argparse.ArgumentParser(
        prog="python -m adaptvis_tasks.whatsup_synthetic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("root", type=Path, help="folder to write <subset>/test.jsonl and images/<folder>/ into")
    parser.add_argument("--seed", type=int, default=BENCHMARK_SEED)
    args = parser.parse_args(argv)
    write_benchmark(args.root, args.seed)
    print(f"wrote {sum(spec.rows for spec in SUBSETS.values())} rows under {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
