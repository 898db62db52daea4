"""``adaptvis attention``: the last prompt token's attention over the image grid, before and after Eq. 2.

Tiny random checkpoints of every family. The "before" weights are checked against
transformers' own eager attention (``output_attentions=True``), the "after" pass against the
suite's fused intervention, and the PNGs against the grid each architecture defines.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from model_wrappers import cli
from model_wrappers.analysis import attention
from model_wrappers.api import adaptvis_generate
from tests.support.model_fixtures import ARCHITECTURES, MROPE_ARCHITECTURES

QUESTION = "Where is the mug in relation to the knife? Answer with left, right, on or under."


def _image() -> Image.Image:
    image = Image.new("RGB", (96, 64), (230, 230, 230))
    image.paste((200, 20, 20), (10, 10, 40, 40))
    image.paste((20, 20, 200), (60, 20, 90, 50))
    return image


def _load(path):
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    return AutoModelForImageTextToText.from_pretrained(path).eval(), processor


@pytest.mark.parametrize("family", ARCHITECTURES)
def test_before_equals_eager_attention_and_after_matches_the_fused_intervention(family, tiny_checkpoints):
    model, processor = _load(tiny_checkpoints[family])
    image = _image()
    result = attention.run_attention(model, processor, image, QUESTION, "scaling_vis", alpha=2.0)
    assert model.config.get_text_config()._attn_implementation == "sdpa"  # restored
    eager, _ = _load(tiny_checkpoints[family])
    eager.set_attn_implementation("eager")
    inputs = processor(images=[image], text=[result.prompt], return_tensors="pt")
    with torch.no_grad():
        attentions = eager(**inputs, output_attentions=True).attentions
    for layer in result.layers:
        expected = attentions[layer][0, :, -1, :].float().mean(dim=0)
        assert torch.allclose(result.before[layer], expected, atol=1e-5), (family, layer)
        assert not torch.allclose(result.before[layer], result.after[layer], atol=1e-6), (family, layer)
    [fused] = adaptvis_generate(model, inputs, "scaling_vis", alpha=2.0, max_new_tokens=1)
    assert fused.tokens[0] == int(result.first_token_logits_after.argmax())
    [adapt] = adaptvis_generate(model, inputs, "adapt_vis", alpha1=0.5, alpha2=2.0, threshold=0.5, max_new_tokens=1)
    assert result.confidence == pytest.approx(adapt.confidence, abs=1e-5)


@pytest.mark.parametrize("family", ARCHITECTURES)
def test_grids_follow_each_architecture(family, tiny_checkpoints):
    model, processor = _load(tiny_checkpoints[family])
    result = attention.run_attention(model, processor, _image(), QUESTION, "baseline")
    n_image = int(result.image_columns.sum())
    parts = {name: (rows, cols, stride) for name, _, rows, cols, stride in result.grid.parts}
    if family == "llava":
        side = model.config.vision_config.image_size // model.config.vision_config.patch_size
        assert parts == {"image": (side, side, side)} and n_image == side * side
    elif family in MROPE_ARCHITECTURES:
        inputs = processor(images=[_image()], text=[result.prompt], return_tensors="pt")
        _, h, w = (int(v) for v in inputs["image_grid_thw"][0])
        merge = model.config.vision_config.spatial_merge_size
        assert parts == {"image": (h // merge, w // merge, w // merge)} and n_image == h * w // merge**2
    else:
        side = model.config.vision_config.image_size // model.config.vision_config.patch_size
        rows, cols, stride = parts["tiles"]
        assert parts["base"] == (side, side, side) and stride == cols + 1  # one image_newline per row
        assert n_image == side * side + rows * stride
    for layer in result.layers:  # alpha = 1: identical maps
        assert torch.equal(result.before[layer], result.after[layer])


def test_command_writes_pngs_of_the_grid_shape_and_the_share_table(tiny_llava, tmp_path, capsys):
    image_path = tmp_path / "scene.png"
    _image().save(image_path)
    out = tmp_path / "maps"
    args = ["attention", "--pretrained", str(tiny_llava), "--image", str(image_path), "--question", QUESTION]
    assert cli.main([*args, "--method", "scaling_vis", "--alpha", "0.5", "--output-dir", str(out)]) == 0
    model, _ = _load(tiny_llava)
    side = model.config.vision_config.image_size // model.config.vision_config.patch_size
    layers = model.config.text_config.num_hidden_layers
    for layer in range(layers):
        for which in ("before", "after"):
            with Image.open(out / f"grid_layer{layer:02d}_{which}.png") as grid:
                assert grid.size == (side, side)
            assert (out / f"layer{layer:02d}_{which}.png").stat().st_size > 0
    assert (out / "grid_layer00_before.png").read_bytes() != (out / "grid_layer00_after.png").read_bytes()
    rows = (out / "attention_share.csv").read_text().splitlines()
    assert rows[0] == "layer,image_before,text_before,image_after,text_after" and len(rows) == 1 + layers
    first = [float(v) for v in rows[1].split(",")]
    assert first[1] + first[2] == pytest.approx(1.0) and first[3] + first[4] == pytest.approx(1.0)
    assert first[1] != first[3]  # Eq. 2 moved attention mass between image and text in layer 0
    capsys.readouterr()
    assert cli.main([*args, "--method", "adapt_vis", "--alpha1", "0.5", "--output-dir", str(out)]) == 2
    assert "--method adapt_vis needs --alpha2, --threshold" in capsys.readouterr().err
