"""Small local copies of lmms-eval's spatial datasets in their real schema, with generated images.

Each builder returns a ``datasets.DatasetDict`` with the split lmms-eval's task reads and the
columns its ``utils.py`` uses (names and types as on the hub). :func:`write_spatial_mirrors`
saves all of them under one root, in the layout ``ADAPTVIS_LMMS_DATA_DIR`` expects.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import datasets
from PIL import Image, ImageDraw

from adaptvis_tasks.spatial import write_mirror

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
SIZES = ((96, 64), (64, 96), (80, 80), (120, 72))


def picture(seed: int) -> Image.Image:
    """Two coloured shapes on a tinted background; size varies with the seed (exercises resizing)."""
    rng = random.Random(seed)
    width, height = SIZES[seed % len(SIZES)]
    image = Image.new("RGB", (width, height), (rng.randrange(180, 255), rng.randrange(180, 255), 230))
    draw = ImageDraw.Draw(image)
    for _ in range(2):
        x, y = rng.randrange(0, width - 20), rng.randrange(0, height - 20)
        draw.rectangle((x, y, x + 18, y + 18), fill=rng.choice(COLOURS))
    return image


def _dataset(rows: list[dict], features: dict, split: str) -> datasets.DatasetDict:
    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows, features=datasets.Features(features))})


def cv_bench(config: str) -> datasets.DatasetDict:
    """nyu-visionx/CV-Bench (``2D``, ``3D`` or ``default`` = both), split ``test``."""
    kinds = {"2D": [("Count", "COCO"), ("Relation", "ADE20K")], "3D": [("Depth", "Omni3D"), ("Distance", "Omni3D")]}
    types = ["2D", "3D"] if config == "default" else [config]
    rows = []
    for kind in types:
        for i in range(6):
            task, source = kinds[kind][i % 2]
            choices = ["lamp", "chair"] if task != "Count" else ["0", "1", "2", "3"]
            rows.append(
                {
                    "idx": i,
                    "type": kind,
                    "task": task,
                    "image": picture(100 * len(kind) + i),
                    "question": f"Which object is closer to the camera, the {choices[0]} or the {choices[1]}?",
                    "choices": choices,
                    "answer": f"({'AB'[i % 2]})",
                    "prompt": f"Which is closer? Select from the choices.\n(A) {choices[0]}\n(B) {choices[1]}",
                    "filename": f"img/{kind}/{task.lower()}/{i:06d}.png",
                    "source": source,
                }
            )
    features = {
        "idx": datasets.Value("int32"),
        "type": datasets.Value("string"),
        "task": datasets.Value("string"),
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "filename": datasets.Value("string"),
        "source": datasets.Value("string"),
    }
    return _dataset(rows, features, "test")


def blink(config: str) -> datasets.DatasetDict:
    """BLINK-Benchmark/BLINK (``Spatial_Relation`` or ``Relative_Depth``), split ``val``; one image each."""
    rows = []
    for i in range(8):
        rows.append(
            {
                "idx": f"val_{config}_{i + 1}",
                "question": "Is the lamp on the left of the chair?",
                "sub_task": config.replace("_", " "),
                "image_1": picture(300 + i),
                "image_2": None,
                "image_3": None,
                "image_4": None,
                "choices": ["yes", "no"],
                "answer": f"({'AB'[i % 2]})",
                "prompt": "Is the lamp on the left of the chair?\nSelect from the following choices.\n(A) yes\n(B) no",
                "explanation": "",
            }
        )
    features = {
        "idx": datasets.Value("string"),
        "question": datasets.Value("string"),
        "sub_task": datasets.Value("string"),
        **{f"image_{k}": datasets.Image() for k in range(1, 5)},
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "explanation": datasets.Value("string"),
    }
    return _dataset(rows, features, "val")


def embspatial() -> datasets.DatasetDict:
    """FlagEval/EmbSpatial-Bench (default config), split ``test``."""
    relations = ("left", "right", "above", "below")
    rows = [
        {
            "question_id": f"mp3d_{i}",
            "question": "How are the sofa and the table positioned in relation to each other in the image?",
            "answer_options": ["The sofa is left of the table.", "The sofa is right of the table.", "above", "below"],
            "answer": i % 4,
            "image": picture(400 + i),
            "relation": relations[i % 4],
            "data_source": ("ai2thor", "mp3d", "scannet")[i % 3],
        }
        for i in range(10)
    ]
    features = {
        "question_id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer_options": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("int64"),
        "image": datasets.Image(),
        "relation": datasets.Value("string"),
        "data_source": datasets.Value("string"),
    }
    return _dataset(rows, features, "test")


def threedsr() -> datasets.DatasetDict:
    """oscarqjh/3DSRBench_lmmseval (config ``3dsr``), split ``test``."""
    categories = ("height_higher", "location_above", "orientation_on_the_left", "multi_object_facing")
    rows = [
        {
            "index": i,
            "question": "Which object is higher in the 3D world space, the lamp or the cup?",
            "A": "the lamp",
            "B": "the cup",
            "C": None,
            "D": None,
            "answer": "AB"[i % 2],
            "category": categories[i % 4],
            "image": picture(500 + i),
        }
        for i in range(10)
    ]
    features = {
        "index": datasets.Value("int64"),
        "question": datasets.Value("string"),
        **{letter: datasets.Value("string") for letter in "ABCD"},
        "answer": datasets.Value("string"),
        "category": datasets.Value("string"),
        "image": datasets.Image(),
    }
    return _dataset(rows, features, "test")


def mmvp() -> datasets.DatasetDict:
    """lmms-lab-eval/MMVP, split ``train``: consecutive pairs with opposite answers (Index is 1-based)."""
    rows = [
        {
            "Index": i + 1,
            "Question": "Is the dog facing left or right from the camera's perspective?",
            "Options": "(a) Left (b) Right",
            "Correct Answer": "(a)" if i % 2 == 0 else "(b)",
            "image": picture(600 + i),
        }
        for i in range(10)
    ]
    features = {
        "Index": datasets.Value("int64"),
        "Question": datasets.Value("string"),
        "Options": datasets.Value("string"),
        "Correct Answer": datasets.Value("string"),
        "image": datasets.Image(),
    }
    return _dataset(rows, features, "train")


def vstar() -> datasets.DatasetDict:
    """lmms-lab-encoder/vstar-bench, split ``test``."""
    rows = [
        {
            "question_id": i,
            "text": "Is the red box on the left or right side of the blue box? (A) left (B) right",
            "label": "AB"[i % 2],
            "category": ("direct_attributes", "relative_position")[i % 2],
            "image": picture(700 + i),
        }
        for i in range(10)
    ]
    features = {
        "question_id": datasets.Value("int64"),
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "category": datasets.Value("string"),
        "image": datasets.Image(),
    }
    return _dataset(rows, features, "test")


MIRRORS: dict[tuple[str, str | None], Callable[[], datasets.DatasetDict]] = {
    ("nyu-visionx/CV-Bench", "default"): lambda: cv_bench("default"),
    ("nyu-visionx/CV-Bench", "2D"): lambda: cv_bench("2D"),
    ("nyu-visionx/CV-Bench", "3D"): lambda: cv_bench("3D"),
    ("BLINK-Benchmark/BLINK", "Spatial_Relation"): lambda: blink("Spatial_Relation"),
    ("BLINK-Benchmark/BLINK", "Relative_Depth"): lambda: blink("Relative_Depth"),
    ("FlagEval/EmbSpatial-Bench", None): embspatial,
    ("oscarqjh/3DSRBench_lmmseval", "3dsr"): threedsr,
    ("lmms-lab-eval/MMVP", None): mmvp,
    ("lmms-lab-encoder/vstar-bench", None): vstar,
}
"""(hub dataset, config) -> builder, for every supported task's dataset."""


def write_spatial_mirrors(root: Path) -> Path:
    """Write every mirror under ``root`` (the value for ``ADAPTVIS_LMMS_DATA_DIR``)."""
    for (path, name), build in MIRRORS.items():
        write_mirror(root, path, name, build())
    return root
