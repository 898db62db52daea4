"""Per-call vision-input options, as small reversible hooks.

Two kinds of vision mechanism exist (docs/guides/VISION.md says which is the paper's and which is ours):

* **Checkpoint extras** -- installed at load time from a converted checkpoint's declaration; they
  live in ``model_wrappers.vision_extras`` (re-exported here for existing callers).
* **Per-call options** (``vision_norm``, ``vision_layer``, ``vision_token_order``; parsed by
  :class:`VisionOptions`) -- training-free additions of this suite, installed by
  :func:`vision_inputs` for one ``generate`` call and removed in ``finally``. They act on the
  projector, which only runs in the prefill (the one forward that sees ``pixel_values``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch

from adaptvis_tasks.families import families
from model_wrappers.errors import MethodArgumentError
from model_wrappers.families import family_spec
from model_wrappers.vision_extras import (  # noqa: F401 (re-exported: the checkpoint extras' public names)
    EXTRAS_FIELD,
    EXTRAS_WEIGHTS,
    NormalizedProjectorSpec,
    _projector_in_features,
    _vision_hidden_size,
    install_checkpoint_vision_extras,
    projector_module,
)

NORM_STATISTICS = ("mean", "median", "max")
TOKEN_ORDERS = ("normal", "shuffled")
_OFF = ("", "none", "off", "false", "no")


def _families_with(option: str, names: bool = True) -> str:
    """The families whose spec enables ``option``: ``LLaVA-1.5 (model_type llava)`` or ``llava, llava_next``."""
    chosen = [e for e in families() if getattr(family_spec(e.model_type), option)]
    if names:
        return ", ".join(f"{e.name} (model_type {e.model_type})" for e in chosen)
    return ", ".join(e.model_type for e in chosen)


# --- text-embedding statistics -------------------------------------------------------------


def ordinary_token_ids(tokenizer, num_rows: int) -> list[int]:
    """Ids of the tokenizer's ordinary vocabulary: no special or added tokens, and only rows that exist."""
    excluded = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return sorted(i for i in set(tokenizer.get_vocab().values()) if i not in excluded and 0 <= i < num_rows)


def text_embedding_norms(model, tokenizer) -> torch.Tensor:
    """L2 norms (float32) of the language model's input-embedding rows of :func:`ordinary_token_ids`."""
    weight = model.get_input_embeddings().weight.detach()
    ids = ordinary_token_ids(tokenizer, weight.shape[0])
    if not ids:
        raise ValueError("the tokenizer has no ordinary (non-special) tokens to measure")
    return weight[torch.tensor(ids, device=weight.device)].float().norm(dim=-1)


def text_norm_statistic(model, tokenizer, statistic: str) -> float:
    """``mean``, ``median`` (torch's lower median) or ``max`` of :func:`text_embedding_norms`."""
    norms = text_embedding_norms(model, tokenizer)
    if statistic == "mean":
        return float(norms.mean())
    if statistic == "median":
        return float(norms.median())
    if statistic == "max":
        return float(norms.max())
    raise ValueError(f"unknown statistic {statistic!r}; use one of {', '.join(NORM_STATISTICS)}")


# --- per-call options ----------------------------------------------------------------------


def _parse_norm(value: object) -> str | float | None:
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in _OFF):
        return None
    if isinstance(value, str) and value.strip().lower() in NORM_STATISTICS:
        return value.strip().lower()
    if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "on", "yes")):
        return "mean"  # the default statistic
    message = (
        f"vision_norm={value!r} must be one of {', '.join(NORM_STATISTICS)} (a statistic of this checkpoint's "
        "text-embedding norms; true means mean), a positive number (the target L2 norm), or none"
    )
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MethodArgumentError(message) from None
    if not math.isfinite(number) or number <= 0:
        raise MethodArgumentError(message)
    return number


def _parse_layer(value: object) -> int | tuple[int, ...] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "default")):
        return None
    message = (
        f"vision_layer={value!r} must be a vision-encoder layer index (hidden_states indexing: 0 = embeddings, "
        "-1 = last layer, -2 = LLaVA's default) or several separated by '|', e.g. vision_layer=12|16|20|24"
    )
    if isinstance(value, bool):
        raise MethodArgumentError(message)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split("|")]
    else:
        raise MethodArgumentError(message)
    try:
        layers = tuple(int(p) for p in parts)
    except ValueError:
        raise MethodArgumentError(message) from None
    if len(set(layers)) != len(layers):
        raise MethodArgumentError(f"vision_layer={value!r} lists a layer twice")
    return layers[0] if len(layers) == 1 else layers


@dataclass(frozen=True)
class VisionOptions:
    """Validated ``vision_norm`` / ``vision_layer`` / ``vision_token_order`` (this suite's additions)."""

    norm: str | float | None = None
    layer: int | tuple[int, ...] | None = None
    token_order: str = "normal"

    @classmethod
    def from_model_args(
        cls, vision_norm: object = None, vision_layer: object = None, vision_token_order: object = "normal"
    ) -> VisionOptions:
        """Parse raw ``--model_args`` values; raises :class:`MethodArgumentError` naming the argument."""
        order = "normal" if vision_token_order is None else str(vision_token_order).strip().lower()
        if order not in TOKEN_ORDERS:
            raise MethodArgumentError(
                f"vision_token_order={vision_token_order!r} is not supported; allowed: {', '.join(TOKEN_ORDERS)}"
            )
        return cls(norm=_parse_norm(vision_norm), layer=_parse_layer(vision_layer), token_order=order)

    @property
    def active(self) -> bool:
        return self.norm is not None or self.layer is not None or self.token_order != "normal"

    def describe(self) -> dict[str, object]:
        """The options that are on, for logs, traces and run fingerprints (empty when all are off)."""
        out: dict[str, object] = {}
        if self.norm is not None:
            out["vision_norm"] = self.norm
        if self.layer is not None:
            out["vision_layer"] = list(self.layer) if isinstance(self.layer, tuple) else self.layer
        if self.token_order != "normal":
            out["vision_token_order"] = self.token_order
        return out

    def check_model(self, model) -> None:
        """Refuse options the checkpoint's architecture or projector cannot take, naming the argument."""
        model_type = getattr(model.config, "model_type", "")
        family = family_spec(model)
        if self.token_order == "shuffled" and not family.token_shuffle_option:
            raise MethodArgumentError(
                f"vision_token_order=shuffled is supported for {_families_with('token_shuffle_option')} only; this "
                f"is a {model_type!r} checkpoint (its vision tokens are not one fixed grid per image): remove the "
                "argument"
            )
        if self.layer is None:
            return
        if not family.vision_layer_option:
            supported = _families_with("vision_layer_option", names=False)
            raise MethodArgumentError(
                f"vision_layer is supported for LLaVA checkpoints ({supported}) only; this is a {model_type!r} "
                "checkpoint: remove the argument"
            )
        layers = self.layer if isinstance(self.layer, tuple) else (self.layer,)
        depth = int(model.config.vision_config.num_hidden_layers)
        for layer in layers:
            if not -(depth + 1) <= layer <= depth:
                raise MethodArgumentError(
                    f"vision_layer={layer} does not exist: the vision encoder has {depth} layers, so hidden_states "
                    f"indices run from {-(depth + 1)} to {depth}"
                )
        width = _vision_hidden_size(model)
        expected = _projector_in_features(model)
        if expected is not None and expected != width * len(layers):
            raise MethodArgumentError(
                f"vision_layer={'|'.join(map(str, layers))} gives {width * len(layers)}-channel features, but this "
                f"checkpoint's projector takes {expected} ({expected // width} concatenated layer(s) of width "
                f"{width}); give {expected // width} layer index(es)"
            )

    def resolve(self, model, tokenizer) -> ResolvedVision:
        """Check against ``model`` and fix the numeric ``vision_norm`` target from its embeddings."""
        self.check_model(model)
        target = None
        if isinstance(self.norm, str):
            target = text_norm_statistic(model, tokenizer, self.norm)
        elif self.norm is not None:
            target = float(self.norm)
        return ResolvedVision(options=self, norm_target=target)


@dataclass(frozen=True)
class ResolvedVision:
    """:class:`VisionOptions` bound to one model: ``norm_target`` is the L2 norm vision tokens get."""

    options: VisionOptions
    norm_target: float | None = None

    def describe(self) -> dict[str, object]:
        out = self.options.describe()
        if self.norm_target is not None:
            out["vision_norm_target"] = round(self.norm_target, 6)
        return out


def rescale_norms(tokens: torch.Tensor, target: float) -> torch.Tensor:
    """Every token (last dimension) rescaled to L2 norm ``target`` (computed in float32)."""
    hidden = tokens.float()
    norms = hidden.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return (hidden * (target / norms)).to(tokens.dtype)


def sample_permutation(key: str, num_tokens: int) -> torch.Tensor:
    """The seeded permutation of ``num_tokens`` image-token positions for the sample named ``key``."""
    seed = int(hashlib.sha256(f"vision_token_order:{key}".encode()).hexdigest()[:15], 16)
    return torch.randperm(num_tokens, generator=torch.Generator().manual_seed(seed))


def sample_keys_of(inputs: Mapping[str, torch.Tensor]) -> list[str]:
    """A key per row of a processor output: hash of its unpadded token ids and its pixels."""
    keys = []
    for row in range(inputs["input_ids"].shape[0]):
        digest = hashlib.sha256()
        mask = inputs["attention_mask"][row].bool()
        digest.update(inputs["input_ids"][row][mask].cpu().numpy().tobytes())
        if "pixel_values" in inputs:
            digest.update(inputs["pixel_values"][row].float().cpu().numpy().tobytes())
        keys.append(digest.hexdigest()[:16])
    return keys


@contextmanager
def _config_value(config, name: str, value) -> Iterator[None]:
    previous = getattr(config, name)
    setattr(config, name, value)
    try:
        yield
    finally:
        setattr(config, name, previous)


@contextmanager
def _hook(handle) -> Iterator[None]:
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def vision_inputs(model, vision: ResolvedVision | None, sample_keys: Sequence[str] | None = None) -> Iterator[None]:
    """Apply the per-call vision options to every forward inside the block; everything is undone on exit.

    ``sample_keys`` (one per batch row, in image order) seed ``vision_token_order=shuffled``.
    """
    if vision is None or not vision.options.active:
        yield
        return
    options = vision.options
    projector = projector_module(model)
    with ExitStack() as stack:
        if options.layer is not None:
            # Always a list: transformers 5.23 asks the tower for ``output_hidden_states=<the layer>``,
            # which for layer 0 is falsy and returns no hidden states; a one-element list is the same
            # selection (concatenation of one layer) without that pitfall.
            layer = list(options.layer) if isinstance(options.layer, tuple) else [options.layer]
            stack.enter_context(_config_value(model.config, "vision_feature_layer", layer))
        if vision.norm_target is not None:
            target = vision.norm_target
            stack.enter_context(_hook(projector.register_forward_hook(lambda m, a, out: rescale_norms(out, target))))
        if options.token_order == "shuffled":
            if sample_keys is None:
                raise ValueError("vision_token_order=shuffled needs one sample key per batch row")
            keys = list(sample_keys)

            def shuffle(module, args, output):
                if output.ndim != 3 or output.shape[0] != len(keys):
                    raise RuntimeError(
                        f"vision_token_order=shuffled: the projector produced {tuple(output.shape)} for "
                        f"{len(keys)} sample(s); expected one [tokens, hidden] grid per sample"
                    )
                order = torch.stack([sample_permutation(k, output.shape[1]) for k in keys]).to(output.device)
                return torch.gather(output, 1, order[:, :, None].expand_as(output))

            stack.enter_context(_hook(projector.register_forward_hook(shuffle)))
        yield
