"""Write a synthetic local mirror of all seven configurations, in the published schema, with images.

Used by the tests, the benchmark and ``make demo``; nothing here is real benchmark data. The
layout is exactly what the tasks read with ``ADAPTVIS_DATA_DIR``/``ADAPTVIS_IMAGE_ROOT``::

    <root>/data/<config>/test.jsonl          (or test.parquet)
    <root>/images/controlled_images/<obj1>_<relation>_<obj2>.jpeg   Controlled_A
    <root>/images/controlled_clevr/<obj1>_<relation>_<obj2>.jpeg    Controlled_B
    <root>/images/val2017/<12-digit id>.jpg                         COCO_* (and part of VSR)
    <root>/images/train2017/<12-digit id>.jpg                       VSR
    <root>/images/vg_images/<id>.jpg                                VG_*

Rows look like the published ones: the ``question`` column holds the whole LLaVA-1.5 prompt with
the subset's option wording, answers are capitalised one-element lists, Controlled image paths are
written as ``data/controlled_images/<name>.jpeg``, COCO ids are ints, VG ids are digit strings,
VSR rows have ``image``, ``image_link``, ``caption``, ``label``, ``relation`` and annotator fields.
A few rows copy the published quirks (double space after ``USER:``, a newline before ``Answer with``,
``\\n\\nASSISTANT:``, Oxford-comma option lists, VG's ``behind or front`` rows). Controlled rows come
in complete sets of four relations per object pair (when the row count is a multiple of four), so
pair and set accuracy are meaningful. Images are small (80x80 by default) coloured shapes placed
according to the gold relation. Output is deterministic for a given seed.

CLI: ``python -m adaptvis_tasks.synthetic <dir> [--rows N | --paper-sizes] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from adaptvis_tasks.data import ALL_SUBSETS, DATA_DIR_ENV, IMAGE_ROOT_ENV, VSR_SUBSET

PAPER_ROWS: dict[str, int] = {
    "Controlled_A": 412,
    "Controlled_B": 408,
    "COCO_one_obj": 2247,
    "COCO_two_obj": 440,
    "VG_one_obj": 1160,
    "VG_two_obj": 291,
    VSR_SUBSET: 1222,
}

#: Rows per config of the small mirror the tests use.
SMALL_ROWS: dict[str, int] = {
    "Controlled_A": 16,
    "Controlled_B": 16,
    "COCO_one_obj": 8,
    "COCO_two_obj": 8,
    "VG_one_obj": 8,
    "VG_two_obj": 8,
    VSR_SUBSET: 12,
}

_COLOURS = {
    "red": (200, 40, 40),
    "blue": (40, 70, 200),
    "green": (40, 160, 60),
    "yellow": (220, 200, 40),
    "purple": (140, 60, 170),
    "orange": (240, 140, 30),
    "grey": (110, 110, 110),
    "black": (20, 20, 20),
}
_SHAPES = ("square", "circle", "triangle", "diamond", "dots")
_BACKGROUND = (235, 235, 225)

_CONTROLLED = {
    "Controlled_A": (
        "controlled_images",
        (("left_of", "Left"), ("right_of", "Right"), ("on", "On"), ("under", "Under")),
        "left, right, on or under",
    ),
    "Controlled_B": (
        "controlled_clevr",
        (("left_of", "Left"), ("right_of", "Right"), ("in-front_of", "Front"), ("behind", "Behind")),
        "left, right, front or behind",
    ),
}


def _objects(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (colour, shape) objects."""
    pool = [(colour, shape) for colour in _COLOURS for shape in _SHAPES]
    rng.shuffle(pool)
    return [pool[index % len(pool)] for index in range(count)]


def _object_pairs(rng: random.Random, count: int) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """``count`` distinct ordered object pairs (so the reference's pair keys never collide)."""
    pool = [(colour, shape) for colour in _COLOURS for shape in _SHAPES]
    pairs = [(first, second) for first in pool for second in pool if first != second]
    if count > len(pairs):
        raise ValueError(f"at most {4 * len(pairs)} Controlled rows can be generated, asked for {4 * count}")
    return rng.sample(pairs, count)


def _noun(obj: tuple[str, str]) -> str:
    return f"{obj[0]} {obj[1]}"


def _verb(obj: tuple[str, str]) -> str:
    return "are" if obj[1] == "dots" else "is"


def _token(obj: tuple[str, str]) -> str:
    return f"{obj[0]}-{obj[1]}"


def _prompt(body: str, *, user_gap: str = " ", assistant_gap: str = "\n") -> str:
    return f"<image>\nUSER:{user_gap}{body}{assistant_gap}ASSISTANT:"


def _draw_shape(draw: ImageDraw.ImageDraw, obj: tuple[str, str], box: tuple[float, float, float, float]) -> None:
    colour = _COLOURS[obj[0]]
    x0, y0, x1, y1 = box
    shape = obj[1]
    if shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "diamond":
        draw.polygon([((x0 + x1) / 2, y0), (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2)], fill=colour)
    else:  # dots: a plural object
        width, height = (x1 - x0) / 3, (y1 - y0) / 3
        for column in range(2):
            for line in range(2):
                left, top = x0 + column * 2 * width, y0 + line * 2 * height
                draw.ellipse((left, top, left + width, top + height), fill=colour)


def _scene(size: int, placements: Sequence[tuple[tuple[str, str], tuple[float, float, float]]]) -> Image.Image:
    """Draw objects as (obj, (centre x, centre y, half size)) in fractions of the canvas, in order."""
    image = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj, (cx, cy, half) in placements:
        _draw_shape(draw, obj, ((cx - half) * size, (cy - half) * size, (cx + half) * size, (cy + half) * size))
    return image


# Where the first object goes relative to a centred second object, per relation word.
_RELATIVE = {
    "left": (0.22, 0.5, 0.14),
    "right": (0.78, 0.5, 0.14),
    "on": (0.5, 0.22, 0.14),
    "above": (0.5, 0.2, 0.14),
    "top": (0.5, 0.2, 0.14),
    "under": (0.5, 0.78, 0.14),
    "below": (0.5, 0.8, 0.14),
    "bottom": (0.5, 0.8, 0.14),
    "front": (0.55, 0.62, 0.2),
    "behind": (0.45, 0.36, 0.1),
}


def _two_object_scene(size: int, first: tuple[str, str], second: tuple[str, str], relation: str) -> Image.Image:
    anchor = (second, (0.5, 0.5, 0.16))
    placed = (first, _RELATIVE[relation])
    order = [placed, anchor] if relation == "behind" else [anchor, placed]
    return _scene(size, order)


def _one_object_scene(size: int, obj: tuple[str, str], relation: str) -> Image.Image:
    return _scene(size, [(obj, _RELATIVE[relation])])


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)


# ----------------------------------------------------------------------------------------------
# Per-config row generators
# ----------------------------------------------------------------------------------------------


def _controlled_rows(config: str, n: int, rng: random.Random, image_root: Path, size: int) -> list[dict[str, Any]]:
    folder, relations, options = _CONTROLLED[config]
    pairs = _object_pairs(rng, (n + 3) // 4)
    records = []
    for index in range(n):
        first, second = pairs[index // 4]
        token, gold = relations[index % 4]
        name = f"{_token(first)}_{token}_{_token(second)}.jpeg"
        question = _prompt(
            f"Where {_verb(first)} the {_noun(first)} in relation to the {_noun(second)}? Answer with {options}."
        )
        _save(_two_object_scene(size, first, second, gold.lower()), image_root / folder / name)
        records.append({"question": question, "answer": [gold], "image_path": f"data/{folder}/{name}"})
    rng.shuffle(records)
    return [{"id": index, **record} for index, record in enumerate(records)]


def _coco_rows(config: str, n: int, rng: random.Random, image_root: Path, size: int) -> list[dict[str, Any]]:
    one = config == "COCO_one_obj"
    golds = ("Left", "Right", "Top", "Bottom") if one else ("Left", "Right", "Above", "Below")
    first_id = 1_000_000 if one else 2_000_000
    rows = []
    for index in range(n):
        gold = golds[rng.randrange(len(golds))]
        first, second = _objects(rng, 2)
        image_id = first_id + index
        if one:
            oxford = index % 5 == 4
            options = "left, right, top, or bottom" if oxford else "left, right, top or bottom"
            body = f"Where {_verb(first)} the {_noun(first)} in the photo? Answer with {options}."
            image = _one_object_scene(size, first, gold.lower())
        else:
            options = "left, right, above, or below" if index % 2 == 0 else "left, right, above or below"
            body = f"Where {_verb(first)} the {_noun(first)} in relation to the {_noun(second)}? Answer with {options}."
            image = _two_object_scene(size, first, second, gold.lower())
        user_gap = "  " if index % 4 == 2 else " "  # the published double space after USER:
        _save(image, image_root / "val2017" / f"{image_id:012d}.jpg")
        rows.append({"id": index, "question": _prompt(body, user_gap=user_gap), "answer": [gold], "image_id": image_id})
    return rows


def _vg_rows(config: str, n: int, rng: random.Random, image_root: Path, size: int) -> list[dict[str, Any]]:
    one = config == "VG_one_obj"
    golds = (
        ("Left", "Right", "Top", "Bottom", "Behind") if one else ("Left", "Right", "Front", "Behind", "Above", "Below")
    )
    first_id = 2_400_000 if one else 2_500_000
    rows = []
    for index in range(n):
        gold = golds[index % len(golds)] if index < len(golds) else golds[rng.randrange(len(golds))]
        first, second = _objects(rng, 2)
        image_id = str(first_id + index)
        assistant_gap = "\n"
        if one:
            options = "behind or front" if index == 4 else "left, right, front, behind, top or bottom"
            body = f"Where {_verb(first)} the {_noun(first)} in the photo? Answer with {options}."
            image = _one_object_scene(size, first, "behind" if gold == "Behind" else gold.lower())
        else:
            question = f"Where {_verb(first)} the {_noun(first)} in relation to the {_noun(second)}?"
            options = "Answer with left, right, front, behind, above or below."
            # Published quirks: a stray newline before "Answer with", and "\n\nASSISTANT:".
            body = f"{question} \n{options}" if index % 4 == 1 else f"{question} {options}"
            assistant_gap = "\n\n" if index % 4 == 3 else "\n"
            image = _two_object_scene(size, first, second, gold.lower())
        _save(image, image_root / "vg_images" / f"{image_id}.jpg")
        rows.append(
            {
                "id": index,
                "question": _prompt(body, assistant_gap=assistant_gap),
                "answer": [gold],
                "image_id": image_id,
            }
        )
    return rows


_VSR_RELATIONS = (
    ("left of", "left", "right"),
    ("right of", "right", "left"),
    ("on top of", "on", "under"),
    ("under", "under", "on"),
    ("above", "above", "below"),
    ("below", "below", "above"),
    ("in front of", "front", "behind"),
    ("behind", "behind", "front"),
)


def _vsr_rows(n: int, rng: random.Random, image_root: Path, size: int) -> list[dict[str, Any]]:
    rows = []
    for index in range(n):
        relation, true_place, false_place = _VSR_RELATIONS[rng.randrange(len(_VSR_RELATIONS))]
        label = index % 2 if index < 2 else rng.randrange(2)
        first, second = _objects(rng, 2)
        folder, image_id = ("val2017", 3_000_000 + index) if index % 3 == 0 else ("train2017", 4_000_000 + index)
        file_name = f"{image_id:012d}.jpg"
        _save(
            _two_object_scene(size, first, second, true_place if label else false_place),
            image_root / folder / file_name,
        )
        rows.append(
            {
                "image": file_name,
                "image_link": f"http://images.cocodataset.org/{folder}/{file_name}",
                "caption": f"The {_noun(first)} {_verb(first)} {relation} the {_noun(second)}.",
                "label": label,
                "relation": relation,
                "annotator_id": rng.randrange(100),
                "vote_true_validator_id": [rng.randrange(100)] if label else [],
                "vote_false_validator_id": [] if label else [rng.randrange(100)],
            }
        )
    return rows


def make_rows(config: str, n: int, seed: int, image_root: Path, image_size: int = 80) -> list[dict[str, Any]]:
    """Generate ``n`` rows of ``config`` and write their images under ``image_root``."""
    rng = random.Random(f"adaptvis-synthetic:{seed}:{config}")
    if config in _CONTROLLED:
        return _controlled_rows(config, n, rng, image_root, image_size)
    if config.startswith("COCO_"):
        return _coco_rows(config, n, rng, image_root, image_size)
    if config.startswith("VG_"):
        return _vg_rows(config, n, rng, image_root, image_size)
    if config == VSR_SUBSET:
        return _vsr_rows(n, rng, image_root, image_size)
    raise ValueError(f"unknown config {config!r}; expected one of {', '.join(ALL_SUBSETS)}")


def write_rows(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write rows as ``.jsonl`` or ``.parquet`` (by the path's suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([dict(row) for row in rows]), path)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_mirror(
    root: Path | str,
    rows_per_config: int | Mapping[str, int] | str = "small",
    seed: int = 0,
    *,
    file_format: str = "jsonl",
    image_size: int = 80,
) -> tuple[Path, Path]:
    """Write the mirror under ``root`` and return ``(data_dir, image_root)`` = ``(root/data, root/images)``.

    ``rows_per_config``: an int (same count for all seven configs), a mapping (exactly the configs
    to write), ``"small"`` (:data:`SMALL_ROWS`) or ``"paper"`` (the paper's sizes, :data:`PAPER_ROWS`).
    ``file_format``: ``jsonl`` or ``parquet``.
    """
    if file_format not in ("jsonl", "parquet"):
        raise ValueError(f"file_format must be 'jsonl' or 'parquet', got {file_format!r}")
    if isinstance(rows_per_config, str):
        presets = {"small": SMALL_ROWS, "paper": PAPER_ROWS}
        if rows_per_config not in presets:
            raise ValueError(f"rows_per_config preset must be 'small' or 'paper', got {rows_per_config!r}")
        counts = dict(presets[rows_per_config])
    elif isinstance(rows_per_config, int):
        counts = dict.fromkeys(ALL_SUBSETS, rows_per_config)
    else:
        counts = dict(rows_per_config)
    root = Path(root)
    data_dir, image_root = root / "data", root / "images"
    for config, n in counts.items():
        if n < 1:
            raise ValueError(f"{config}: need at least one row, got {n}")
        rows = make_rows(config, n, seed, image_root, image_size)
        write_rows(rows, data_dir / config / f"test.{file_format}")
    return data_dir, image_root


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write a mirror and print the environment variables that select it."""
    parser = argparse.ArgumentParser(prog="python -m adaptvis_tasks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write <root>/data and <root>/images into")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, help="rows per config (default: the small test sizes)")
    size.add_argument("--paper-sizes", action="store_true", help="the paper's row counts (412, 408, 2247, ...)")
    parser.add_argument("--configs", nargs="+", choices=ALL_SUBSETS, help="only these configs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", dest="file_format", choices=("jsonl", "parquet"), default="jsonl")
    args = parser.parse_args(argv)
    base = PAPER_ROWS if args.paper_sizes else SMALL_ROWS
    counts = {
        config: (args.rows if args.rows is not None else base[config]) for config in (args.configs or ALL_SUBSETS)
    }
    data_dir, image_root = write_mirror(args.root, counts, args.seed, file_format=args.file_format)
    print(f"export {DATA_DIR_ENV}={data_dir.resolve()}")
    print(f"export {IMAGE_ROOT_ENV}={image_root.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
