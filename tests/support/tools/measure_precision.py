"""Measure how far half-precision first-token probabilities are from float32 under the intervention.

    python tests/support/tools/measure_precision.py            # tiny LLaVA-1.5 with the real Llama vocabulary

Loads one tiny random LLaVA-1.5 checkpoint (``tests/support/tiny_checkpoints.py``; the Llama
vocabulary as in the tests) in float32, bfloat16 and float16 and, for the baseline and ScalingVis
at the paper's alphas, reports the largest absolute difference from float32 of the first-token
probability vector and of ``C`` (its maximum), over a batch of prompts and random images. It also
reports the same for the former arithmetic of ``scale_image_keys`` (alpha cast to the key dtype
before multiplying), to show what applying alpha in float32 changes. The numbers characterise this
tiny random model only; they are recorded in docs/reference/INTERVENTION.md.

Last, it compares transformers' two CLIP image processors (PIL, the reference's, and torchvision)
with llava-hf's LLaVA-1.5 settings (336 px) on random-noise images of 400-900 px, and with the tiny
checkpoint's (56 px) on 40-300 px images: the largest difference in 8-bit levels and the share of
values that differ by more than half a level.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np
import torch
from PIL import Image

from model_wrappers import intervention
from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import first_token_logits
from model_wrappers.intervention import image_scaling_backend
from model_wrappers.loading import load_checkpoint
from tests.support.llama_vocabulary import load_llama_vocabulary
from tests.support.tiny_checkpoints import build_tiny_llava

ALPHAS = (None, 0.5, 0.8, 1.2, 1.5, 2.0)
PROMPTS = [
    f"<image>\nUSER: Where is the {a} in relation to the {b}? Answer with left, right, {c}.\nASSISTANT:"
    for a, b, c in (
        ("mug", "knife", "front or behind"),
        ("beer bottle", "armchair", "on or under"),
        ("dog", "table", "above or below"),
        ("cup", "plate", "front or behind"),
    )
]


def _cast_alpha_first(key: torch.Tensor, scaling: intervention.ImageKeyScaling) -> torch.Tensor:
    """The former arithmetic: alpha rounded to the key dtype, then multiplied."""
    return key * scaling.factors.to(dtype=key.dtype, device=key.device)


def _probabilities(checkpoint: Path, dtype: torch.dtype, images: list[Image.Image]) -> dict:
    loaded = load_checkpoint(str(checkpoint), ("llava",), "measure", device=torch.device("cpu"), dtype=dtype)
    inputs = loaded.processor(images=images, text=PROMPTS, padding=True, return_tensors="pt")
    batch = prompt_batch(loaded.model, inputs)
    out = {}
    with torch.no_grad(), image_scaling_backend(loaded.model):
        for alpha in ALPHAS:
            alphas = None if alpha is None else torch.full((len(PROMPTS),), alpha, dtype=torch.float32)
            out[alpha] = torch.softmax(first_token_logits(loaded.model, batch, alphas).float(), dim=-1)
    return out


def main() -> int:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)) for _ in PROMPTS]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = build_tiny_llava(Path(folder) / "llava", vocabulary=load_llama_vocabulary())
        reference = _probabilities(checkpoint, torch.float32, images)
        rows = []
        for dtype in (torch.bfloat16, torch.float16):
            for arithmetic in ("float32 product", "alpha cast first"):
                original = intervention.scale_image_keys
                if arithmetic == "alpha cast first":
                    intervention.scale_image_keys = _cast_alpha_first
                try:
                    probabilities = _probabilities(checkpoint, dtype, images)
                finally:
                    intervention.scale_image_keys = original
                for alpha in ALPHAS:
                    p, r = probabilities[alpha], reference[alpha]
                    rows.append(
                        (
                            str(dtype).replace("torch.", ""),
                            arithmetic,
                            "baseline" if alpha is None else f"alpha={alpha}",
                            (p - r).abs().max().item(),
                            (p.max(-1).values - r.max(-1).values).abs().max().item(),
                            int((p.argmax(-1) != r.argmax(-1)).sum()),
                        )
                    )
    _print_precision(rows)
    _print_image_backends()
    return 0


def _print_image_backends() -> None:
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil

    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    rng = np.random.default_rng(0)
    print(f"\n{'image processors':<46} {'max levels':>11} {'share > 0.5':>12}")
    for side, low, high in ((336, 400, 900), (56, 40, 300)):
        settings = {"size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side}}
        pil = CLIPImageProcessorPil(image_mean=mean, image_std=std, **settings)
        fast = CLIPImageProcessor(image_mean=mean, image_std=std, **settings)
        worst, over, total = 0.0, 0, 0
        for _ in range(10):
            width, height = rng.integers(low, high, 2)
            image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            a = pil(images=[image], return_tensors="pt").pixel_values
            b = fast(images=[image], return_tensors="pt").pixel_values
            levels = (a - b).abs() * torch.tensor(std).view(1, 3, 1, 1) * 255
            worst, over, total = (
                max(worst, levels.max().item()),
                over + int((levels > 0.5).sum()),
                total + levels.numel(),
            )
        label = f"PIL vs torchvision, {side} px from {low}-{high} px"
        print(f"{label:<46} {worst:>11.2f} {over / total:>12.4f}")


def _print_precision(rows: list[tuple]) -> None:
    print(
        f"{'dtype':<9} {'alpha arithmetic':<17} {'method':<10} {'max |dp|':>10} {'max |dC|':>10} {'argmax flips':>13}"
    )
    for dtype, arithmetic, method, dp, dc, flips in rows:
        print(f"{dtype:<9} {arithmetic:<17} {method:<10} {dp:>10.2e} {dc:>10.2e} {flips:>10}/{len(PROMPTS)}")


if __name__ == "__main__":
    sys.exit(main())
