"""The PNGs the tools write, read back: what a reader needs is in the pixels.

Colour bars on attention overlays, grid maps enlarged without smoothing, integer layer ticks, one
colour per relation across the panels of ``curves.png`` with legends off the data, and a visible
vision histogram in ``norms.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from adaptvis_tasks.analysis import curves
from model_wrappers import cli
from model_wrappers.analysis import norms

QUESTION = "Where is the mug in relation to the knife? Answer with left, right, on or under."


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour: str | tuple[int, int, int], tolerance: int = 0) -> int:
    rgb = np.array([round(c * 255) for c in to_rgb(colour)] if isinstance(colour, str) else colour)
    return int((np.abs(pixels - rgb).max(axis=-1) <= tolerance).sum())


def _tick_marks_below_the_x_axis(pixels: np.ndarray) -> int:
    """Tick marks hanging from the bottom spine (the lowest long dark row) of a single-axes plot."""
    dark = pixels.max(axis=-1) < 90
    lengths = dark.sum(axis=1)
    spine = max(row for row in range(len(dark)) if lengths[row] > 0.5 * dark.shape[1])
    columns = np.nonzero(dark[spine])[0]
    runs = np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1)
    axis_line = max(runs, key=len)  # the spine itself, not the tick labels beside it
    below = dark[spine + 3, axis_line.min() : axis_line.max() + 1]
    return int(np.sum(below[1:] & ~below[:-1]) + below[0])


@pytest.fixture(scope="module")
def attention_maps(tiny_llava, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps")
    image = Image.new("RGB", (96, 64), (230, 230, 230))
    image.paste((200, 20, 20), (10, 10, 40, 40))
    path = out / "scene.png"
    image.save(path)
    args = ["attention", "--pretrained", str(tiny_llava), "--image", str(path), "--question", QUESTION]
    return out / "maps", [*args, "--method", "scaling_vis", "--alpha", "2.0", "--output-dir", str(out / "maps")]


def test_attention_pictures_colour_bar_large_grid_integer_ticks_and_the_printed_summary(
    attention_maps, tiny_llava, capsys
):
    out, args = attention_maps
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "answer before (alpha = 1):" in printed and "answer after (alpha = 2):" in printed
    assert f"wrote to {out}:" in printed and "grid_layer<L>_{before,after}_large.png" in printed
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_llava)
    side = config.vision_config.image_size // config.vision_config.patch_size
    layers = config.text_config.num_hidden_layers
    for layer in range(layers):
        for which in ("before", "after"):
            overlay = _pixels(out / f"layer{layer:02d}_{which}.png")
            right = overlay[:, int(overlay.shape[1] * 0.7) :]
            # jet's two ends, opaque: only the colour bar has them (the overlay is blended with the image)
            assert _count(right, (127, 0, 0), 12) > 20 and _count(right, (0, 0, 140), 14) > 20
            raw = _pixels(out / f"grid_layer{layer:02d}_{which}.png")
            large = _pixels(out / f"grid_layer{layer:02d}_{which}_large.png")
            assert raw.shape[:2] == (side, side)
            factor = large.shape[0] // side
            assert large.shape[:2] == (side * factor, side * factor) and large.shape[0] >= 256
            assert np.array_equal(large, np.kron(raw, np.ones((factor, factor, 1), dtype=int)))  # nearest, exact
    assert _tick_marks_below_the_x_axis(_pixels(out / "attention_share.png")) == layers


def _curve_rows() -> list[dict]:
    rows = []
    for task, relations in (("task_a", ("left", "on", "right", "under")), ("task_b", ("behind", "front", "left"))):
        for offset, relation in enumerate((*relations, "all")):
            for alpha in (0.5, 1.0, 2.0):
                value = 0.2 + 0.15 * offset + 0.05 * alpha
                rows.append(
                    {
                        "task": task,
                        "relation": relation,
                        "alpha": alpha,
                        "n": 5,
                        "accuracy": value,
                        "mean_confidence": value,
                    }
                )
    return rows


def test_curves_one_colour_per_relation_in_every_panel_and_legends_off_the_data(tmp_path):
    rows = _curve_rows()
    path = curves.plot(rows, tmp_path / "curves.png")
    pixels = _pixels(path)
    half = pixels.shape[1] // 2
    left, right = pixels[:, :half], pixels[:, half:]
    colours = curves.relation_colours(rows)
    assert len(set(colours.values())) == len(colours)
    for relation in ("left", "all"):  # in both tasks: the same colour in both columns
        assert _count(left, colours[relation]) > 50 and _count(right, colours[relation]) > 50, relation
    for relation in ("on", "right", "under"):  # task_a only
        assert _count(left, colours[relation]) > 50 and _count(right, colours[relation]) == 0, relation
    for relation in ("behind", "front"):  # task_b only
        assert _count(right, colours[relation]) > 50 and _count(left, colours[relation]) == 0, relation
    figure = curves.figure_of(rows)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [axis.get_legend() for axis in figure.axes if axis.get_legend() is not None]
    assert len(legends) == 2
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axis in figure.axes:
            assert not box.overlaps(axis.get_window_extent(renderer))


def test_norms_vision_histogram_is_visible(tmp_path):
    rng = np.random.default_rng(0)
    values = {
        "vision": rng.uniform(2.0, 10.0, 128),  # few tokens, spread over a decade
        "text (prompts)": rng.normal(0.26, 0.02, 116),
        "text (vocabulary)": rng.normal(0.24, 0.02, 400),
    }
    path = tmp_path / "norms.png"
    norms.plot(values, path, "toy\nmean vision norm / mean vocabulary norm = 25")
    pixels = _pixels(path)
    vision_colour = "#1f77b4"  # matplotlib's first colour: the vision panel
    assert _count(pixels, vision_colour) > 0.01 * pixels.shape[0] * pixels.shape[1]
    top = pixels[: pixels.shape[0] // 3]
    assert _count(top, vision_colour) > 0.9 * _count(pixels, vision_colour)  # its own panel, at the top
