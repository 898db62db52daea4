"""``adaptvis norms``: vision- vs text-token L2 norms of a checkpoint, printed and plotted.

The diagnostic of *Beyond Semantics* (Qi et al., 2025; diagnostic_tools/vlm_token_norms.py in
user074/beyond-semantics): vision tokens as the language model receives them (vision tower ->
projector, including a converted checkpoint's normalised projector) against text-token input
embeddings. Three distributions are reported:

* ``vision``: every vision token of the given images (``--images``; by default eight generated
  images of coloured shapes), optionally under ``--vision-norm`` / ``--vision-layer``;
* ``text (prompts)``: the input embeddings of the tokens of the prompts (``--texts``; by default
  WhatsUp-style questions), as the reference measures caption tokens;
* ``text (vocabulary)``: every row of the ordinary vocabulary -- the population ``vision_norm``
  takes its statistic from (``model_wrappers.vision.text_embedding_norms``).

The plot (PNG, matplotlib) has one histogram per distribution on a shared log axis, each with its
own y scale (so the few, spread vision norms stay visible), and the mean ratio in its title.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adaptvis_tasks.families import families

DEFAULT_TEXTS = (
    "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under.",
    "Where is the dining table in the photo? Answer with left, right, top or bottom.",
    "Is the cat on the left of the dog?",
)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pretrained", help="checkpoint folder or hub id (llava, llava_next or qwen2_vl)")
    parser.add_argument("--images", nargs="*", default=None, help="image files or folders (default: 8 generated)")
    parser.add_argument("--texts", nargs="*", default=None, help="prompt texts (default: WhatsUp-style questions)")
    parser.add_argument("--vision-norm", default=None, help="apply vision_norm= (mean, median, max or a number)")
    parser.add_argument("--vision-layer", default=None, help="apply vision_layer= (index or a|b|c)")
    parser.add_argument("--plot", default="token_norms.png", help="PNG to write (default: token_norms.png)")
    parser.add_argument("--json", default=None, help="also write the summary statistics as JSON here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")


def _image_files(items: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"--images: {item} is neither an image file nor a folder")
    if not files:
        raise FileNotFoundError(f"--images {' '.join(items)}: no image files ({', '.join(_IMAGE_SUFFIXES)})")
    return files


def _generated_images(count: int = 8):
    from PIL import Image, ImageDraw

    images = []
    for i in range(count):
        image = Image.new("RGB", (160 + 16 * i, 128), ((37 * i) % 256, (91 * i + 60) % 256, (53 * i + 120) % 256))
        draw = ImageDraw.Draw(image)
        draw.rectangle((10 + 8 * i, 20, 60 + 8 * i, 70), fill=(220, 30, 30))
        draw.ellipse((90, 40 + 4 * i, 140, 90 + 4 * i), fill=(30, 30, 220))
        images.append(image)
    return images


def summary(values) -> dict[str, float]:
    """count, mean, median, 5th/95th percentile, min and max of a 1-D tensor."""
    import torch

    v = values.float()
    q = torch.quantile(v, torch.tensor([0.05, 0.5, 0.95]))
    return {
        "count": int(v.numel()),
        "mean": float(v.mean()),
        "median": float(q[1]),
        "p5": float(q[0]),
        "p95": float(q[2]),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def measure(loaded, images, texts, vision=None) -> dict[str, object]:
    """Norm tensors ``vision``, ``text (prompts)``, ``text (vocabulary)`` for a loaded checkpoint."""
    import torch

    from adaptvis_tasks.images import to_rgb
    from model_wrappers.families import family_spec
    from model_wrappers.prompting import chat_prompt, llava15_prompt
    from model_wrappers.vision import projector_module, text_embedding_norms, vision_inputs

    model, processor = loaded.model, loaded.processor
    captured: list[torch.Tensor] = []

    def capture(module, args, output):
        captured.append(output.detach().float().reshape(-1, output.shape[-1]))

    for image in images:
        prompt = "Describe the image."
        paper = family_spec(loaded.model_type).default_prompt_style == "paper"
        text = llava15_prompt(prompt) if paper else chat_prompt(processor, prompt, "norms")
        inputs = processor(images=[to_rgb(image)], text=[text], return_tensors="pt").to(model.device)
        keys = ["norms"] if vision is not None and vision.options.token_order == "shuffled" else None
        with torch.no_grad(), vision_inputs(model, vision, sample_keys=keys):
            # registered after the options' hooks, so it sees what the language model receives
            handle = projector_module(model).register_forward_hook(capture)
            try:
                model(**inputs)
            finally:
                handle.remove()
    vision_norms = torch.cat([c.norm(dim=-1) for c in captured]).cpu()
    embeddings = model.get_input_embeddings()
    prompt_norms = []
    for text in texts:
        ids = processor.tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
        with torch.no_grad():
            prompt_norms.append(embeddings(ids)[0].float().norm(dim=-1).cpu())
    return {
        "vision": vision_norms,
        "text (prompts)": torch.cat(prompt_norms),
        "text (vocabulary)": text_embedding_norms(model, processor.tokenizer).cpu(),
    }


def plot(norms: dict[str, object], path: Path, title: str) -> None:
    """One histogram per distribution (log-spaced bins, shared log x axis), as a PNG.

    Each panel has its own y scale and shows the share of that distribution's tokens per bin, so a
    distribution of few, widely spread norms (the vision tokens) is as visible as a narrow one; a
    dashed line marks each mean.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = {name: np.asarray(v, dtype=np.float64) for name, v in norms.items()}
    positive = np.concatenate([v[v > 0] for v in values.values()])
    bins = np.geomspace(positive.min(), positive.max() * 1.0001, 60)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = plt.subplots(len(values), 1, figsize=(7, 1.6 + 1.5 * len(values)), sharex=True, squeeze=False)
    for index, (axis, (name, v)) in enumerate(zip(axes[:, 0], values.items(), strict=True)):
        kept = v[v > 0]
        colour = colours[index % len(colours)]
        axis.hist(kept, bins=bins, weights=np.full(kept.size, 1 / max(kept.size, 1)), color=colour)
        axis.axvline(float(kept.mean()), color="black", linestyle="--", linewidth=1)
        axis.set_ylabel("share", fontsize=8)
        axis.set_title(f"{name}: n={v.size}, mean {kept.mean():.4g}", fontsize=8, loc="left")
    axes[-1, 0].set_xscale("log")
    axes[-1, 0].set_xlabel("L2 norm (log scale); dashed: mean")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    import sys

    import torch
    from PIL import Image

    from model_wrappers.loading import CheckpointError, load_checkpoint
    from model_wrappers.methods import MethodArgumentError
    from model_wrappers.vision import VisionOptions

    try:
        images = [Image.open(p) for p in _image_files(args.images)] if args.images else _generated_images()
        loaded = load_checkpoint(
            args.pretrained,
            tuple(entry.model_type for entry in families()),
            "adaptvis norms",
            torch.device(args.device),
            dtype=args.dtype,
        )
        options = VisionOptions.from_model_args(vision_norm=args.vision_norm, vision_layer=args.vision_layer)
        vision = options.resolve(loaded.model, loaded.processor.tokenizer) if options.active else None
    except (FileNotFoundError, OSError, CheckpointError, MethodArgumentError) as error:
        print(f"adaptvis norms: {error}", file=sys.stderr)
        return 2
    norms = measure(loaded, images, list(args.texts or DEFAULT_TEXTS), vision)
    stats = {name: summary(values) for name, values in norms.items()}
    print(f"{'tokens':<20}{'count':>8}{'mean':>11}{'median':>11}{'p5':>11}{'p95':>11}{'max':>11}")
    for name, s in stats.items():
        print(
            f"{name:<20}{s['count']:>8}{s['mean']:>11.4g}{s['median']:>11.4g}{s['p5']:>11.4g}{s['p95']:>11.4g}"
            f"{s['max']:>11.4g}"
        )
    ratio = stats["vision"]["mean"] / stats["text (vocabulary)"]["mean"]
    print(f"mean vision norm / mean vocabulary norm = {ratio:.4g}")
    setting = f" {vision.describe()}" if vision is not None else ""
    plot(norms, Path(args.plot), f"{args.pretrained}{setting}\nmean vision norm / mean vocabulary norm = {ratio:.4g}")
    print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pretrained": args.pretrained, "stats": stats}, indent=2) + "\n")
    return 0
