"""Visual contrastive decoding (VCD; Leng et al., CVPR 2024), greedy.

At every decoding step the raw next-token logits under the real image ``v`` are contrasted with
those under a noised copy ``v'`` of the preprocessed pixels (:func:`contrast`)::

    score = (1 + a) * l(v) - a * l(v')     where  l(v) >= log(b) + max l(v)      (else -inf)

and the argmax is taken. ``a = vcd_alpha`` (default 1), ``b = vcd_beta`` (default 0.1), and ``v'``
is ``v`` after ``vcd_noise_step`` (default 500) steps of VCD's DDPM forward process
(:func:`noise_coefficients`, :func:`noised_pixels`). The noise of each sample is drawn from a
generator seeded by the sample's identity, so answers do not depend on batch composition.

Physically, every sample is two rows of one batch -- real and noised image, each with its own KV
cache rows -- so both passes share one forward per step. VCD's published code patches only
transformers' *sampling* loop; "greedy VCD" there silently equals the baseline. This module is
VCD's contrast under greedy decoding, as the AdaptVis paper's comparison needs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

import torch

from model_wrappers.architectures import PromptBatch
from model_wrappers.errors import MethodArgumentError
from model_wrappers.intervention import first_token_confidence
from model_wrappers.methods.arguments import as_float
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, StepOutput
from model_wrappers.methods.registry import MethodParameters, register_method

VCD_DEFAULTS = {"vcd_alpha": 1.0, "vcd_beta": 0.1, "vcd_noise_step": 500}
"""VCD's own defaults (``--cd_alpha 1 --cd_beta 0.1 --noise_step 500`` in its evaluation scripts)."""
VCD_NOISE_STEPS = 1000


@dataclass(frozen=True)
class VCDParameters(MethodParameters):
    """``method=vcd``: contrast weight ``vcd_alpha`` (>= 0), cutoff ``vcd_beta`` (in (0, 1]), noise step (0..999)."""

    vcd_alpha: float = VCD_DEFAULTS["vcd_alpha"]
    vcd_beta: float = VCD_DEFAULTS["vcd_beta"]
    vcd_noise_step: int = VCD_DEFAULTS["vcd_noise_step"]

    @classmethod
    def parse(cls, raw) -> VCDParameters:
        vcd_alpha, vcd_beta, vcd_noise_step = raw["vcd_alpha"], raw["vcd_beta"], raw["vcd_noise_step"]
        alpha = VCD_DEFAULTS["vcd_alpha"] if vcd_alpha is None else as_float("vcd_alpha", vcd_alpha)
        if alpha < 0:
            raise MethodArgumentError(
                f"vcd_alpha={vcd_alpha!r} must be >= 0 (the weight of the contrast; 0 is plain greedy decoding)"
            )
        beta = VCD_DEFAULTS["vcd_beta"] if vcd_beta is None else as_float("vcd_beta", vcd_beta)
        if not 0.0 < beta <= 1.0:
            raise MethodArgumentError(
                f"vcd_beta={vcd_beta!r} must lie in (0, 1] (tokens with p < vcd_beta * max p are excluded)"
            )
        step: object = VCD_DEFAULTS["vcd_noise_step"] if vcd_noise_step is None else vcd_noise_step
        if (
            isinstance(step, bool)
            or not re.fullmatch(r"\d+", str(step).strip())
            or int(str(step).strip()) >= VCD_NOISE_STEPS
        ):
            raise MethodArgumentError(
                f"vcd_noise_step={vcd_noise_step!r} must be an integer diffusion step in 0..{VCD_NOISE_STEPS - 1}"
            )
        return cls(vcd_alpha=alpha, vcd_beta=beta, vcd_noise_step=int(str(step).strip()))


def noise_coefficients(noise_step: int) -> tuple[float, float]:
    """``(sqrt(abar_t), sqrt(1 - abar_t))`` of VCD's schedule at ``t = noise_step`` (0-based, float32 as VCD).

    1000 steps, ``beta = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5``,
    ``abar_t = prod_{s <= t} (1 - beta_s)``.
    """
    if not 0 <= noise_step < VCD_NOISE_STEPS:
        raise ValueError(f"noise_step={noise_step} must lie in 0..{VCD_NOISE_STEPS - 1}")
    betas = torch.sigmoid(torch.linspace(-6, 6, VCD_NOISE_STEPS)) * (0.5e-2 - 1e-5) + 1e-5
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    return float(torch.sqrt(alpha_bar[noise_step])), float(torch.sqrt(1 - alpha_bar[noise_step]))


def _generator(sample_key: str, unit: int) -> torch.Generator:
    digest = hashlib.sha256(f"vcd-noise/{sample_key}/{unit}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def noised_pixels(pixels: torch.Tensor, noise_step: int, sample_key: str, unit: int = 0) -> torch.Tensor:
    """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with ``eps`` seeded by ``(sample_key, unit)``.

    Computed in float32 and cast back to ``pixels``' dtype. ``unit`` numbers the tensors of one
    sample (LLaVA-1.6 image tiles), so each tile's noise is independent of padding.
    """
    keep, noise = noise_coefficients(noise_step)
    eps = torch.randn(pixels.shape, generator=_generator(sample_key, unit), dtype=torch.float32)
    noisy = keep * pixels.float() + noise * eps.to(pixels.device)
    return noisy.to(pixels.dtype)


def _pixels_per_sample(vision: dict[str, torch.Tensor], size: int) -> list[torch.Tensor]:
    """Each sample's preprocessed pixels.

    LLaVA-1.5 ``[C, H, W]``, LLaVA-1.6 ``[tiles, C, H, W]``, Qwen2-VL ``[patches, features]``.
    """
    pixels = vision["pixel_values"]
    if "image_grid_thw" in vision:  # Qwen2-VL: one block of patch rows per image
        grid = vision["image_grid_thw"]
        if grid.shape[0] != size:
            raise ValueError(f"VCD needs one image per prompt; got {grid.shape[0]} images for {size} prompts")
        return list(torch.split(pixels, grid.prod(dim=-1).tolist()))
    if pixels.shape[0] != size:
        raise ValueError(f"VCD needs one image per prompt; got {pixels.shape[0]} images for {size} prompts")
    return list(pixels)


def default_sample_keys(batch: PromptBatch) -> list[str]:
    """A sample's identity when the caller gives none: a hash of its unpadded prompt ids and its pixels.

    For LLaVA-1.6 only the first tile (the whole image, resized) is hashed, since padding tiles
    depend on the batch.
    """
    keys = []
    pixels = _pixels_per_sample(batch.vision_inputs, batch.batch_size)
    for ids, mask, sample in zip(batch.input_ids, batch.attention_mask, pixels, strict=True):
        digest = hashlib.sha256(ids[mask.bool()].cpu().numpy().tobytes())
        image = sample[0] if sample.ndim == 4 else sample
        digest.update(image.float().cpu().numpy().tobytes())
        keys.append(digest.hexdigest()[:16])
    return keys


def _with_noised_copies(vision: dict[str, torch.Tensor], keys: list[str], noise_step: int) -> dict[str, torch.Tensor]:
    """Vision inputs with rows ``[real_0, noised_0, real_1, noised_1, ...]`` (one image per sample)."""
    blocks = _pixels_per_sample(vision, len(keys))
    out = dict(vision)
    if "image_grid_thw" in vision:
        out["pixel_values"] = torch.cat(
            [
                part
                for key, block in zip(keys, blocks, strict=True)
                for part in (block, noised_pixels(block, noise_step, key))
            ]
        )
        out["image_grid_thw"] = vision["image_grid_thw"].repeat_interleave(2, dim=0)
        return out
    rows = []
    for key, sample in zip(keys, blocks, strict=True):
        if sample.ndim == 4:  # LLaVA-1.6: [tiles, C, H, W] per sample, seeded per tile
            noisy = torch.stack([noised_pixels(tile, noise_step, key, unit) for unit, tile in enumerate(sample)])
        else:
            noisy = noised_pixels(sample, noise_step, key)
        rows += [sample, noisy]
    out["pixel_values"] = torch.stack(rows)
    for name, value in vision.items():
        if name != "pixel_values":
            out[name] = value.repeat_interleave(2, dim=0)
    return out


def contrast(real: torch.Tensor, noised: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """VCD's scores from raw logits under the real and the noised image (``[rows, vocab]`` each).

    As VCD's ``vcd_sample.py`` (its "version 2" cutoff): ``cutoff = log(beta) + max l(v)``; tokens
    with ``l(v) < cutoff`` -- i.e. ``p < beta * max p`` -- get ``-inf``.
    """
    cutoff = torch.log(torch.tensor(beta, dtype=torch.float32)) + real.max(dim=-1, keepdim=True).values
    scores = (1 + alpha) * real - alpha * noised
    return scores.masked_fill(real < cutoff, -float("inf"))


@register_method("vcd", VCDParameters)
class VisualContrastiveDecoding(DecodingMethod):
    """``method=vcd``: real and noised image as two physical rows per sample, contrasted every step."""

    rows_per_answer = 2

    def prefill_batch(self, batch: PromptBatch, sample_keys: list[str] | None) -> PromptBatch:
        keys = default_sample_keys(batch) if sample_keys is None else sample_keys
        row_dim = batch.position_ids.ndim - 2
        return replace(
            batch,
            input_ids=batch.input_ids.repeat_interleave(2, dim=0),
            attention_mask=batch.attention_mask.repeat_interleave(2, dim=0),
            position_ids=batch.position_ids.repeat_interleave(2, dim=row_dim),
            image_token_mask=batch.image_token_mask.repeat_interleave(2, dim=0),
            vision_inputs=_with_noised_copies(batch.vision_inputs, keys, self.config.vcd_noise_step),
        )

    def first_token(self, prompt: PromptState) -> FirstToken:
        output = prompt.last_token()
        confidence = first_token_confidence(output.logits[0::2]).tolist()
        return FirstToken(self.next_scores(output, None), confidence, [None] * len(confidence))

    def next_scores(self, step: StepOutput, generated: torch.Tensor | None) -> torch.Tensor:
        return contrast(step.logits[0::2], step.logits[1::2], self.config.vcd_alpha, self.config.vcd_beta)
