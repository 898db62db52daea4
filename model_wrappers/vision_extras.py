"""Checkpoint vision extras: what a checkpoint converted from *Beyond Semantics* declares, installed at load.

Part of a checkpoint converted from the original LLaVA format of *Beyond Semantics* (Qi et al.,
2025; ``model_wrappers.convert_llava_original``). The transformers ``LlavaMultiModalProjector``
cannot express its ``NormalizedProjector`` (RMSNorm, norm clip at 1.22, scale by 0.83) nor the
LayerNorm it applies to every intermediate vision layer, so the converted folder declares them in
``config.json`` (field :data:`EXTRAS_FIELD`) plus a small weights file, and
:func:`install_checkpoint_vision_extras` turns the declaration into permanent hooks on the
projector at load time (``model_wrappers.loading``). The per-call vision options live in
``model_wrappers.vision``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from model_wrappers.errors import CheckpointError
from model_wrappers.families import family_spec

EXTRAS_FIELD = "adaptvis_vision_extras"
"""``config.json`` field that declares a converted checkpoint's vision extras."""
EXTRAS_WEIGHTS = "adaptvis_vision_extras.safetensors"
"""Weights file of the extras (the learned RMSNorm weight of the normalised projector)."""


# --- the original NormalizedProjector ------------------------------------------------------


@dataclass(frozen=True)
class NormalizedProjectorSpec:
    """beyond-semantics ``NormalizedProjector`` (LLaVA/llava/model/multimodal_projector/builder.py).

    Per token, after the MLP projector: RMSNorm with a learned ``weight`` (float32 inside, eps
    1e-6), clip the L2 norm to ``max_norm`` (1.22), multiply by ``target_mean`` (0.83).
    """

    weight: torch.Tensor
    eps: float = 1e-6
    max_norm: float = 1.22
    target_mean: float = 0.83

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The original forward after ``self.projector(x)``, operation for operation."""
        input_dtype = x.dtype
        hidden = x.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        x = self.weight.to(device=x.device, dtype=input_dtype) * hidden.to(input_dtype)
        norms = torch.norm(x, dim=-1, keepdim=True)
        scale = torch.minimum(self.max_norm / norms, torch.ones_like(norms))
        x = x * scale
        return x * self.target_mean

    def declaration(self) -> dict[str, object]:
        """The ``normalized_projector`` entry of :data:`EXTRAS_FIELD` that reinstalls this spec on load
        (:func:`install_checkpoint_vision_extras`; the weight itself goes to :data:`EXTRAS_WEIGHTS`)."""
        return {"weights": EXTRAS_WEIGHTS, "eps": self.eps, "max_norm": self.max_norm, "target_mean": self.target_mean}


def projector_module(model) -> torch.nn.Module:
    """The module whose output is the vision tokens the language model receives (the family declares it)."""
    return family_spec(model).projector(model)


def _vision_hidden_size(model) -> int:
    return int(model.config.vision_config.hidden_size)


def _projector_in_features(model) -> int | None:
    projector = projector_module(model)
    linear = getattr(projector, "linear_1", None)
    return int(linear.in_features) if linear is not None else None


def _post_layernorm_each_layer(model):
    """Pre-hook: CLIP ``post_layernorm`` on each vision layer of the concatenated projector input.

    The original ``extract_multilayer_features`` (llava_arch.py) applies the vision tower's
    ``post_layernorm`` to the output of every layer before concatenating layers 12/16/20/24;
    transformers concatenates the raw ``hidden_states``. LayerNorm acts per token on one layer's
    channels, so applying it to each ``hidden_size`` chunk of the concatenation is the same.
    """
    tower = model.model.vision_tower
    post_layernorm = getattr(tower, "vision_model", tower).post_layernorm
    width = _vision_hidden_size(model)

    def hook(module, args):
        (features,) = args
        if features.shape[-1] % width:
            raise RuntimeError(
                f"per-layer post_layernorm: projector input has {features.shape[-1]} channels, not a multiple of the "
                f"vision width {width}"
            )
        chunks = features.split(width, dim=-1)
        return (torch.cat([post_layernorm(chunk) for chunk in chunks], dim=-1),)

    return hook


def install_checkpoint_vision_extras(model, pretrained: str, revision: str | None = None) -> list[str]:
    """Install the vision extras a converted checkpoint declares in ``config.json``; returns their names.

    A checkpoint without :data:`EXTRAS_FIELD` is left untouched (returns ``[]``). The hooks are
    permanent: they are part of the checkpoint's model, like its weights.
    """
    declared = getattr(model.config, EXTRAS_FIELD, None)
    if not declared:
        return []
    where = f"pretrained={pretrained!r}: config.json field {EXTRAS_FIELD}"
    if not isinstance(declared, Mapping) or not family_spec(model).checkpoint_extras:
        raise CheckpointError(f"{where} is only defined for LLaVA-1.5 (model_type llava) checkpoints as an object")
    unknown = set(declared) - {"origin", "normalized_projector", "per_layer_post_layernorm"}
    if unknown:
        raise CheckpointError(f"{where} has unknown entries {sorted(unknown)}; convert the checkpoint again")
    projector = projector_module(model)
    installed = []
    if declared.get("per_layer_post_layernorm"):
        projector.register_forward_pre_hook(_post_layernorm_each_layer(model))
        installed.append("per_layer_post_layernorm")
    spec = declared.get("normalized_projector")
    if spec:
        from safetensors.torch import load_file
        from transformers.utils import cached_file

        filename = spec.get("weights", EXTRAS_WEIGHTS)
        try:
            path = cached_file(pretrained, filename, revision=revision)
            weight = load_file(path)["norm.weight"]
        except Exception as error:
            raise CheckpointError(
                f"{where} declares a normalized projector whose weights {filename} cannot be read ({error}); "
                "the folder is incomplete: convert the original checkpoint again"
            ) from error
        hidden = int(model.config.text_config.hidden_size)
        if tuple(weight.shape) != (hidden,):
            raise CheckpointError(f"{where}: {filename} norm.weight has shape {tuple(weight.shape)}, not ({hidden},)")
        normalized = NormalizedProjectorSpec(
            weight=weight,
            eps=float(spec.get("eps", 1e-6)),
            max_norm=float(spec.get("max_norm", 1.22)),
            target_mean=float(spec.get("target_mean", 0.83)),
        )
        projector.register_forward_hook(lambda module, args, output: normalized.apply(output))
        installed.append("normalized_projector")
    return installed
