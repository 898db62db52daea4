"""The decoding-step contract: every method is a DecodingMethod, and the contract alone suffices to write one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import pytest
import torch

from model_wrappers.api import adaptvis_generate
from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import DecodeSettings, generate
from model_wrappers.methods import METHODS, MethodConfig, MethodParameters, register_method, unregister_method
from model_wrappers.methods.contract import DecodingMethod, SampleOutput
from model_wrappers.methods.dola import DoLa
from model_wrappers.methods.pai import Pai
from model_wrappers.methods.scaling import AdaptVis, Baseline, ScalingVis, Sweep
from model_wrappers.methods.vaf import Vaf
from model_wrappers.methods.vcd import VisualContrastiveDecoding
from tests.support.decoding_helpers import Harness

SETTINGS = DecodeSettings(max_new_tokens=5, eos_token_ids=(), pad_token_id=0)
EXAMPLES = {
    "baseline": ({}, Baseline),
    "scaling_vis": ({"alpha": 0.5}, ScalingVis),
    "adapt_vis": ({"alpha1": 0.5, "alpha2": 1.5, "threshold": 0.3}, AdaptVis),
    "sweep": ({}, Sweep),
    "vcd": ({}, VisualContrastiveDecoding),
    "dola": ({}, DoLa),
    "pai": ({"pai_start_layer": 1}, Pai),
    "vaf": ({"vaf_layers": "0-1"}, Vaf),
}


@pytest.fixture(scope="module")
def harness(tiny_llava) -> Harness:
    return Harness(tiny_llava, "llava")


def test_every_method_name_has_its_own_decoding_method(harness):
    assert set(EXAMPLES) == set(METHODS)
    for name, (arguments, implementation) in EXAMPLES.items():
        decoder = MethodConfig.from_model_args(method=name, **arguments).decoder(harness.model)
        assert type(decoder) is implementation and isinstance(decoder, DecodingMethod)


def test_sample_outputs_keep_their_fields():
    assert [f.name for f in dataclasses.fields(SampleOutput)] == [
        "tokens",
        "alpha",
        "confidence",
        "sweep",
        "sweep_confidence",
    ]


class _Twins(DecodingMethod):
    """Two identical physical rows per answer, scores averaged: must decode exactly like the baseline."""

    rows_per_answer = 2

    def prefill_batch(self, batch, sample_keys):
        twice = {k: v.repeat_interleave(2, dim=0) for k, v in batch.vision_inputs.items()}
        return replace(
            batch,
            input_ids=batch.input_ids.repeat_interleave(2, dim=0),
            attention_mask=batch.attention_mask.repeat_interleave(2, dim=0),
            position_ids=batch.position_ids.repeat_interleave(2, dim=0),
            image_token_mask=batch.image_token_mask.repeat_interleave(2, dim=0),
            vision_inputs=twice,
        )

    def next_scores(self, step, generated):
        return 0.5 * (step.logits[0::2] + step.logits[1::2])

    def first_token(self, prompt):
        first = super().first_token(prompt)
        first.confidence = first.confidence[0::2]
        first.alphas = first.alphas[0::2]
        return first


class _Banned(DecodingMethod):
    """Forbids one token at every step: the contract's scores are what the loop takes the argmax of."""

    banned = 0

    def next_scores(self, step, generated):
        scores = step.logits.clone()
        scores[:, self.banned] = -torch.inf
        return scores


@dataclass(frozen=True)
class _NoParameters(MethodParameters):
    """The trial methods' parameters: none."""


@pytest.fixture
def trial_methods():
    """Registers the trial decoders the public way (``register_method``) and removes them afterwards."""
    for name, decoder in (("trial_twins", _Twins), ("trial_banned", _Banned)):
        register_method(name, _NoParameters)(decoder)
    yield
    for name in ("trial_twins", "trial_banned"):
        unregister_method(name)


def _run(harness, indices, method_name, monkeypatch, **attributes):
    config = MethodConfig.from_model_args(method=method_name)
    decoder = config.decoder(harness.model)
    for name, value in attributes.items():
        monkeypatch.setattr(type(decoder), name, value)
    return generate(harness.model, prompt_batch(harness.model, harness.inputs(indices)), config, SETTINGS)


def test_a_method_written_against_the_contract_alone_runs_through_generate(harness, monkeypatch, trial_methods):
    indices = [0, 1, 2]
    batch = prompt_batch(harness.model, harness.inputs(indices))
    baseline = generate(harness.model, batch, MethodConfig.from_model_args(), SETTINGS)
    twins = _run(harness, indices, "trial_twins", monkeypatch)
    assert [o.tokens for o in twins] == [o.tokens for o in baseline]
    assert [o.confidence for o in twins] == pytest.approx([o.confidence for o in baseline], abs=1e-6)
    banned_token = baseline[0].tokens[0]
    banned = _run(harness, indices, "trial_banned", monkeypatch, banned=banned_token)
    assert all(banned_token not in o.tokens for o in banned)
    assert banned[0].tokens[0] != baseline[0].tokens[0]


def test_sample_keys_must_match_the_batch(harness):
    batch = prompt_batch(harness.model, harness.inputs([0, 1]))
    with pytest.raises(ValueError, match="sample_keys has 1 entries for a batch of 2 prompts"):
        generate(harness.model, batch, MethodConfig.from_model_args(method="vcd"), SETTINGS, sample_keys=["a"])


def test_without_sample_keys_vcd_seeds_from_the_prompt_and_pixels_not_the_batch(harness):
    def vcd(indices):
        out = adaptvis_generate(harness.model, harness.inputs(indices), "vcd", max_new_tokens=5, eos_token_id=[])
        return [o.tokens for o in out]

    together = vcd([0, 1, 2])
    assert [vcd([i])[0] for i in (0, 1, 2)] == together
    assert vcd([2, 0]) == [together[2], together[0]]
