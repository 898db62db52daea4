"""``adaptvis attention``: where the last prompt token attends, before and after the intervention.

For one image and question, the model (a checkpoint folder or hub id, loaded through
``model_wrappers.loading``) runs the prompt twice with an explicit eager attention implementation
registered for the language model only (``adaptvis_probe``), which records the **last prompt
token's** attention probabilities in every layer:

* **before**: the unintervened forward pass (alpha = 1);
* **after**: the same pass with Eq. 2 applied -- the pre-softmax logits of the last query on the
  image-token columns multiplied by alpha, before the mask, in the intervened layers. Because
  later layers see the intervened hidden state, this is exactly the prompt pass a
  ``scaling_vis``/``adapt_vis`` run makes (its fused-kernel form scales the image keys instead).
  For ``adapt_vis``, alpha is chosen from the confidence of the first "before" token with the
  suite's rule (``adaptvis_tasks.confidence``).

Outputs in ``--output-dir``: per chosen layer ``layer<L>_{before,after}.png`` (the head-averaged
map over the image patch grid, overlaid on the image the model saw, with a colour bar),
``grid_layer<L>_{before,after}.png`` (the raw map, one pixel per patch: the grid's shape) and
``grid_layer<L>_{before,after}_large.png`` (the same, enlarged without smoothing);
``attention_share.{csv,json,png}``: the share of attention on image vs text tokens per layer,
before and after (the paper's Figure 3 measure). The fused kernels the evaluation uses never
build these matrices; this tool computes them for this one sample only. It prints the greedy
answer before and after the intervention (the evaluation's own decoder) and what it wrote where.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from adaptvis_tasks.analysis.common import AnalysisError, csv_table, run_tool
from adaptvis_tasks.confidence import CONFIDENCE_RULES
from adaptvis_tasks.families import families
from adaptvis_tasks.images import open_rgb
from model_wrappers.architectures import image_token_id
from model_wrappers.families import family_spec
from model_wrappers.intervention import (
    first_token_confidence,
    register_attention_backend,
    scoped,
    text_attention_backend,
)
from model_wrappers.loading import load_checkpoint
from model_wrappers.methods import MethodConfig, parse_layers
from model_wrappers.methods.registry import method_names, method_spec
from model_wrappers.prompting import chat_prompt, llava15_prompt

PROBE_BACKEND = "adaptvis_probe"


@dataclass
class _Probe:
    """What the probe backend reads (image columns, alpha, layers) and writes (last-row probabilities)."""

    image_columns: torch.Tensor  # [kv_len] bool
    alpha: float = 1.0
    layers: frozenset[int] | None = None
    captured: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [heads, kv_len] float32


_ACTIVE: contextvars.ContextVar[_Probe | None] = contextvars.ContextVar("adaptvis_attention_probe", default=None)


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    return states if groups == 1 else states.repeat_interleave(groups, dim=1)


def probe_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention (softmax(QK^T * scaling + mask) V) that applies Eq. 2 to the last query row and records it."""
    probe = _ACTIVE.get()
    groups = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    scale = scaling if scaling is not None else 1.0 / math.sqrt(query.shape[-1])
    logits = torch.matmul(query.float(), key.float().transpose(2, 3)) * scale
    layer = getattr(module, "layer_idx", None)
    if probe is not None and probe.alpha != 1.0 and (probe.layers is None or layer in probe.layers):
        factors = torch.where(probe.image_columns.to(logits.device), probe.alpha, 1.0).to(logits.dtype)
        logits[:, :, -1, :] = logits[:, :, -1, :] * factors  # Eq. 2: before the mask is added
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        if mask.dtype == torch.bool:
            mask = torch.zeros_like(mask, dtype=logits.dtype).masked_fill(~mask, torch.finfo(logits.dtype).min)
        logits = logits + mask.float()
    weights = torch.softmax(logits, dim=-1)
    if probe is not None and layer is not None:
        probe.captured[int(layer)] = weights[0, :, -1, :].detach().cpu()
    output = torch.matmul(weights.to(value.dtype), value).transpose(1, 2).contiguous()
    return output, weights.to(query.dtype)


def register_probe_backend() -> str:
    """Register ``adaptvis_probe`` (attention and eager's mask function) through the intervention's mechanism."""
    return register_attention_backend(PROBE_BACKEND, probe_attention, mask_like="eager")


@contextmanager
def probing(probe: _Probe) -> Iterator[_Probe]:
    """Make ``probe`` the active probe for the block (the intervention's scoping, reset in ``finally``)."""
    with scoped(_ACTIVE, probe):
        yield probe


# ----------------------------------------------------------------------------------------------
# Image-token grids
# ----------------------------------------------------------------------------------------------


@dataclass
class Grid:
    """How the image tokens of the prompt map to patch grids: ``(name, token offset, rows, cols, stride)``.

    ``stride`` > ``cols`` when each grid row is followed by a separator token (LLaVA-1.6's
    ``image_newline``).
    """

    parts: list[tuple[str, int, int, int, int]]
    total_tokens: int

    def maps(self, image_weights: torch.Tensor) -> dict[str, np.ndarray]:
        """Per grid, the ``[rows, cols]`` map of head-averaged weights over the image tokens."""
        out = {}
        for name, offset, rows, cols, stride in self.parts:
            block = image_weights[offset : offset + rows * stride].reshape(rows, stride)[:, :cols]
            out[name] = block.numpy().astype(np.float64)
        return out


def image_grid(model, inputs: dict[str, torch.Tensor], n_image_tokens: int) -> Grid:
    """The patch grid(s) behind the prompt's image tokens, from the checkpoint's own configuration."""
    model_type = model.config.model_type
    grid = Grid(family_spec(model).image_grid(model, inputs), n_image_tokens)
    covered = sum(rows * stride for _, _, rows, _, stride in grid.parts)
    if covered != n_image_tokens:
        raise AnalysisError(
            f"{model_type}: the prompt has {n_image_tokens} image tokens but the grid derived from the config covers "
            f"{covered}; this checkpoint packs image features differently (vision_feature_select_strategy?)"
        )
    return grid


def model_view(model, processor, image: Image.Image, grid_part: tuple[str, int, int, int, int]) -> Image.Image:
    """The image region a grid covers (the family's ``model_view``: LLaVA-1.5's centre crop, else the whole image)."""
    return family_spec(model).model_view(model, image)


# ----------------------------------------------------------------------------------------------
# Running the model
# ----------------------------------------------------------------------------------------------


@dataclass
class AttentionResult:
    """Per layer, the last prompt token's head-averaged attention before and after the intervention."""

    alpha: float
    confidence: float
    layers: list[int]
    before: dict[int, torch.Tensor]  # layer -> [kv_len]
    after: dict[int, torch.Tensor]
    image_columns: torch.Tensor
    grid: Grid
    prompt: str
    first_token_logits_after: torch.Tensor  # [vocab], the intervened pass's next-token logits

    def share(self, layer: int, which: str) -> float:
        weights = (self.before if which == "before" else self.after)[layer]
        return float(weights[self.image_columns].sum())


def build_prompt(model_type: str, processor, question: str) -> str:
    """The prompt the evaluation would use for this checkpoint family (``model_wrappers.prompting``)."""
    if family_spec(model_type).default_prompt_style == "paper":
        return llava15_prompt(question, "question")
    return chat_prompt(processor, question, "question")


def run_attention(
    model,
    processor,
    image: Image.Image,
    question: str,
    method: str,
    alpha: float | None = None,
    alpha1: float | None = None,
    alpha2: float | None = None,
    threshold: float | None = None,
    confidence_rule: str = "paper_rounded",
    intervened_layers: Sequence[int] | None = None,
) -> AttentionResult:
    """Two probed forward passes over the prompt (alpha = 1, then the method's alpha)."""
    register_probe_backend()
    config = MethodConfig.from_model_args(
        method=method, alpha=alpha, alpha1=alpha1, alpha2=alpha2, threshold=threshold, confidence_rule=confidence_rule
    )
    with text_attention_backend(model, PROBE_BACKEND):
        prompt = build_prompt(model.config.model_type, processor, question)
        inputs = processor(images=[image], text=[prompt], return_tensors="pt")
        inputs = {k: (v.to(model.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
        for key in ("pixel_values",):
            if key in inputs:
                inputs[key] = inputs[key].to(model.dtype)
        image_columns = (inputs["input_ids"][0] == image_token_id(model)).cpu()
        layers_all = list(range(len(family_spec(model).decoder_layers(model))))
        chosen_layers = None if intervened_layers is None else frozenset(intervened_layers)
        with torch.no_grad(), probing(_Probe(image_columns=image_columns)) as before:
            logits = model(**inputs).logits[:, -1, :]
        confidence = float(first_token_confidence(logits)[0])
        applied = config.parameters.alpha_for(confidence, config)  # the methods' own alpha rule
        with torch.no_grad(), probing(_Probe(image_columns, alpha=applied, layers=chosen_layers)) as after:
            logits_after = model(**inputs).logits[0, -1, :].float().cpu()
    missing = [layer for layer in layers_all if layer not in before.captured or layer not in after.captured]
    if missing:
        raise AnalysisError(f"the probe saw no attention call for layer(s) {missing}; unsupported architecture?")
    return AttentionResult(
        alpha=applied,
        confidence=confidence,
        layers=layers_all,
        before={layer: before.captured[layer].mean(dim=0) for layer in layers_all},
        after={layer: after.captured[layer].mean(dim=0) for layer in layers_all},
        image_columns=image_columns,
        grid=image_grid(model, inputs, int(image_columns.sum())),
        prompt=prompt,
        first_token_logits_after=logits_after,
    )


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


READABLE_SIDE = 256
"""Minimum side in pixels of the upscaled grid maps (``grid_layer*_large.png``)."""


def _save_grid_png(values: np.ndarray, path: Path, vmax: float) -> Path:
    """The raw map, one greyscale pixel per patch (``path``), and an upscaled copy without smoothing.

    The copy (``<stem>_large.png``) repeats every patch pixel ``k`` times in each direction (nearest
    neighbour, integer ``k``), so each patch stays one uniform square: a 4 x 4 grid becomes 256 x 256.
    """
    scaled = np.zeros_like(values) if vmax <= 0 else np.clip(values / vmax, 0, 1)
    pixels = (scaled * 255).round().astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    factor = max(1, math.ceil(READABLE_SIDE / max(pixels.shape)))
    large = path.with_name(f"{path.stem}_large.png")
    Image.fromarray(np.kron(pixels, np.ones((factor, factor), dtype=np.uint8)), mode="L").save(large)
    return large


def write_outputs(
    result: AttentionResult, image: Image.Image, view: Image.Image, layers: Sequence[int], out: Path
) -> list[Path]:
    """PNGs per layer (overlay and raw grid), and the image/text share table and plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for layer in layers:
        maps = {
            w: result.grid.maps((result.before if w == "before" else result.after)[layer][result.image_columns])
            for w in ("before", "after")
        }
        for part, _, _, _, _ in result.grid.parts:
            vmax = max(float(maps["before"][part].max()), float(maps["after"][part].max()))
            suffix = "" if len(result.grid.parts) == 1 else f"_{part}"
            for which in ("before", "after"):
                grid_path = out / f"grid_layer{layer:02d}{suffix}_{which}.png"
                large_path = _save_grid_png(maps[which][part], grid_path, vmax)
                figure, axis = plt.subplots(figsize=(4.8, 4))
                axis.imshow(view)
                overlay = axis.imshow(
                    maps[which][part],
                    cmap="jet",
                    alpha=0.5,
                    vmin=0,
                    vmax=vmax or 1,
                    extent=(0, view.width, view.height, 0),
                    interpolation="nearest",
                )
                share = result.share(layer, which)
                shown_alpha = 1.0 if which == "before" else result.alpha
                title = f"layer {layer} {which} (alpha={shown_alpha:g}), image share {share:.3f}"
                axis.set_title(title, fontsize=8)
                axis.axis("off")
                bar = figure.colorbar(overlay, ax=axis, fraction=0.046, pad=0.04)
                bar.solids.set_alpha(1.0)  # the scale itself opaque: the overlay's transparency would pale it
                bar.set_label("attention probability (mean over heads)", fontsize=7)
                bar.ax.tick_params(labelsize=7)
                path = out / f"layer{layer:02d}{suffix}_{which}.png"
                figure.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(figure)
                written += [grid_path, large_path, path]
    rows = share_rows(result)
    (out / "attention_share.csv").write_text(csv_table(rows, list(rows[0])), encoding="utf-8")
    summary = {"prompt": result.prompt, "confidence": result.confidence, "alpha": result.alpha, "layers": rows}
    (out / "attention_share.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([r["layer"] for r in rows], [r["image_before"] for r in rows], marker="o", label="image, alpha=1")
    axis.plot(
        [r["layer"] for r in rows], [r["image_after"] for r in rows], marker="s", label=f"image, alpha={result.alpha:g}"
    )
    axis.set_xlabel("layer")
    layers = [r["layer"] for r in rows]
    if len(layers) <= 16:
        axis.set_xticks(layers)
    else:
        from matplotlib.ticker import MaxNLocator

        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("share of the last token's attention")
    axis.set_ylim(0, 1)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "attention_share.png", dpi=100)
    plt.close(figure)
    return [*written, out / "attention_share.csv", out / "attention_share.json", out / "attention_share.png"]


def answers_before_after(
    model, processor, image: Image.Image, prompt: str, alpha: float, layers: Sequence[int] | None, max_new_tokens: int
) -> tuple[str, str]:
    """The greedy answers without the intervention and with Eq. 2 at ``alpha`` (the evaluation's decoder)."""
    from model_wrappers.architectures import prompt_batch
    from model_wrappers.decoding import DecodeSettings, eos_and_pad, generate
    from model_wrappers.intervention import image_scaling_backend
    from model_wrappers.methods import MethodConfig

    tokenizer = processor.tokenizer
    eos_ids, pad = eos_and_pad(model, tokenizer)
    settings = DecodeSettings(max_new_tokens=max_new_tokens, eos_token_ids=eos_ids, pad_token_id=pad)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    layer_arg = None if layers is None else "|".join(str(layer) for layer in layers)
    answers = []
    with image_scaling_backend(model):
        for method in (
            MethodConfig.from_model_args(method="baseline"),
            MethodConfig.from_model_args(method="scaling_vis", alpha=alpha, layers=layer_arg),
        ):
            (output,) = generate(model, prompt_batch(model, inputs), method, settings, need_confidence=False)
            answers.append(tokenizer.decode(output.tokens, skip_special_tokens=True).strip())
    return answers[0], answers[1]


def describe_outputs(
    result: AttentionResult, answers: tuple[str, str], layers: Sequence[int], out: Path, method: str
) -> str:
    """What the command prints: the answer before and after, the image share, and what was written where."""
    shares = share_rows(result)
    before = sum(r["image_before"] for r in shares) / len(shares)
    after = sum(r["image_after"] for r in shares) / len(shares)
    suffixes = [""] if len(result.grid.parts) == 1 else [f"_{name}" for name, *_ in result.grid.parts]
    first, last = f"{min(layers):02d}", f"{max(layers):02d}"
    span = first if first == last else f"{first}..{last}"
    lines = [
        f"adaptvis attention: {method}, alpha applied = {result.alpha:g} (first-token confidence C = "
        f"{result.confidence:.3f} under alpha = 1)",
        f"  answer before (alpha = 1):   {answers[0]!r}",
        f"  answer after (alpha = {result.alpha:g}): {answers[1]!r}",
        f"  image share of the last prompt token's attention, mean over layers: {before:.3f} -> {after:.3f}",
        f"wrote to {out}:",
    ]
    for suffix in suffixes:
        lines += [
            f"  layer<L>{suffix}_{{before,after}}.png        attention on the image, with a colour bar (layers {span})",
            f"  grid_layer<L>{suffix}_{{before,after}}.png   the raw map, one greyscale pixel per patch",
            f"  grid_layer<L>{suffix}_{{before,after}}_large.png  the same, enlarged without smoothing",
        ]
    lines.append("  attention_share.csv|json|png        image vs text share per layer, before and after")
    return "\n".join(lines)


def share_rows(result: AttentionResult) -> list[dict[str, Any]]:
    """Per layer: attention share on image tokens and on text tokens, before and after."""
    rows = []
    for layer in result.layers:
        before, after = result.share(layer, "before"), result.share(layer, "after")
        rows.append(
            {
                "layer": layer,
                "image_before": before,
                "text_before": 1 - before,
                "image_after": after,
                "text_after": 1 - after,
            }
        )
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adaptvis attention``."""
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("--pretrained", required=True, help="checkpoint folder or hub id (LLaVA-1.5/1.6, Qwen2-VL)")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--question", required=True, help="the question with its options, e.g. as in WhatsUp")
    # The methods whose parameters choose one Eq. 2 alpha per sample (``alpha_for``), from the registry.
    probed = [name for name in method_names() if hasattr(method_spec(name).parameters, "alpha_for")]
    parser.add_argument("--method", choices=probed, default="scaling_vis")
    parser.add_argument("--alpha", type=float, help="scaling_vis coefficient")
    parser.add_argument("--alpha1", type=float)
    parser.add_argument("--alpha2", type=float)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--confidence-rule", choices=CONFIDENCE_RULES, default="paper_rounded")
    parser.add_argument("--intervene-layers", default="all", help="layers Eq. 2 acts on (as the layers= model arg)")
    parser.add_argument("--layers", default="all", help="layers to draw maps for: all, i, a-b, i|j (default all)")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, float16, auto")
    parser.add_argument(
        "--max-new-tokens", type=int, default=16, help="length of the answers shown before/after (default 16)"
    )


def _check_method(args: argparse.Namespace) -> None:
    needed = method_spec(args.method).parameters.required
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise AnalysisError(f"--method {args.method} needs {', '.join(missing)}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``adaptvis attention``."""

    def body() -> int:
        _check_method(args)
        image = open_rgb(args.image, what="--image")
        loaded = load_checkpoint(
            args.pretrained,
            allowed_model_types=tuple(entry.model_type for entry in families()),
            wrapper_name="adaptvis attention",
            device=torch.device(args.device),
            dtype=args.dtype,
        )
        intervened = parse_layers(args.intervene_layers)
        result = run_attention(
            loaded.model.eval(),
            loaded.processor,
            image,
            args.question,
            args.method,
            args.alpha,
            args.alpha1,
            args.alpha2,
            args.threshold,
            args.confidence_rule,
            intervened,
        )
        drawn = parse_layers(args.layers)
        layers = result.layers if drawn is None else list(drawn)
        bad = [layer for layer in layers if layer not in result.layers]
        if bad:
            raise AnalysisError(f"--layers {args.layers}: the model has layers 0..{len(result.layers) - 1}")
        view = model_view(loaded.model, loaded.processor, image, result.grid.parts[0])
        written = write_outputs(result, image, view, layers, args.output_dir)
        answers = answers_before_after(
            loaded.model, loaded.processor, image, result.prompt, result.alpha, intervened, args.max_new_tokens
        )
        summary = json.loads((args.output_dir / "attention_share.json").read_text(encoding="utf-8"))
        summary.update(answer_before=answers[0], answer_after=answers[1], method=args.method)
        (args.output_dir / "attention_share.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        print(describe_outputs(result, answers, layers, args.output_dir, args.method))
        print(f"wrote {len(written)} files to {args.output_dir}", file=sys.stderr)
        return 0

    return run_tool(body)
