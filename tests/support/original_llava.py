"""Tiny checkpoints in the ORIGINAL LLaVA format of beyond-semantics, and a plain re-implementation.

The layout follows the code of https://github.com/user074/beyond-semantics (LLaVA/llava/...):
``config.json`` of a ``LlavaLlamaForCausalLM`` (``model_type: llava_llama``) with the ``mm_*``
fields ``initialize_vision_modules`` writes plus ``normalize_projector`` and
``use_multilayer_features``; weights under the original names -- ``model.embed_tokens``,
``model.layers.*``, ``lm_head``, ``model.mm_projector.{0,2}.*`` (wrapped as
``model.mm_projector.projector.{0,2}.*`` + ``model.mm_projector.norm.weight`` by
``NormalizedProjector``) and ``model.vision_tower.vision_tower.vision_model.*`` (the
``CLIPVisionTower`` wrapper around a ``CLIPVisionModel``); a tokenizer without ``<image>``.

:func:`reference_vision_tokens` recomputes what the original ``encode_images`` feeds the LLM
straight from those original tensors, without any code of the product.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tests.support.tiny_checkpoints import _train_tokenizer

VISION_WIDTH = 16
VISION_LAYERS = 24  # the original multi-layer path hard-codes CLIP layers 12/16/20/24
IMAGE_SIZE = 56
HIDDEN = 64


def build_clip_folder(path: Path, seed: int = 1) -> Path:
    """A tiny CLIP vision tower folder (config, weights, preprocessor) in place of openai/clip-vit-large-patch14-336."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=VISION_WIDTH,
        intermediate_size=VISION_WIDTH * 2,
        num_hidden_layers=VISION_LAYERS,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=14,
        initializer_range=0.4,
        initializer_factor=20.0,
    )
    model = CLIPVisionModel(config).eval()
    # give post_layernorm a non-trivial affine map, so that forgetting it is visible
    with torch.no_grad():
        model.post_layernorm.weight.uniform_(0.5, 2.0)
        model.post_layernorm.bias.uniform_(-0.5, 0.5)
    model.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(path)
    return path


def build_original_llava(
    path: Path,
    clip_dir: Path,
    normalize: bool,
    multilayer: bool,
    include_vision_tower: bool = True,
    weights_format: str = "safetensors",
    seed: int = 0,
) -> Path:
    """Write a tiny original-format LLaVA-1.5 / beyond-semantics checkpoint folder."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    special = ["<unk>", "<s>", "</s>"]
    raw = _train_tokenizer(special, 600, bos="<s>", unk="<unk>")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(path)
    ids = {t: raw.token_to_id(t) for t in special}
    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=raw.get_vocab_size(),
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        initializer_range=0.4,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=None,
    )
    state = dict(LlamaForCausalLM(llama).state_dict())
    mm_in = VISION_WIDTH * (4 if multilayer else 1)
    prefix = "model.mm_projector.projector." if normalize else "model.mm_projector."
    state[prefix + "0.weight"] = torch.randn(HIDDEN, mm_in) * 0.5
    state[prefix + "0.bias"] = torch.randn(HIDDEN) * 0.1
    state[prefix + "2.weight"] = torch.randn(HIDDEN, HIDDEN) * 0.3
    state[prefix + "2.bias"] = torch.randn(HIDDEN) * 0.1
    if normalize:
        # learned RMSNorm weight; chosen so that some token norms fall below the 1.22 clip and some above
        state["model.mm_projector.norm.weight"] = torch.rand(HIDDEN) * 0.245
    if include_vision_tower:
        for key, tensor in CLIPVisionModel.from_pretrained(clip_dir).state_dict().items():
            # transformers 4.x (the original code's) CLIPVisionModel names: vision_model.<...>
            state[f"model.vision_tower.vision_tower.vision_model.{key}"] = tensor.clone()
    state = {k: v.contiguous() for k, v in state.items()}
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    if weights_format == "safetensors":
        weight_map = {}
        for i, part in enumerate(halves, start=1):
            name = f"model-0000{i}-of-00002.safetensors"
            save_file({k: state[k] for k in part}, str(path / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(part, name))
        index = {"metadata": {}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        for i, part in enumerate(halves, start=1):
            torch.save({k: state[k] for k in part}, path / f"pytorch_model-0000{i}-of-00002.bin")
    config = {
        **llama.to_dict(),
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava_llama",
        "mm_vision_tower": str(clip_dir),
        "mm_hidden_size": VISION_WIDTH,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "flat",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "tokenizer_padding_side": "right",
        "use_mm_proj": True,
        "add_spatial_coordinates": False,
        "compression_after_projection": False,
        "final_spatial_size": 16,
        "add_registers": False,
        "num_registers": 4,
        "normalize_projector": normalize,
        "use_multilayer_features": multilayer,
        "num_vision_tokens": 576,
        "torch_dtype": "float32",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def read_original_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    for shard in sorted(path.glob("pytorch_model*.bin")):
        state.update(torch.load(shard, weights_only=True))
    return state


def reference_vision_tokens(original: Path, clip_dir: Path, pixel_values: torch.Tensor) -> torch.Tensor:
    """What beyond-semantics ``encode_images`` hands the LLM, from the original tensors: [images, tokens, hidden]."""
    from transformers import CLIPVisionModel

    config = json.loads((original / "config.json").read_text())
    state = read_original_state(original)
    clip = CLIPVisionModel.from_pretrained(clip_dir, attn_implementation="eager").eval()
    tower = {
        k.removeprefix("model.vision_tower.vision_tower.vision_model."): v
        for k, v in state.items()
        if "vision_tower" in k
    }
    if tower:
        clip.load_state_dict(tower)
    vm = clip  # transformers 5: the CLIPVisionTransformer modules sit on CLIPVisionModel itself
    with torch.no_grad():
        if config["use_multilayer_features"]:
            # extract_multilayer_features: run every layer by hand, post_layernorm on each output, drop CLS
            h = vm.pre_layrnorm(vm.embeddings(pixel_values))
            outputs = []
            for layer in vm.encoder.layers:
                residual = h
                h = residual + layer.self_attn(layer.layer_norm1(h))[0]
                residual = h
                h = residual + layer.mlp(layer.layer_norm2(h))
                outputs.append(vm.post_layernorm(h))
            stacked = torch.stack(outputs, dim=1)[:, :, 1:, :]
            features = torch.cat([stacked[:, 11], stacked[:, 15], stacked[:, 19], stacked[:, 23]], dim=-1)
        else:
            # CLIPVisionTower.feature_select: hidden_states[mm_vision_select_layer], patch tokens only
            hidden = clip(pixel_values, output_hidden_states=True).hidden_states
            features = hidden[config["mm_vision_select_layer"]][:, 1:]
        prefix = "model.mm_projector.projector." if config["normalize_projector"] else "model.mm_projector."
        x = F.linear(features, state[prefix + "0.weight"], state[prefix + "0.bias"])
        x = F.linear(F.gelu(x), state[prefix + "2.weight"], state[prefix + "2.bias"])
        if config["normalize_projector"]:
            x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * state["model.mm_projector.norm.weight"]
            norms = x.norm(dim=-1, keepdim=True)
            x = torch.where(norms > 1.22, x * (1.22 / norms), x) * 0.83
    return x
