"""Eq. 2 / Eq. 3 as implemented equal an explicit eager implementation of the paper's definition.

The reference below is deliberately naive and independent of the product code: one full forward
pass over the whole prompt (no KV cache, no split of the last token), attention logits
``Q K^T * scale`` materialised, the row of the last prompt token multiplied by alpha on the
image-token columns (before the mask), then mask, softmax and ``@ V`` -- in every chosen layer.
"""

from __future__ import annotations

import contextvars

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AttentionInterface, AutoModelForImageTextToText, AutoProcessor
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import DecodeSettings, first_token_logits, generate
from model_wrappers.intervention import (
    adaptvis_alpha,
    compared_confidence,
    enable_image_attention_scaling,
    image_scaling_backend,
    text_attention_implementation,
)
from model_wrappers.methods import PAPER_ALPHA_GRID, MethodConfig
from tests.support.model_fixtures import ARCHITECTURES, MROPE_ARCHITECTURES

_REFERENCE = contextvars.ContextVar("eq2_reference", default=None)


def eq2_reference_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    logits = torch.matmul(query, key.transpose(2, 3)) * scaling  # A = Q K^T / sqrt(d)
    setting = _REFERENCE.get()
    if setting is not None and (setting["layers"] is None or module.layer_idx in setting["layers"]):
        row = setting["row"]  # the last prompt token
        image_columns = setting["image_mask"][:, None, :]
        alpha = setting["alpha"][:, None, None]
        logits[:, :, row, :] = torch.where(image_columns, alpha * logits[:, :, row, :], logits[:, :, row, :])
    if attention_mask is not None:
        logits = logits + attention_mask[:, :, :, : key.shape[-2]]
    probs = torch.softmax(logits.float(), dim=-1).to(query.dtype)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


AttentionInterface.register("eq2_reference", eq2_reference_attention)
AttentionMaskInterface.register("eq2_reference", ALL_MASK_ATTENTION_FUNCTIONS["eager"])

QUESTIONS = [
    "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under.",
    "Where is it?",
    "Where is the dining table in the photo? Answer with left, right, top or bottom.",
    "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    "Is the cat on the left of the dog?",
    "Where are the black trees in relation to the fence? \nAnswer with left, right, front, behind, above or below.",
    "Where?",
    "Where is the refrigerator in relation to the oven? Answer with left, right, above, or below.",
]
SIZES = [(80, 60), (60, 90), (56, 56), (100, 40), (70, 70), (90, 90), (64, 48), (48, 120)]
COLOURS = [
    (200, 10, 10),
    (10, 200, 10),
    (10, 10, 200),
    (120, 120, 0),
    (0, 120, 120),
    (90, 30, 160),
    (250, 250, 250),
    (5, 5, 5),
]


def _image(i: int) -> Image.Image:
    image = Image.new("RGB", SIZES[i], COLOURS[i])
    image.paste(
        (255 - COLOURS[i][0], 128, 40), (SIZES[i][0] // 4, SIZES[i][1] // 4, SIZES[i][0] // 2, SIZES[i][1] // 2)
    )
    return image


def _prompt(processor, model_type: str, question: str) -> str:
    if model_type == "llava":
        return f"<image>\nUSER: {question}\nASSISTANT:"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class Bench:
    """A tiny checkpoint loaded twice: with the adaptvis backend, and with the eager reference."""

    def __init__(self, path, model_type: str) -> None:
        self.model_type = model_type
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        enable_image_attention_scaling(self.model)
        self.reference = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        self.reference.set_attn_implementation({"text_config": "eq2_reference"})

    def inputs(self, indices):
        texts = [_prompt(self.processor, self.model_type, QUESTIONS[i]) for i in indices]
        return self.processor(images=[_image(i) for i in indices], text=texts, padding=True, return_tensors="pt")

    def reference_forward(self, inputs, alpha, layers=None, row=None, extra_ids=None):
        """Full forward of prompt (+ ``extra_ids``) with Eq. 2 on ``row``; returns last-position logits."""
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        prompt_length = input_ids.shape[1]
        if extra_ids is not None:
            input_ids = torch.cat([input_ids, extra_ids], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(extra_ids)], dim=1)
        kwargs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        if self.model_type in MROPE_ARCHITECTURES:
            mm = inputs["mm_token_type_ids"]
            if extra_ids is not None:
                mm = torch.cat([mm, torch.zeros_like(extra_ids, dtype=mm.dtype)], dim=1)
            kwargs["mm_token_type_ids"] = mm
        else:  # what transformers' generate() passes for left-padded Llama-family batches
            kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        image_mask = torch.nn.functional.pad(
            inputs["input_ids"] == self.model.config.image_token_id, (0, input_ids.shape[1] - prompt_length)
        )
        setting = {
            "row": prompt_length - 1 if row is None else row,
            "image_mask": image_mask,
            "alpha": torch.full((input_ids.shape[0],), float(alpha)),
            "layers": None if layers is None else set(layers),
        }
        if self.model_type in MROPE_ARCHITECTURES:
            self.reference.model.rope_deltas = None
        token = _REFERENCE.set(setting)
        try:
            with torch.no_grad():
                out = self.reference(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        finally:
            _REFERENCE.reset(token)
        return out.logits[:, -1].float()

    def ours(self, inputs, alpha, layers=None):
        batch = prompt_batch(self.model, inputs)
        alphas = torch.full((batch.batch_size,), float(alpha))
        return first_token_logits(self.model, batch, alphas, layers)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def bench(request, tiny_checkpoints) -> Bench:
    return Bench(tiny_checkpoints[request.param], request.param)


SETTINGS = DecodeSettings(max_new_tokens=6, eos_token_ids=(), pad_token_id=0)


def _generate(bench: Bench, indices, method: MethodConfig, settings=SETTINGS):
    return generate(bench.model, prompt_batch(bench.model, bench.inputs(indices)), method, settings)


@pytest.mark.parametrize("alpha", PAPER_ALPHA_GRID)
def test_first_token_probabilities_equal_eager_eq2_at_batch_1_and_4(bench, alpha):
    for indices in ([0], [1], [0, 1, 2, 3]):
        inputs = bench.inputs(indices)
        reference = torch.softmax(bench.reference_forward(inputs, alpha), dim=-1)
        ours = torch.softmax(bench.ours(inputs, alpha), dim=-1)
        assert (ours - reference).abs().max().item() < 1e-4
    # the prompts of the batch differ in length, so rows really are left-padded
    assert len(set(bench.inputs([0, 1, 2, 3])["attention_mask"].sum(-1).tolist())) > 1


def test_the_intervention_changes_the_distribution(bench):
    """Guards the test above against a vacuous pass on flat distributions."""
    inputs = bench.inputs([0, 1])
    plain = torch.softmax(bench.ours(inputs, 1.0), dim=-1)
    for alpha in (0.5, 2.0):
        changed = torch.softmax(bench.ours(inputs, alpha), dim=-1)
        assert (changed - plain).abs().max().item() > 1e-2
    assert plain.max().item() > 0.05


def test_only_the_chosen_layers_are_intervened(bench):
    inputs = bench.inputs([0, 3])
    reference = torch.softmax(bench.reference_forward(inputs, 2.0, layers=[1]), dim=-1)
    ours = torch.softmax(bench.ours(inputs, 2.0, layers=[1]), dim=-1)
    assert (ours - reference).abs().max().item() < 1e-4
    everywhere = torch.softmax(bench.ours(inputs, 2.0), dim=-1)
    assert (everywhere - ours).abs().max().item() > 1e-3


def test_decoding_steps_after_the_first_token_are_not_intervened(bench):
    """Greedy answers equal a cache-free reference that scales only the last prompt token's row."""
    indices = [0, 2]
    inputs = bench.inputs(indices)
    ours = _generate(bench, indices, MethodConfig.from_model_args(method="scaling_vis", alpha=0.5))
    generated = torch.empty((2, 0), dtype=torch.long)
    for _ in range(SETTINGS.max_new_tokens):
        logits = bench.reference_forward(inputs, 0.5, extra_ids=generated)
        generated = torch.cat([generated, logits.argmax(-1, keepdim=True)], dim=1)
    assert [out.tokens for out in ours] == generated.tolist()


def test_alpha_one_reproduces_the_baseline_exactly(bench):
    indices = [0, 1, 2]
    baseline = _generate(bench, indices, MethodConfig.from_model_args(method="baseline"))
    scaled = _generate(bench, indices, MethodConfig.from_model_args(method="scaling_vis", alpha=1.0))
    assert [o.tokens for o in scaled] == [o.tokens for o in baseline]
    assert [o.confidence for o in scaled] == [o.confidence for o in baseline]
    inputs = bench.inputs(indices)
    batch = prompt_batch(bench.model, inputs)
    assert torch.equal(first_token_logits(bench.model, batch, None), bench.ours(inputs, 1.0))
    assert all(o.alpha is None for o in baseline) and all(o.alpha == 1.0 for o in scaled)


def test_adaptvis_switches_exactly_at_the_threshold(bench):
    indices = [0]
    confidence = _generate(bench, indices, MethodConfig.from_model_args(method="baseline"))[0].confidence
    rounded = float(np.round(confidence, 2))
    cases = {
        ("paper_rounded", rounded): 2.0,  # C == beta is not "< beta": sharpen
        ("paper_rounded", min(1.0, rounded + 0.01)): 0.5,
        ("unrounded", confidence): 2.0,
        ("unrounded", float(np.nextafter(confidence, 1.0))): 0.5,
    }
    for (rule, threshold), expected_alpha in cases.items():
        method = MethodConfig.from_model_args(
            method="adapt_vis", alpha1=0.5, alpha2=2.0, threshold=threshold, confidence_rule=rule
        )
        out = _generate(bench, indices, method)[0]
        assert out.alpha == expected_alpha, (rule, threshold, confidence)
        assert out.confidence == confidence
        alone = _generate(bench, indices, MethodConfig.from_model_args(method="scaling_vis", alpha=expected_alpha))[0]
        assert out.tokens == alone.tokens


def test_adaptvis_chooses_per_row_within_a_batch(bench):
    indices = [0, 1, 2, 3]
    confidences = [o.confidence for o in _generate(bench, indices, MethodConfig.from_model_args(method="baseline"))]
    threshold = float(np.round(np.median(confidences), 2))
    method = MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=threshold)
    outputs = _generate(bench, indices, method)
    for out, confidence, i in zip(outputs, confidences, indices, strict=True):
        expected = adaptvis_alpha(confidence, threshold, 0.5, 1.5)
        assert out.alpha == expected
        single = _generate(bench, [i], MethodConfig.from_model_args(method="scaling_vis", alpha=expected))[0]
        assert out.tokens == single.tokens


def test_sweep_answers_equal_separate_scaling_vis_runs(bench):
    indices = [0, 1, 2]
    sweep = _generate(bench, indices, MethodConfig.from_model_args(method="sweep", alphas="0.5|0.8|1.2|1.5|2.0"))
    baseline = _generate(bench, indices, MethodConfig.from_model_args(method="baseline"))
    for alpha in PAPER_ALPHA_GRID:
        separate = _generate(bench, indices, MethodConfig.from_model_args(method="scaling_vis", alpha=alpha))
        assert [o.sweep[alpha] for o in sweep] == [o.tokens for o in separate]
    assert [o.tokens for o in sweep] == [o.tokens for o in baseline]
    assert [o.sweep[1.0] for o in sweep] == [o.tokens for o in baseline]
    assert [o.confidence for o in sweep] == [o.confidence for o in baseline]


@pytest.mark.parametrize(
    "method",
    [
        {"method": "baseline"},
        {"method": "scaling_vis", "alpha": 0.5},
        {"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5, "threshold": 0.4},
        {"method": "sweep", "alphas": "0.5|2.0"},
    ],
    ids=lambda m: m["method"],
)
def test_answers_are_identical_at_batch_sizes_1_4_and_8(bench, method):
    config = MethodConfig.from_model_args(**method)
    all_indices = list(range(8))
    by_size = {}
    for size in (1, 4, 8):
        outputs = []
        for start in range(0, 8, size):
            outputs.extend(_generate(bench, all_indices[start : start + size], config))
        by_size[size] = [(o.tokens, o.alpha, o.sweep) for o in outputs]
    assert by_size[1] == by_size[4] == by_size[8]


def test_confidence_is_the_largest_first_token_probability(bench):
    inputs = bench.inputs([0, 1])
    probabilities = torch.softmax(bench.reference_forward(inputs, 1.0), dim=-1)
    outputs = _generate(bench, [0, 1], MethodConfig.from_model_args(method="baseline"))
    assert [o.confidence for o in outputs] == pytest.approx(probabilities.max(-1).values.tolist(), abs=1e-5)


def test_the_vision_tower_keeps_its_own_attention_backend(bench):
    assert text_attention_implementation(bench.model) == "adaptvis_sdpa"
    assert bench.model.config.vision_config._attn_implementation == "sdpa"


def test_the_scoped_backend_restores_the_previous_one(tiny_llava):
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava).eval()
    assert text_attention_implementation(model) == "sdpa"
    with image_scaling_backend(model):
        assert text_attention_implementation(model) == "adaptvis_sdpa"
    assert text_attention_implementation(model) == "sdpa"


def test_paper_rounding_matches_numpy_round():
    assert compared_confidence(0.295, "paper_rounded") == float(np.round(0.295, 2))
    assert compared_confidence(0.125, "paper_rounded") == 0.12  # numpy rounds half to even
    assert compared_confidence(0.2999, "unrounded") == 0.2999
    assert adaptvis_alpha(0.2999, 0.3, 0.5, 1.5) == 1.5  # rounds to 0.30, not below 0.30
    assert adaptvis_alpha(0.2999, 0.3, 0.5, 1.5, rule="unrounded") == 0.5


def test_sweep_records_the_first_token_confidence_under_every_alpha(bench):
    """C per alpha (Figure 8): the largest first-token probability under Eq. 2 at that alpha, per sample."""
    indices = [0, 1, 2]
    sweep = _generate(bench, indices, MethodConfig.from_model_args(method="sweep", alphas="0.5|0.8|1.2|1.5|2.0"))
    inputs = bench.inputs(indices)
    for alpha in (1.0, *PAPER_ALPHA_GRID):
        expected = torch.softmax(bench.reference_forward(inputs, alpha), dim=-1).max(dim=-1).values
        recorded = torch.tensor([o.sweep_confidence[alpha] for o in sweep])
        assert (recorded - expected).abs().max().item() < 1e-4, alpha
    assert [o.sweep_confidence[1.0] for o in sweep] == pytest.approx([o.confidence for o in sweep], abs=1e-6)


def test_baseline_answers_equal_plain_generate_on_a_left_padded_batch_of_mixed_image_sizes(bench):
    """method=baseline is the family's own greedy ``generate()`` on the same processor outputs."""
    indices = [0, 1, 2, 3]
    inputs = bench.inputs(indices)
    assert len(set(inputs["attention_mask"].sum(-1).tolist())) > 1  # really left-padded
    eos = int(bench.model.generation_config.eos_token_id)
    pad = int(bench.processor.tokenizer.pad_token_id)
    settings = DecodeSettings(max_new_tokens=6, eos_token_ids=(eos,), pad_token_id=pad)
    ours = _generate(bench, indices, MethodConfig.from_model_args(method="baseline"), settings)
    with torch.no_grad():
        plain = bench.model.generate(**inputs, do_sample=False, max_new_tokens=6, eos_token_id=eos, pad_token_id=pad)
    expected = []
    for row in plain[:, inputs["input_ids"].shape[1] :].tolist():
        expected.append(row[: row.index(eos)] if eos in row else row)
    assert [o.tokens for o in ours] == expected


def test_two_runs_are_identical(bench):
    config = MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.4)
    first = [(o.tokens, o.alpha, o.confidence) for o in _generate(bench, [0, 1, 2, 3], config)]
    second = [(o.tokens, o.alpha, o.confidence) for o in _generate(bench, [0, 1, 2, 3], config)]
    assert first == second
