"""Convert an original-format LLaVA-1.5 checkpoint (haotian-liu/LLaVA layout) into one this suite loads.

Usage::

    python -m model_wrappers.convert_llava_original SRC DST [--vision-tower CLIP]

``SRC`` is a folder as the LLaVA training code writes it -- ``config.json`` with ``mm_*`` fields,
``model*.safetensors`` or ``pytorch_model*.bin`` shards with keys such as ``model.layers.*``,
``model.mm_projector.*`` and (usually) ``model.vision_tower.vision_tower.*``, and the tokenizer
files. This includes the *Beyond Semantics* checkpoints (``llava-v1.5-7b-normWmean``,
``llava-v1.5-7b-multilayerNorm``), whose ``config.json`` sets ``normalize_projector`` and/or
``use_multilayer_features``. ``DST`` becomes a complete ``llava`` (llava-hf layout) folder: weights,
config, tokenizer (with an ``<image>`` token added) and processor. What the transformers classes
cannot express is declared in ``config.json`` (``adaptvis_vision_extras``) and installed by the
loader (``model_wrappers.vision_extras.install_checkpoint_vision_extras``). Details: docs/guides/VISION.md.

The CLIP tower's config (and its weights, when SRC lacks them) come from ``--vision-tower``, by
default SRC's ``mm_vision_tower`` (e.g. ``openai/clip-vit-large-patch14-336``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

MULTILAYER_FEATURE_LAYERS = (12, 16, 20, 24)
"""beyond-semantics ``encode_images``: CLIP layers 12, 16, 20, 24 (1-based), i.e. transformers
``hidden_states[12]``, ``[16]``, ``[20]``, ``[24]`` (``hidden_states[0]`` is the embedding output)."""

_LLAMA_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "attention_bias",
    "mlp_bias",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
)
_UNSUPPORTED_FLAGS = (
    "add_spatial_coordinates",
    "add_registers",
    "compression_after_projection",
    "interleave",
    "rearrange_image_features",
    "mm_use_im_start_end",
    "s2",
)


class ConversionError(ValueError):
    """The source folder is not an original-format LLaVA-1.5 checkpoint this converter handles."""


def _read_state_dict(src: Path) -> dict[str, torch.Tensor]:
    """All tensors of the source shards (safetensors preferred, else PyTorch ``.bin``)."""
    from safetensors.torch import load_file

    shards = sorted(src.glob("*.safetensors"))
    if shards:
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(load_file(str(shard)))
        return tensors
    shards = sorted(src.glob("pytorch_model*.bin"))
    if not shards:
        raise ConversionError(
            f"{src}: no weights (*.safetensors or pytorch_model*.bin) found; give the folder of an original "
            "LLaVA checkpoint"
        )
    tensors = {}
    for shard in shards:
        tensors.update(torch.load(shard, map_location="cpu", weights_only=True))
    return tensors


def _check_source_config(src: Path, config: dict) -> None:
    if "mm_vision_tower" not in config:
        raise ConversionError(f"{src}/config.json has no mm_vision_tower: not an original-format LLaVA checkpoint")
    model_type = config.get("model_type")
    if model_type not in ("llava_llama", "llava"):
        raise ConversionError(
            f"{src}/config.json: model_type={model_type!r}; only LLaVA-1.5 on Llama (llava_llama) is supported"
        )
    if config.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise ConversionError(
            f"{src}/config.json: mm_projector_type={config.get('mm_projector_type')!r}; only mlp2x_gelu "
            "(LLaVA-1.5's projector) is supported"
        )
    if config.get("mm_patch_merge_type", "flat") != "flat":
        raise ConversionError(f"{src}/config.json: mm_patch_merge_type must be flat (LLaVA-1.5)")
    for flag in _UNSUPPORTED_FLAGS:
        if config.get(flag):
            raise ConversionError(f"{src}/config.json sets {flag}, which this converter does not support")
    if config.get("mm_vision_select_feature", "patch") not in ("patch", "cls_patch"):
        raise ConversionError(f"{src}/config.json: unknown mm_vision_select_feature")


def _rename(key: str, normalized: bool) -> str | None:
    """Original key -> llava-hf key; ``None`` for tensors that are recomputed (rotary ``inv_freq``)."""
    if key.endswith("rotary_emb.inv_freq"):
        return None
    if key.startswith("model.vision_tower.vision_tower."):
        # CLIPVisionModel of transformers 4.x nests everything under vision_model; 5.x does not
        inner = key.removeprefix("model.vision_tower.vision_tower.")
        return "model.vision_tower." + inner.removeprefix("vision_model.")
    if key.startswith("model.mm_projector."):
        rest = key.removeprefix("model.mm_projector.")
        if normalized:
            if rest == "norm.weight":
                return "extras:norm.weight"
            if not rest.startswith("projector."):
                raise ConversionError(f"unexpected normalized-projector tensor {key}")
            rest = rest.removeprefix("projector.")
        index, _, param = rest.partition(".")
        linear = {"0": "linear_1", "2": "linear_2"}.get(index)
        if linear is None:
            raise ConversionError(f"unexpected projector tensor {key} (mlp2x_gelu has layers 0 and 2)")
        return f"model.multi_modal_projector.{linear}.{param}"
    if key.startswith("model."):
        return "model.language_model." + key.removeprefix("model.")
    if key == "lm_head.weight":
        return key
    raise ConversionError(f"unexpected tensor {key}")


def convert(src: str | Path, dst: str | Path, vision_tower: str | None = None) -> Path:
    """Write the converted checkpoint folder ``dst``; returns it."""
    from safetensors.torch import save_file
    from transformers import (
        AddedToken,
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessor,
        LlavaProcessor,
    )

    from model_wrappers.vision_extras import EXTRAS_FIELD, EXTRAS_WEIGHTS, NormalizedProjectorSpec

    src, dst = Path(src), Path(dst)
    if not (src / "config.json").is_file():
        raise ConversionError(f"{src}: no config.json; give the folder of an original LLaVA checkpoint")
    source = json.loads((src / "config.json").read_text())
    _check_source_config(src, source)
    normalized = bool(source.get("normalize_projector", False))
    multilayer = bool(source.get("use_multilayer_features", False))
    tower = vision_tower or source["mm_vision_tower"]
    try:
        vision_config = CLIPVisionConfig.from_pretrained(tower)
    except Exception as error:
        raise ConversionError(
            f"cannot read the CLIP vision config of {tower!r} ({error}); give --vision-tower with a local "
            "CLIP folder (e.g. a download of openai/clip-vit-large-patch14-336)"
        ) from error
    if multilayer and vision_config.num_hidden_layers < max(MULTILAYER_FEATURE_LAYERS):
        raise ConversionError(
            f"use_multilayer_features takes CLIP layers {MULTILAYER_FEATURE_LAYERS}, but {tower!r} has "
            f"{vision_config.num_hidden_layers} layers"
        )

    original = _read_state_dict(src)
    renamed: dict[str, torch.Tensor] = {}
    extras: dict[str, torch.Tensor] = {}
    for key, tensor in original.items():
        new = _rename(key, normalized)
        if new is None:
            continue
        if new.startswith("extras:"):
            extras[new.removeprefix("extras:")] = tensor.contiguous()
        else:
            renamed[new] = tensor
    if normalized and "norm.weight" not in extras:
        raise ConversionError(f"{src}: normalize_projector is set but model.mm_projector.norm.weight is missing")
    if not any(k.startswith("model.vision_tower.") for k in renamed):
        tower_model = CLIPVisionModel.from_pretrained(tower)
        for key, tensor in tower_model.state_dict().items():
            renamed[f"model.vision_tower.{key}"] = tensor

    tokenizer = AutoTokenizer.from_pretrained(src)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # LLaVA-1.5 (conversation v1) pads with <unk>
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    tokenizer.padding_side = "left"

    text_values = {k: source[k] for k in _LLAMA_KEYS if k in source}
    text_values["pad_token_id"] = tokenizer.pad_token_id
    old_vocab = renamed["model.language_model.embed_tokens.weight"].shape[0]
    new_vocab = max(old_vocab, len(tokenizer))
    text_values["vocab_size"] = new_vocab
    for name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        weight = renamed[name]
        if new_vocab > old_vocab:
            # New rows (the <image> placeholder) = the mean row: deterministic, and a mean lm_head row's
            # logit is the mean of the others', never above their maximum, so greedy decoding is unchanged.
            mean = weight.float().mean(dim=0, keepdim=True).to(weight.dtype)
            renamed[name] = torch.cat([weight, mean.expand(new_vocab - old_vocab, -1)], dim=0)
    text_config = LlamaConfig(**text_values)

    select_feature = source.get("mm_vision_select_feature", "patch")
    strategy = "default" if (multilayer or select_feature == "patch") else "full"
    layers = list(MULTILAYER_FEATURE_LAYERS) if multilayer else int(source.get("mm_vision_select_layer", -2))
    num_patches = (vision_config.image_size // vision_config.patch_size) ** 2
    dtype = renamed["model.language_model.embed_tokens.weight"].dtype
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=image_token_id,
        vision_feature_layer=layers,
        vision_feature_select_strategy=strategy,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        image_seq_length=num_patches + (0 if strategy == "default" else 1),
        pad_token_id=tokenizer.pad_token_id,
    )
    declared: dict[str, object] = {}
    if normalized:
        declared["normalized_projector"] = NormalizedProjectorSpec(weight=extras["norm.weight"]).declaration()
    if multilayer:
        declared["per_layer_post_layernorm"] = True
    if declared:
        declared["origin"] = "user074/beyond-semantics (arXiv 2503.17349), converted by model_wrappers"
        setattr(config, EXTRAS_FIELD, declared)

    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(renamed)), sorted(set(renamed) - expected)
    if missing or unexpected:
        raise ConversionError(
            f"{src}: the weights do not match a LLaVA-1.5 of this config (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]})"
        )
    model.load_state_dict(renamed, strict=True, assign=True)
    model = model.to(dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id

    try:
        clip_processor = CLIPImageProcessor.from_pretrained(tower)
        processor_kwargs = {
            "size": clip_processor.size,
            "crop_size": clip_processor.crop_size,
            "image_mean": clip_processor.image_mean,
            "image_std": clip_processor.image_std,
            "resample": clip_processor.resample,
        }
    except Exception:
        processor_kwargs = {
            "size": {"shortest_edge": vision_config.image_size},
            "crop_size": {"height": vision_config.image_size, "width": vision_config.image_size},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        }
    # image_aspect_ratio=pad (LLaVA-1.5): expand2square with the mean colour, then CLIP preprocessing.
    pad = source.get("image_aspect_ratio", "square") == "pad"
    image_processor = LlavaImageProcessor(do_pad=pad, do_center_crop=True, **processor_kwargs)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision_config.patch_size,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=1,
    )

    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    if extras:
        save_file(extras, str(dst / EXTRAS_WEIGHTS))
    (dst / "CONVERTED_FROM.json").write_text(
        json.dumps(
            {
                "source": str(src),
                "vision_tower": tower,
                "normalize_projector": normalized,
                "use_multilayer_features": multilayer,
                "converter": "python -m model_wrappers.convert_llava_original",
            },
            indent=2,
        )
        + "\n"
    )
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m model_wrappers.convert_llava_original",
        description="Convert an original-format LLaVA-1.5 checkpoint (incl. beyond-semantics) to a folder "
        "llava_adaptvis loads.",
    )
    parser.add_argument("src", help="folder of the original checkpoint (config.json with mm_* fields, weights)")
    parser.add_argument("dst", help="output folder (created)")
    parser.add_argument("--vision-tower", help="CLIP folder or hub id (default: the source's mm_vision_tower)")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.vision_tower)
    except ConversionError as error:
        print(f"convert_llava_original: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
