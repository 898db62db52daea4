"""Beyond-semantics checkpoints in the original LLaVA format: converted, loaded, and equal to the original code.

Tiny checkpoints are written in the original layout (``tests/support/original_llava.py``), converted with
the documented command, loaded through the suite's loader, and the vision tokens that reach the
language model are compared with a plain re-implementation of the original ``encode_images``
computed from the ORIGINAL tensors (no product code involved).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from model_wrappers.convert_llava_original import ConversionError, convert
from model_wrappers.loading import load_checkpoint
from model_wrappers.trace import read_trace
from model_wrappers.vision import EXTRAS_FIELD
from tests.model.test_vision_options import _lm_input
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval
from tests.support.original_llava import build_clip_folder, build_original_llava, reference_vision_tokens

PROMPT = "<image>\nUSER: Where is the red square? Answer with left, right, top or bottom.\nASSISTANT:"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Original-format checkpoints and their conversions (the CLI command for one, the function for the rest)."""
    root = tmp_path_factory.mktemp("beyond_semantics")
    clip = build_clip_folder(root / "clip-vit-tiny")
    paths = {"clip": clip}
    # +Normalize +Multilayer, safetensors shards holding the vision tower (as LLaVA training saves it)
    paths["multilayerNorm_src"] = build_original_llava(root / "multilayerNorm", clip, normalize=True, multilayer=True)
    # +Normalize, PyTorch .bin shards without the vision tower (taken from mm_vision_tower)
    paths["normWmean_src"] = build_original_llava(
        root / "normWmean", clip, normalize=True, multilayer=False, include_vision_tower=False, weights_format="bin"
    )
    paths["plain_src"] = build_original_llava(root / "plain", clip, normalize=False, multilayer=False)
    completed = subprocess.run(
        [sys.executable, "-m", "model_wrappers.convert_llava_original", str(paths["multilayerNorm_src"]),
         str(root / "multilayerNorm-hf")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    paths["multilayerNorm"] = root / "multilayerNorm-hf"
    paths["normWmean"] = convert(paths["normWmean_src"], root / "normWmean-hf")
    paths["plain"] = convert(paths["plain_src"], root / "plain-hf")
    return paths


def _image(size=(84, 42)) -> Image.Image:
    image = Image.new("RGB", size, (30, 60, 200))
    image.paste((220, 20, 20), (4, 4, 30, 24))
    image.paste((20, 200, 40), (50, 10, 80, 40))
    return image


def _lm_vision_tokens(model, processor, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """(vision tokens that enter the language model, pixel_values), captured at the LM input."""
    inputs = processor(images=[image], text=[PROMPT], return_tensors="pt")
    embeds = _lm_input(model, inputs)
    mask = inputs["input_ids"] == model.config.image_token_id
    return embeds[mask], inputs["pixel_values"]


def _load(path: Path):
    return load_checkpoint(str(path), ("llava",), "llava_adaptvis", torch.device("cpu"))


@pytest.mark.parametrize("name", ["multilayerNorm", "normWmean", "plain"])
def test_vision_tokens_equal_the_original_encode_images(checkpoints, name):
    loaded = _load(checkpoints[name])
    tokens, pixel_values = _lm_vision_tokens(loaded.model, loaded.processor, _image())
    expected = reference_vision_tokens(checkpoints[f"{name}_src"], checkpoints["clip"], pixel_values)[0]
    assert tokens.shape == expected.shape == (16, 64)
    scale = float(expected.abs().max())
    assert torch.allclose(tokens, expected, atol=1e-4 * max(scale, 1.0), rtol=0), (tokens - expected).abs().max()


def test_normalized_projector_clips_at_1_22_and_scales_by_0_83(checkpoints):
    loaded = _load(checkpoints["normWmean"])
    tokens, _ = _lm_vision_tokens(loaded.model, loaded.processor, _image())
    norms = tokens.norm(dim=-1)
    clipped = torch.isclose(norms, torch.tensor(1.22 * 0.83), atol=1e-5)
    assert bool(clipped.any()) and bool((~clipped).any()), norms  # both branches of the clip occur
    assert bool((norms <= 1.22 * 0.83 + 1e-5).all())


def test_multilayer_features_are_layers_12_16_20_24_with_post_layernorm_and_no_cls(checkpoints):
    path = checkpoints["multilayerNorm"]
    config = json.loads((path / "config.json").read_text())
    assert config["vision_feature_layer"] == [12, 16, 20, 24]
    assert config["vision_feature_select_strategy"] == "default"
    assert config[EXTRAS_FIELD]["per_layer_post_layernorm"] is True
    # transformers' own list-of-layers path (no per-layer post_layernorm) differs from the original:
    # the declared extra is what makes the converted model exact
    from transformers import LlavaForConditionalGeneration

    loaded = _load(path)
    bare = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    with_extras, _ = _lm_vision_tokens(loaded.model, loaded.processor, _image())
    without, _ = _lm_vision_tokens(bare, loaded.processor, _image())
    assert (with_extras - without).abs().max() > 1e-2


def test_pad_preprocessing_is_llavas_expand2square_with_the_mean_colour(checkpoints):
    from transformers import CLIPImageProcessor

    loaded = _load(checkpoints["plain"])
    image = _image((84, 42))
    got = loaded.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    clip = CLIPImageProcessor.from_pretrained(checkpoints["clip"])
    background = tuple(int(x * 255) for x in clip.image_mean)
    square = Image.new("RGB", (84, 84), background)
    square.paste(image, (0, (84 - 42) // 2))  # llava.mm_utils.expand2square for a wide image
    expected = clip(images=[square], return_tensors="pt")["pixel_values"]
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 0.05  # resampling backends differ by rounding only


def test_greedy_answers_never_pick_the_added_image_token(checkpoints):
    loaded = _load(checkpoints["plain"])
    model, processor = loaded.model, loaded.processor
    inputs = processor(images=[_image()], text=[PROMPT], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    image_id = model.config.image_token_id
    assert image_id == logits.shape[-1] - 1
    others = torch.cat([logits[:, :image_id], logits[:, image_id + 1 :]], dim=-1)
    assert bool((logits[:, image_id] < others.max(dim=-1).values).all())


def test_unsupported_original_checkpoints_are_refused_with_the_reason(checkpoints, tmp_path):
    source = checkpoints["plain_src"]
    bad = tmp_path / "spatial"
    bad.mkdir()
    for item in source.iterdir():
        (bad / item.name).write_bytes(item.read_bytes())
    config = json.loads((bad / "config.json").read_text())
    config["add_spatial_coordinates"] = True
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="sets add_spatial_coordinates"):
        convert(bad, tmp_path / "out")
    config["add_spatial_coordinates"] = False
    config["normalize_projector"] = True  # claims a normalised projector that the weights do not have
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="unexpected normalized-projector tensor"):
        convert(bad, tmp_path / "out")
    with pytest.raises(ConversionError, match=r"no config\.json"):
        convert(tmp_path / "nowhere", tmp_path / "out")


def test_missing_extras_weights_stop_the_load_naming_the_file(checkpoints, tmp_path):
    from model_wrappers.loading import CheckpointError

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in checkpoints["normWmean"].iterdir():
        if item.name != "adaptvis_vision_extras.safetensors":
            (broken / item.name).write_bytes(item.read_bytes())
    with pytest.raises(CheckpointError, match=r"adaptvis_vision_extras\.safetensors"):
        _load(broken)


@pytest.mark.e2e
def test_original_multilayer_norm_checkpoint_runs_whatsup_with_adapt_vis_and_shuffled_sweep(
    checkpoints, synthetic_mirror, tmp_path
):
    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    path = checkpoints["multilayerNorm"]
    args = f"pretrained={path},device=cpu,method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3"
    run = run_lmms_eval(
        lmms_eval_command("llava_adaptvis", args, "whatsup", tmp_path / "a", "--batch_size", "4"), env, tmp_path / "a"
    )
    for subset in ("controlled_a", "controlled_b", "coco_one", "coco_two", "vg_one", "vg_two"):
        assert 0.0 <= run.metric(f"whatsup_{subset}", "accuracy") <= 1.0
    trace = tmp_path / "shuffled.jsonl"
    args = f"pretrained={path},device=cpu,method=sweep,alphas=0.5|2.0,vision_token_order=shuffled,trace={trace}"
    # the probe's own mechanics are tested in test_vision_options.py; here 4 documents per subset
    command = lmms_eval_command("llava_adaptvis", args, "whatsup", tmp_path / "s", "--batch_size", "3", "--limit", "4")
    shuffled = run_lmms_eval(command, env, tmp_path / "s")
    records = list(read_trace(trace))
    assert len(records) == sum(v["effective"] for v in shuffled.results["n-samples"].values())
    assert len({r["run"] for r in records if r["task"] == "whatsup_controlled_a"}) == 1
    for subset in ("controlled_a", "vg_two"):
        assert 0.0 <= shuffled.metric(f"whatsup_{subset}", "accuracy") <= 1.0


def test_vision_layer_lists_fit_only_the_multilayer_projector(checkpoints):
    from model_wrappers.methods import MethodArgumentError
    from model_wrappers.vision import VisionOptions, vision_inputs

    loaded = _load(checkpoints["multilayerNorm"])
    tokenizer = loaded.processor.tokenizer
    default, _ = _lm_vision_tokens(loaded.model, loaded.processor, _image())
    same = VisionOptions.from_model_args(vision_layer="12|16|20|24").resolve(loaded.model, tokenizer)
    with vision_inputs(loaded.model, same):
        explicit, _ = _lm_vision_tokens(loaded.model, loaded.processor, _image())
    assert torch.equal(default, explicit)
    with pytest.raises(
        MethodArgumentError, match=r"projector takes 64 \(4 concatenated layer\(s\) of width 16\); give 4"
    ):
        VisionOptions.from_model_args(vision_layer=-2).resolve(loaded.model, tokenizer)
