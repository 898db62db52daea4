"""method=dola: candidate buckets, per-step layer choice and contrast, against hand computations and a naive decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.methods.dola import (
    DoLa,
    candidate_layers,
    choose_premature_layer,
    contrast,
    layer_divergence,
    lm_head_is_tied,
)
from tests.support.decoding_helpers import NEW_TOKENS, Harness
from tests.support.model_fixtures import ARCHITECTURES
from tests.support.tiny_checkpoints import TinySpec, build_tiny_llava


@pytest.mark.parametrize(
    ("layers", "num_layers", "tied", "expected"),
    [
        ("low", 32, False, range(0, 16, 2)),  # LLaVA-1.5-7B (Vicuna, untied)
        ("high", 32, False, range(16, 32, 2)),
        ("low", 28, True, range(2, 14, 2)),  # Qwen2-VL-2B (tied)
        ("high", 28, True, range(14, 28, 2)),
        ("low", 60, False, range(0, 20, 2)),  # N > 40: fixed buckets of 20 layers
        ("high", 60, False, range(40, 60, 2)),
        ("low", 2, True, [1]),  # start == N // 2
        ("low", 4, False, [0]),
        ("high", 4, False, [2]),
        ((0, 3), 4, False, [0, 3]),
    ],
)
def test_candidate_layers_follow_the_bucket_rule(layers, num_layers, tied, expected):
    assert candidate_layers(layers, num_layers, tied) == tuple(expected)


def test_a_premature_layer_at_or_above_the_final_one_is_refused():
    with pytest.raises(MethodArgumentError, match="premature layers must be below the final layer 4"):
        candidate_layers((1, 4), 4, False)
    config = MethodConfig.from_model_args(method="dola", dola_layers="0|4")
    with pytest.raises(MethodArgumentError, match=r"dola_layers=0\|4 names early-exit layer 4"):
        config.check_layers(4)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dola_layers": "middle"}, "dola_layers='middle' must be low, high, or early-exit layer indices"),
        ({"dola_layers": "1|x"}, "dola_layers='1|x' must be low, high"),
        ({"dola_layers": "2|2"}, "lists a layer twice"),
        ({"repetition_penalty": 0}, "repetition_penalty=0 must be > 0"),
        ({"repetition_penalty": "abc"}, "repetition_penalty='abc' is not a number"),
        ({"layers": "0"}, "layers is not used by method=dola"),
        ({"vcd_alpha": 1}, "vcd_alpha is not used by method=dola; remove it or use method=vcd"),
        ({"alphas": "0.5|2"}, "alphas is not used by method=dola"),
    ],
)
def test_bad_dola_arguments_are_refused_naming_the_argument(arguments, message):
    with pytest.raises(MethodArgumentError) as error:
        MethodConfig.from_model_args(method="dola", **arguments)
    assert message in str(error.value)


def test_dola_defaults():
    config = MethodConfig.from_model_args(method="dola")
    assert (config.dola_layers, config.repetition_penalty) == ("high", 1.2)
    assert MethodConfig.from_model_args(method="dola", dola_layers="LOW").dola_layers == "low"
    assert MethodConfig.from_model_args(method="dola", dola_layers="4|0").dola_layers == (4, 0)


def _hand_divergence(final: np.ndarray, premature: np.ndarray) -> float:
    """0.5 * (KL(M || p) + KL(M || q)) / V with M = (p + q) / 2, in float64 (what DoLa's code computes)."""
    log_p, log_q = final - logsumexp(final), premature - logsumexp(premature)
    m = 0.5 * (np.exp(log_p) + np.exp(log_q))
    log_m = np.log(np.where(m > 0, m, 1.0))  # terms with m = 0 contribute 0 (x log x -> 0)
    return 0.5 * (np.sum(m * (log_m - log_p)) + np.sum(m * (log_m - log_q))) / len(m)


def test_each_row_chooses_the_layer_with_the_largest_divergence():
    generator = torch.Generator().manual_seed(3)
    final = torch.randn(2, 7, generator=generator)
    premature = torch.randn(3, 2, 7, generator=generator) * torch.tensor([0.5, 1.0, 3.0])[:, None, None]
    premature[2, 1] = final[1] + 0.01  # row 1: layer index 2 is nearly the final layer
    premature[0, 1] = -final[1] * 4  # ... and layer index 0 the most different
    hand = np.array(
        [
            [_hand_divergence(final[r].double().numpy(), premature[c, r].double().numpy()) for r in range(2)]
            for c in range(3)
        ]
    )
    assert np.allclose(layer_divergence(final, premature).double().numpy(), hand, atol=1e-6)
    chosen = choose_premature_layer(final, premature).tolist()
    assert chosen == hand.argmax(axis=0).tolist()
    assert chosen[0] != chosen[1]  # per row: a batch-mean choice would give both rows one layer


def test_contrast_keeps_the_relative_top_set_of_the_final_layer():
    final = torch.tensor([[3.0, 3.0 + math.log(0.1) + 1e-3, 3.0 + math.log(0.1) - 1e-3, 0.0]])
    premature = torch.tensor([[4.0, 0.0, 0.0, 0.0]])
    scores = contrast(final, premature)
    log_p = torch.log_softmax(final, -1)
    log_q = torch.log_softmax(premature, -1)
    assert torch.isinf(scores[0, 2]) and torch.isinf(scores[0, 3])
    assert torch.allclose(scores[0, :2], (log_p - log_q)[0, :2])
    assert scores.argmax().item() == 1  # the premature layer's favourite is penalised


@pytest.fixture(scope="module")
def deep_llava(tmp_path_factory):
    """A 4-layer LLaVA-1.5 (the shared tiny checkpoints have 2 layers: one candidate per bucket)."""
    return build_tiny_llava(tmp_path_factory.mktemp("dola") / "llava4", TinySpec(num_layers=4))


@pytest.fixture(scope="module", params=ARCHITECTURES)
def harness(request, tiny_checkpoints) -> Harness:
    return Harness(tiny_checkpoints[request.param], request.param)


def _reference_dola(harness: Harness, index: int, candidates, penalty: float):
    """Naive DoLa: batch 1, full forward per token, hooks for hidden states, the rule written out."""
    inputs = harness.inputs([index])
    prompt = inputs["input_ids"][0].tolist()
    lm_head = harness.reference.get_output_embeddings()
    generated: list[int] = []
    layers_chosen = []
    for _ in range(NEW_TOKENS):
        final, streams = harness.full_forward(inputs, generated)
        with torch.no_grad():
            early = {layer: lm_head(streams[layer]).float() for layer in candidates}  # no final norm
        divergence = {
            layer: _hand_divergence(final.double().numpy(), early[layer].double().numpy()) for layer in candidates
        }
        layer = max(candidates, key=lambda c: divergence[c])  # first of equals, as argmax
        layers_chosen.append(layer)
        log_p, log_q = torch.log_softmax(final, -1), torch.log_softmax(early[layer], -1)
        scores = torch.where(log_p >= log_p.max() + math.log(0.1), log_p - log_q, -math.inf)
        for token in set(prompt + generated):
            scores[token] = scores[token] * penalty if scores[token] < 0 else scores[token] / penalty
        generated.append(int(scores.argmax()))
    return generated, layers_chosen


def _dola_with_layers(harness: Harness, indices, **arguments):
    """The product's answers, plus the premature layer it chose per step for every row (``DoLa.chosen_layers``)."""
    seen = []
    original = DoLa.next_scores

    def recording(self, step, generated):
        scores = original(self, step, generated)
        seen.append(self.chosen_layers[-1])
        return scores

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DoLa, "next_scores", recording)
        outputs = harness.generate(indices, "dola", **arguments)
    return outputs, [[step[row] for step in seen] for row in range(len(indices))]


def test_dola_equals_a_naive_per_sample_implementation(harness):
    indices = [0, 1, 2, 3]
    model = harness.model
    num_layers = model.config.get_text_config().num_hidden_layers
    candidates = candidate_layers("high", num_layers, lm_head_is_tied(model))
    ours, layers = _dola_with_layers(harness, indices)
    for row, index in enumerate(indices):
        tokens, chosen = _reference_dola(harness, index, candidates, 1.2)
        assert ours[row].tokens == tokens
        assert layers[row] == chosen
    baseline = harness.generate(indices, "baseline")
    assert [o.tokens for o in ours] != [o.tokens for o in baseline]  # DoLa does act here
    assert [o.confidence for o in ours] == pytest.approx([o.confidence for o in baseline], abs=1e-5)


def test_dola_layer_choice_per_step_on_a_deeper_model(deep_llava):
    harness = Harness(deep_llava, "llava")
    indices = [0, 1, 2, 3, 4]
    ours, layers = _dola_with_layers(harness, indices, dola_layers="0|1|2|3", repetition_penalty=1.0)
    for row, index in enumerate(indices):
        tokens, chosen = _reference_dola(harness, index, (0, 1, 2, 3), 1.0)
        assert (ours[row].tokens, layers[row]) == (tokens, chosen)
    assert len({layer for row in layers for layer in row}) > 1  # the choice really varies
    low, _ = _dola_with_layers(harness, indices, dola_layers="low")
    for row, index in enumerate(indices):
        assert low[row].tokens == _reference_dola(harness, index, (0,), 1.2)[0]


def test_dola_answers_do_not_depend_on_batch_size(harness):
    sizes = (1, 4, 8) if harness.model_type == "llava" else (1, 4)
    indices = list(range(8)) if harness.model_type == "llava" else [0, 1, 2, 3]
    answers = {}
    for size in sizes:
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            for i, out in zip(chunk, harness.generate(chunk, "dola", dola_layers="0|1"), strict=True):
                answers.setdefault(i, set()).add(tuple(out.tokens))
    assert all(len(found) == 1 for found in answers.values()), answers


def test_the_lmms_eval_wrapper_refuses_a_layer_the_checkpoint_lacks(tiny_llava):
    from model_wrappers.llava import LlavaAdaptVis

    with pytest.raises(MethodArgumentError, match=r"dola_layers=0\|2 names early-exit layer 2, but the language model"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", method="dola", dola_layers="0|2")
    with pytest.raises(MethodArgumentError, match="repetition_penalty is not used by method=baseline"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", repetition_penalty=1.2)
