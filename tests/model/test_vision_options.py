"""vision_norm, vision_layer and vision_token_order: this suite's training-free vision-input options.

Each is checked against a straightforward computation written here: the vision tokens are read
where the language model receives them (a pre-hook on the language model's ``inputs_embeds``).
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from model_wrappers.api import adaptvis_generate
from model_wrappers.loading import load_checkpoint
from model_wrappers.methods import MethodArgumentError
from model_wrappers.vision import (
    VisionOptions,
    projector_module,
    sample_permutation,
    text_norm_statistic,
    vision_inputs,
)
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval
from tests.support.model_fixtures import ARCHITECTURES

QUESTIONS = ["Where is the mug in relation to the knife? Answer with left, right, front or behind.", "Where?"]


def _load(path, model_types=("llava", "llava_next")):
    return load_checkpoint(str(path), model_types, "test", torch.device("cpu"))


@pytest.fixture(scope="module")
def llava(tiny_checkpoints):
    return _load(tiny_checkpoints["llava"])


def _images(n: int) -> list[Image.Image]:
    out = []
    for i in range(n):
        image = Image.new("RGB", (60 + 10 * i, 50), (40 * i % 255, 200, 30))
        image.paste((200, 20, 20), (5 + 3 * i, 5, 25 + 3 * i, 30))
        out.append(image)
    return out


def _inputs(loaded, n: int = 2):
    processor = loaded.processor
    if loaded.model_type == "llava":
        prompts = [f"<image>\nUSER: {QUESTIONS[i % 2]}\nASSISTANT:" for i in range(n)]
    else:
        prompts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTIONS[i % 2]}]}],
                add_generation_prompt=True,
            )
            for i in range(n)
        ]
    return processor(images=_images(n), text=prompts, padding=True, return_tensors="pt")


def _lm_input(model, inputs) -> torch.Tensor:
    """The ``inputs_embeds`` the language model receives for a full forward of ``inputs``."""
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach()

    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return captured["embeds"]


def _image_mask(model, inputs) -> torch.Tensor:
    return inputs["input_ids"] == model.config.image_token_id


def _resolved(loaded, **arguments):
    return VisionOptions.from_model_args(**arguments).resolve(loaded.model, loaded.processor.tokenizer)


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"vision_norm": "average"}, "vision_norm='average' must be one of mean, median, max"),
        ({"vision_norm": -1}, "vision_norm=-1 must be one of"),
        ({"vision_norm": "0"}, "vision_norm='0' must be one of"),
        ({"vision_layer": "x"}, "vision_layer='x' must be a vision-encoder layer index"),
        ({"vision_layer": "1|1"}, "vision_layer='1|1' lists a layer twice"),
        (
            {"vision_token_order": "reversed"},
            "vision_token_order='reversed' is not supported; allowed: normal, shuffled",
        ),
    ],
)
def test_invalid_vision_arguments_are_refused_naming_the_argument(arguments, message):
    with pytest.raises(MethodArgumentError) as error:
        VisionOptions.from_model_args(**arguments)
    assert message in str(error.value)


def test_lmms_eval_style_values_are_parsed():
    options = VisionOptions.from_model_args(vision_norm="MEAN", vision_layer="12|16", vision_token_order="shuffled")
    assert (options.norm, options.layer, options.token_order) == ("mean", (12, 16), "shuffled")
    assert VisionOptions.from_model_args(vision_norm=0.83, vision_layer=-2).describe() == {
        "vision_norm": 0.83,
        "vision_layer": -2,
    }
    assert not VisionOptions.from_model_args(vision_norm="none").active
    assert VisionOptions.from_model_args(vision_norm=True).norm == "mean"  # the default statistic


def test_layers_and_lists_the_checkpoint_cannot_take_are_refused(llava, tiny_checkpoints):
    depth = llava.model.config.vision_config.num_hidden_layers
    with pytest.raises(MethodArgumentError, match=f"vision_layer={depth + 1} does not exist"):
        _resolved(llava, vision_layer=depth + 1)
    with pytest.raises(
        MethodArgumentError, match="gives 64-channel features, but this checkpoint's projector takes 32"
    ):
        _resolved(llava, vision_layer="-1|-2")
    qwen = _load(tiny_checkpoints["qwen2_vl"], ("qwen2_vl",))
    with pytest.raises(MethodArgumentError, match="vision_layer is supported for LLaVA checkpoints"):
        _resolved(qwen, vision_layer=-1)
    with pytest.raises(MethodArgumentError, match=r"vision_token_order=shuffled is supported for LLaVA-1\.5"):
        _resolved(qwen, vision_token_order="shuffled")
    llava_next = _load(tiny_checkpoints["llava_next"])
    with pytest.raises(MethodArgumentError, match=r"vision_token_order=shuffled .* 'llava_next' checkpoint"):
        _resolved(llava_next, vision_token_order="shuffled")


# --- vision_norm ---------------------------------------------------------------------------------


def _ordinary_norms(model, tokenizer) -> torch.Tensor:
    """Norms of the embedding rows of every vocabulary entry that is neither special nor added."""
    special = set(tokenizer.all_special_tokens) | {str(t) for t in tokenizer.added_tokens_decoder.values()}
    weight = model.get_input_embeddings().weight
    rows = [i for token, i in tokenizer.get_vocab().items() if token not in special and i < weight.shape[0]]
    return torch.stack([weight[i].detach().float().norm() for i in sorted(rows)])


@pytest.mark.parametrize("statistic", ["mean", "median", "max"])
def test_text_statistics_are_over_the_ordinary_vocabulary(llava, statistic):
    norms = _ordinary_norms(llava.model, llava.processor.tokenizer)
    expected = {"mean": norms.mean(), "median": norms.median(), "max": norms.max()}[statistic]
    assert text_norm_statistic(llava.model, llava.processor.tokenizer, statistic) == pytest.approx(float(expected))
    assert len(norms) < llava.model.get_input_embeddings().weight.shape[0]  # <image>, <pad>, ... are excluded


@pytest.mark.parametrize("model_type", [m for m in ARCHITECTURES if m != "llava_onevision"])
def test_vision_norm_sets_every_vision_token_to_the_target_and_leaves_text_untouched(tiny_checkpoints, model_type):
    loaded = _load(tiny_checkpoints[model_type], (model_type,))
    model, inputs = loaded.model, _inputs(loaded)
    vision = _resolved(loaded, vision_norm="mean")
    target = float(_ordinary_norms(model, loaded.processor.tokenizer).mean())
    assert vision.norm_target == pytest.approx(target, abs=1e-6)
    plain = _lm_input(model, inputs)
    with vision_inputs(model, vision):
        normed = _lm_input(model, inputs)
    mask = _image_mask(model, inputs)
    norms = normed[mask].norm(dim=-1)
    if model_type == "llava_next":
        # the image_newline separators of LLaVA-1.6 are not projector outputs and keep their norm
        newline = model.model.image_newline.detach()
        is_newline = (normed[mask] == newline).all(dim=-1)
        assert bool(is_newline.any())
        norms = norms[~is_newline]
    assert torch.allclose(norms, torch.full_like(norms, target), atol=1e-4)
    assert torch.equal(normed[~mask], plain[~mask])
    cosine = torch.nn.functional.cosine_similarity(normed[mask], plain[mask], dim=-1)
    assert bool((cosine > 1 - 1e-5).all())  # directions are kept: only the length changes


def test_onevision_vision_norm_holds_until_the_anyres_downsampling_mixes_tokens(tiny_checkpoints):
    """A known deviation (docs/guides/FAMILIES.md): the norm is set on projector outputs, and the bilinear
    downsampling of OneVision's over-budget tile grid then averages them to shorter vectors."""
    loaded = _load(tiny_checkpoints["llava_onevision"], ("llava_onevision",))
    model, inputs = loaded.model, _inputs(loaded)
    vision = _resolved(loaded, vision_norm="mean")
    with vision_inputs(model, vision):
        normed = _lm_input(model, inputs)
    tokens = normed[_image_mask(model, inputs)]
    side = model.config.vision_config.image_size // model.config.vision_config.patch_size
    base = tokens[: side * side].norm(dim=-1)  # the base image: projector outputs as they are
    assert torch.allclose(base, torch.full_like(base, vision.norm_target), atol=1e-4)
    tiles = tokens[side * side :]
    tiles = tiles[~(tiles == model.model.image_newline.detach()).all(dim=-1)].norm(dim=-1)
    assert bool((tiles < vision.norm_target - 1e-3).any())  # what a fix would change


def test_a_numeric_vision_norm_is_the_target_itself(llava):
    inputs = _inputs(llava)
    with vision_inputs(llava.model, _resolved(llava, vision_norm=0.83)):
        tokens = _lm_input(llava.model, inputs)[_image_mask(llava.model, inputs)]
    assert torch.allclose(tokens.norm(dim=-1), torch.full((tokens.shape[0],), 0.83), atol=1e-4)


# --- vision_layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [0, 1, -1, -3])
def test_vision_layer_equals_a_manual_extraction_at_that_layer(llava, layer):
    model, inputs = llava.model, _inputs(llava)
    with torch.no_grad():
        hidden = model.model.vision_tower(inputs["pixel_values"], output_hidden_states=True).hidden_states
        expected = model.model.multi_modal_projector(hidden[layer][:, 1:])  # CLS removed ("default" strategy)
    with vision_inputs(model, _resolved(llava, vision_layer=layer)):
        got = _lm_input(model, inputs)[_image_mask(model, inputs)]
    assert torch.allclose(got, expected.reshape(-1, expected.shape[-1]), atol=1e-5)
    assert model.config.vision_feature_layer == -2  # restored


def test_llava_next_accepts_vision_layer(tiny_checkpoints):
    loaded = _load(tiny_checkpoints["llava_next"])
    inputs = _inputs(loaded)
    default = _lm_input(loaded.model, inputs)
    with vision_inputs(loaded.model, _resolved(loaded, vision_layer=-1)):
        other = _lm_input(loaded.model, inputs)
    mask = _image_mask(loaded.model, inputs)
    assert not torch.allclose(default[mask], other[mask])
    assert torch.equal(default[~mask], other[~mask])


# --- vision_token_order ------------------------------------------------------------------------


def test_shuffled_permutes_each_samples_image_tokens_with_its_own_seeded_permutation(llava):
    model, inputs = llava.model, _inputs(llava, 2)
    mask = _image_mask(model, inputs)
    plain = _lm_input(model, inputs)
    keys = ["sample-a", "sample-b"]
    with vision_inputs(model, _resolved(llava, vision_token_order="shuffled"), sample_keys=keys):
        shuffled = _lm_input(model, inputs)
    assert torch.equal(shuffled[~mask], plain[~mask])
    for row, key in enumerate(keys):
        tokens, original = shuffled[row][mask[row]], plain[row][mask[row]]
        order = sample_permutation(key, tokens.shape[0])
        assert torch.equal(tokens, original[order])
        assert not torch.equal(order, torch.arange(tokens.shape[0]))
    assert not torch.equal(sample_permutation("sample-a", 16), sample_permutation("sample-b", 16))


def test_shuffled_is_batch_and_order_invariant(llava):
    model, inputs = llava.model, _inputs(llava, 2)
    vision = _resolved(llava, vision_token_order="shuffled")
    with vision_inputs(model, vision, sample_keys=["a", "b"]):
        together = _lm_input(model, inputs)
    single = {k: v[1:2] for k, v in inputs.items()}
    with vision_inputs(model, vision, sample_keys=["b"]):
        alone = _lm_input(model, single)
    assert torch.equal(together[1][_image_mask(model, inputs)[1]], alone[0][_image_mask(model, single)[0]])


def test_every_hook_is_removed_after_the_call_even_on_error(llava):
    model, projector = llava.model, projector_module(llava.model)
    before = (len(projector._forward_hooks), len(projector._forward_pre_hooks), model.config.vision_feature_layer)
    vision = _resolved(llava, vision_norm="max", vision_layer=-1, vision_token_order="shuffled")
    with pytest.raises(RuntimeError, match="boom"), vision_inputs(model, vision, sample_keys=["a"]):
        assert len(projector._forward_hooks) == before[0] + 2 and model.config.vision_feature_layer == [-1]
        raise RuntimeError("boom")
    assert (
        len(projector._forward_hooks),
        len(projector._forward_pre_hooks),
        model.config.vision_feature_layer,
    ) == before


@pytest.mark.parametrize(
    "method",
    [
        {},
        {"method": "scaling_vis", "alpha": 0.5},
        {"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5, "threshold": 0.3},
        {"method": "sweep"},
    ],
)
def test_options_combine_with_every_method_through_the_api(llava, method):
    inputs = _inputs(llava, 2)
    common = dict(max_new_tokens=3, tokenizer=llava.processor.tokenizer)
    plain = adaptvis_generate(llava.model, inputs, **method, **common)
    changed = adaptvis_generate(
        llava.model,
        inputs,
        **method,
        **common,
        vision_norm="mean",
        vision_layer=-1,
        vision_token_order="shuffled",
    )
    assert len(changed) == len(plain) == 2 and all(out.tokens for out in changed)
    again = adaptvis_generate(
        llava.model, inputs, **method, **common, vision_norm="mean", vision_layer=-1, vision_token_order="shuffled"
    )
    assert [o.tokens for o in again] == [o.tokens for o in changed]


@pytest.mark.e2e
def test_vision_norm_and_vision_layer_complete_whatsup_with_adapt_vis(tiny_checkpoints, synthetic_mirror, tmp_path):
    args = (
        f"pretrained={tiny_checkpoints['llava']},device=cpu,method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3,"
        "vision_norm=mean,vision_layer=-1"
    )
    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    command = lmms_eval_command("llava_adaptvis", args, "whatsup", tmp_path, "--batch_size", "4", "--limit", "4")
    run = run_lmms_eval(command, env, tmp_path)
    for subset in ("controlled_a", "controlled_b", "coco_one", "coco_two", "vg_one", "vg_two"):
        assert 0.0 <= run.metric(f"whatsup_{subset}", "accuracy") <= 1.0
    assert "'vision_norm': 'mean'" in run.log and "'vision_layer': -1" in run.log


# --- adaptvis norms ------------------------------------------------------------------------------


def test_norms_command_prints_the_three_distributions_and_writes_a_png(tiny_checkpoints, tmp_path, capsys):
    from model_wrappers import cli

    plot, summary = tmp_path / "norms.png", tmp_path / "norms.json"
    code = cli.main(["norms", str(tiny_checkpoints["llava"]), "--plot", str(plot), "--json", str(summary)])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("vision", "text (prompts)", "text (vocabulary)", "mean vision norm / mean vocabulary norm"):
        assert name in printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    stats = json.loads(summary.read_text())["stats"]
    assert stats["vision"]["count"] == 8 * 16  # eight generated images, 16 vision tokens each
    loaded = _load(tiny_checkpoints["llava"])
    assert stats["text (vocabulary)"]["mean"] == pytest.approx(
        float(_ordinary_norms(loaded.model, loaded.processor.tokenizer).mean()), rel=1e-6
    )


def test_norms_command_under_vision_norm_reports_the_target(tiny_checkpoints, tmp_path):
    import json

    from model_wrappers import cli

    summary = tmp_path / "n.json"
    arguments = ["norms", str(tiny_checkpoints["llava"]), "--vision-norm", "2.5", "--plot", str(tmp_path / "p.png")]
    assert cli.main([*arguments, "--json", str(summary)]) == 0
    stats = json.loads(summary.read_text())["stats"]["vision"]
    assert stats["min"] == pytest.approx(2.5, abs=1e-4) and stats["max"] == pytest.approx(2.5, abs=1e-4)


def test_norms_command_names_a_missing_image(tiny_checkpoints, tmp_path, capsys):
    from model_wrappers import cli

    assert cli.main(["norms", str(tiny_checkpoints["llava"]), "--images", str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg is neither an image file nor a folder" in capsys.readouterr().err
