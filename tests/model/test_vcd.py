"""method=vcd: VCD's noise schedule and contrast, checked by hand and against a naive per-sample decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.methods.vcd import _generator, contrast, noise_coefficients, noised_pixels
from tests.support.decoding_helpers import NEW_TOKENS, Harness
from tests.support.model_fixtures import ARCHITECTURES


def test_noise_schedule_matches_a_hand_computation():
    betas = 1 / (1 + np.exp(-np.linspace(-6, 6, 1000))) * (5e-3 - 1e-5) + 1e-5
    alpha_bar = np.cumprod(1 - betas)
    for t in (0, 1, 250, 500, 999):
        keep, noise = noise_coefficients(t)
        assert keep == pytest.approx(math.sqrt(alpha_bar[t]), abs=1e-5)
        assert noise == pytest.approx(math.sqrt(1 - alpha_bar[t]), abs=1e-5)
    keep, noise = noise_coefficients(500)  # VCD's default step
    assert round(keep, 4) == 0.8630 and round(noise, 4) == 0.5052
    with pytest.raises(ValueError, match="noise_step=1000"):
        noise_coefficients(1000)


def test_noised_pixels_are_the_forward_process_with_noise_seeded_by_the_sample():
    pixels = torch.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4)
    eps = torch.randn(pixels.shape, generator=_generator("doc-7", 0))
    keep, noise = noise_coefficients(500)
    assert torch.allclose(noised_pixels(pixels, 500, "doc-7"), keep * pixels + noise * eps)
    assert torch.equal(noised_pixels(pixels, 500, "doc-7"), noised_pixels(pixels, 500, "doc-7"))
    assert not torch.equal(noised_pixels(pixels, 500, "doc-7"), noised_pixels(pixels, 500, "doc-8"))
    assert not torch.equal(noised_pixels(pixels, 500, "doc-7", unit=1), noised_pixels(pixels, 500, "doc-7"))


def test_contrast_and_plausibility_mask_match_a_hand_computation():
    real = torch.tensor([[2.0, 1.0, 2.0 + math.log(0.1) - 1e-4, 2.0 + math.log(0.1) + 1e-4, -5.0]])
    noised = torch.tensor([[3.0, -1.0, 0.0, -2.0, 9.0]])
    scores = contrast(real, noised, alpha=1.0, beta=0.1)
    probs = torch.softmax(real, dim=-1)
    plausible = probs >= 0.1 * probs.max()  # p >= beta * max p
    assert plausible.tolist() == [[True, True, False, True, False]]
    expected = torch.where(plausible, 2 * real - noised, torch.tensor(-math.inf))
    assert torch.equal(scores, expected)
    assert scores.argmax().item() == 1  # 2*1 - (-1) = 3 beats 2*2 - 3 = 1: the contrast changes the answer
    assert torch.equal(contrast(real, noised, alpha=0.0, beta=0.1).argmax(-1), real.argmax(-1))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"vcd_alpha": -0.5}, "vcd_alpha=-0.5 must be >= 0"),
        ({"vcd_beta": 0}, "vcd_beta=0 must lie in (0, 1]"),
        ({"vcd_beta": 1.5}, "vcd_beta=1.5 must lie in (0, 1]"),
        ({"vcd_noise_step": 1000}, "vcd_noise_step=1000 must be an integer diffusion step in 0..999"),
        ({"vcd_noise_step": "5.5"}, "vcd_noise_step='5.5' must be an integer"),
        ({"alpha": 0.5}, "alpha is not used by method=vcd"),
        ({"layers": "0-1"}, "layers is not used by method=vcd"),
        ({"repetition_penalty": 1.2}, "repetition_penalty is not used by method=vcd; remove it or use method=dola"),
    ],
)
def test_bad_vcd_arguments_are_refused_naming_the_argument(arguments, message):
    with pytest.raises(MethodArgumentError) as error:
        MethodConfig.from_model_args(method="vcd", **arguments)
    assert message in str(error.value)


def test_vcd_defaults_are_the_papers():
    config = MethodConfig.from_model_args(method="vcd")
    assert (config.vcd_alpha, config.vcd_beta, config.vcd_noise_step) == (1.0, 0.1, 500)
    assert config.describe() == {"method": "vcd", "vcd_alpha": 1.0, "vcd_beta": 0.1, "vcd_noise_step": 500}
    with pytest.raises(MethodArgumentError, match="vcd_alpha is not used by method=adapt_vis"):
        MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3, vcd_alpha=1)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def harness(request, tiny_checkpoints) -> Harness:
    return Harness(tiny_checkpoints[request.param], request.param)


def _reference_vcd(harness: Harness, index: int, key: str, alpha: float, beta: float, step: int) -> list[int]:
    """Naive VCD: batch 1, two separate full forwards (real / noised pixels) per generated token."""
    inputs = harness.inputs([index])
    pixels = inputs["pixel_values"]
    keep, noise = noise_coefficients(step)
    if pixels.ndim == 5:  # LLaVA-1.6 tiles: one noise draw per tile
        tiles = [keep * t + noise * torch.randn(t.shape, generator=_generator(key, u)) for u, t in enumerate(pixels[0])]
        noised = torch.stack(tiles)[None]
    elif pixels.ndim == 4:
        noised = (keep * pixels[0] + noise * torch.randn(pixels[0].shape, generator=_generator(key, 0)))[None]
    else:
        noised = keep * pixels + noise * torch.randn(pixels.shape, generator=_generator(key, 0))
    generated: list[int] = []
    for _ in range(NEW_TOKENS):
        real, _ = harness.full_forward(inputs, generated)
        fake, _ = harness.full_forward(inputs, generated, pixel_values=noised)
        probs = torch.softmax(real, dim=-1)
        scores = torch.where(probs >= beta * probs.max(), (1 + alpha) * real - alpha * fake, -math.inf)
        generated.append(int(scores.argmax()))
    return generated


def test_vcd_equals_a_naive_per_sample_implementation(harness):
    indices = [0, 1, 2, 3]
    keys = [f"sample-{i}" for i in indices]
    ours = harness.generate(indices, "vcd", keys=keys)
    reference = [_reference_vcd(harness, i, k, 1.0, 0.1, 500) for i, k in zip(indices, keys, strict=True)]
    assert [o.tokens for o in ours] == reference
    baseline = harness.generate(indices, "baseline")
    assert [o.tokens for o in ours] != [o.tokens for o in baseline]  # the contrast does act here
    assert [o.confidence for o in ours] == pytest.approx([o.confidence for o in baseline], abs=1e-5)
    assert all(o.alpha is None for o in ours)


def test_other_coefficients_equal_the_naive_implementation_too(tiny_llava):
    harness = Harness(tiny_llava, "llava")
    ours = harness.generate([1, 4], "vcd", keys=["a", "b"], vcd_alpha=0.5, vcd_beta=0.3, vcd_noise_step=900)
    reference = [_reference_vcd(harness, i, k, 0.5, 0.3, 900) for i, k in ((1, "a"), (4, "b"))]
    assert [o.tokens for o in ours] == reference


def test_vcd_with_alpha_zero_is_the_baseline_bit_for_bit(harness):
    indices = [0, 1, 2, 3]
    baseline = harness.generate(indices, "baseline")
    plain = harness.generate(indices, "vcd", vcd_alpha=0)
    assert [o.tokens for o in plain] == [o.tokens for o in baseline]


def test_vcd_answers_do_not_depend_on_batch_size_or_order(harness):
    sizes = (1, 4, 8) if harness.model_type == "llava" else (1, 4)
    indices = list(range(8)) if harness.model_type == "llava" else [0, 1, 2, 3]
    answers = {}
    for size in sizes:
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            for i, out in zip(chunk, harness.generate(chunk, "vcd"), strict=True):
                answers.setdefault(i, set()).add(tuple(out.tokens))
    reversed_order = harness.generate(indices[::-1][:4], "vcd")
    for i, out in zip(indices[::-1][:4], reversed_order, strict=True):
        answers[i].add(tuple(out.tokens))
    assert all(len(found) == 1 for found in answers.values()), answers


def test_the_lmms_eval_wrapper_takes_the_vcd_arguments(tiny_llava):
    from model_wrappers.llava import LlavaAdaptVis

    wrapper = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", method="vcd", vcd_alpha=0.5, vcd_noise_step="999")
    assert (wrapper.method.vcd_alpha, wrapper.method.vcd_beta, wrapper.method.vcd_noise_step) == (0.5, 0.1, 999)
    with pytest.raises(MethodArgumentError, match="vcd_beta=2 must lie in"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", method="vcd", vcd_beta=2)
