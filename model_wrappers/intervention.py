"""ScalingVis (Eq. 2) and AdaptVis (Eq. 3) -- the attention intervention itself.

Eq. 2 of the paper multiplies the pre-softmax attention logits ``A[n, j] = q_n . k_j / sqrt(d)``
of the last prompt token ``n`` on every image-token column ``j`` by ``alpha``, in every head of
the chosen decoder layers of the language model::

    A'[n, j] = alpha * A[n, j]   if j is an image token
    A'[n, j] =         A[n, j]   otherwise

Because ``alpha * (q_n . k_j) == q_n . (alpha * k_j)``, and RoPE is a rotation that commutes with
scaling, the same result comes from scaling the image keys by ``alpha`` *for that one query*.
That is what :func:`scale_image_keys` does. It runs inside any fused kernel (SDPA, flash) without
materialising an attention matrix, provided the last prompt token is processed as a step of its
own over a cached prefix -- which the decoder in ``model_wrappers.decoding`` arranges. The cache
keeps the unscaled keys, so decoding steps after the first answer token are not intervened.

Eq. 3 (AdaptVis) picks ``alpha`` per sample from the model's confidence ``C`` (the largest
softmax probability of the first generated token under ``alpha = 1``): ``alpha1`` when
``C < beta``, else ``alpha2`` (:func:`adaptvis_alpha`).

Mechanism: :func:`enable_image_attention_scaling` registers (once, by name) a thin wrapper around
an existing attention backend with transformers' ``AttentionInterface`` and its mask function
with ``AttentionMaskInterface``, and points the *language model* (never the vision tower) at it.
The wrapper is a pass-through unless :func:`image_attention_scaling` is active, a context manager
that sets the per-row key factors and removes them in ``finally``. Nothing here knows lmms-eval.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from adaptvis_tasks.confidence import CONFIDENCE_RULES, adaptvis_alpha, compared_confidence  # noqa: F401 (re-exported)
from model_wrappers.errors import MethodArgumentError
from model_wrappers.logit_edit import active_logit_edit

BACKEND_PREFIX = "adaptvis_"
"""Registered attention backends are named ``adaptvis_<base>``, e.g. ``adaptvis_sdpa``."""

SUPPORTED_BASE_BACKENDS = ("sdpa", "flash_attention_2", "flash_attention_3")


@dataclass(frozen=True)
class ImageKeyScaling:
    """Per-row key factors for one intervened step: ``alpha`` on image columns, 1 elsewhere.

    ``factors`` has shape ``[batch, 1, kv_len, 1]`` and multiplies the keys ``[batch, heads, kv_len,
    head_dim]`` of every layer in ``layers`` (``None`` = all layers).
    """

    factors: torch.Tensor
    layers: frozenset[int] | None = None

    @classmethod
    def build(
        cls,
        image_token_mask: torch.Tensor,
        alphas: torch.Tensor,
        layers: Sequence[int] | None = None,
    ) -> ImageKeyScaling:
        """Factors from a ``[batch, kv_len]`` image-token mask and one ``alpha`` per row."""
        if image_token_mask.ndim != 2 or alphas.shape != (image_token_mask.shape[0],):
            raise ValueError(
                f"image_token_mask must be [batch, kv_len] and alphas [batch]; got "
                f"{tuple(image_token_mask.shape)} and {tuple(alphas.shape)}"
            )
        ones = torch.ones_like(alphas)
        per_column = torch.where(image_token_mask, alphas[:, None], ones[:, None])
        return cls(factors=per_column[:, None, :, None], layers=None if layers is None else frozenset(layers))

    def applies_to(self, layer_idx: int | None) -> bool:
        return self.layers is None or layer_idx in self.layers


_ACTIVE_SCALING: contextvars.ContextVar[ImageKeyScaling | None] = contextvars.ContextVar(
    "adaptvis_image_key_scaling", default=None
)


def scale_image_keys(key: torch.Tensor, scaling: ImageKeyScaling) -> torch.Tensor:
    """Eq. 2 in key space: multiply image-token keys by that row's alpha (returns a new tensor).

    The product is formed in float32 and rounded to the key dtype once: casting alpha itself to a
    half-precision key dtype would change it (1.2 is 1.203125 in bfloat16, 1.2001953125 in float16).
    """
    factors = scaling.factors
    if factors.shape[2] != key.shape[2] or factors.shape[0] != key.shape[0]:
        raise RuntimeError(
            f"image-key factors cover batch {factors.shape[0]} x {factors.shape[2]} positions but the "
            f"attention call has batch {key.shape[0]} x {key.shape[2]} keys; the intervention must wrap "
            "exactly one single-token step over a cache of the prompt"
        )
    product = key.to(torch.float32) * factors.to(dtype=torch.float32, device=key.device)
    return product.to(key.dtype)


@contextmanager
def scoped(variable: contextvars.ContextVar, value: object) -> Iterator[object]:
    """Set ``variable`` to ``value`` for the block and reset it in ``finally`` (the backends' scoping)."""
    token = variable.set(value)
    try:
        yield value
    finally:
        variable.reset(token)


@contextmanager
def image_attention_scaling(scaling: ImageKeyScaling) -> Iterator[None]:
    """Apply ``scaling`` to every attention call of an ``adaptvis_*`` backend inside the block."""
    with scoped(_ACTIVE_SCALING, scaling):
        yield


def _scaled_backend(base: Callable) -> Callable:
    def attention_with_image_scaling(module, query, key, value, attention_mask, **kwargs):
        edit = active_logit_edit()  # PAI / VAF (model_wrappers.logit_edit); never together with Eq. 2
        if edit is not None and edit.applies_to(getattr(module, "layer_idx", None)):
            if _ACTIVE_SCALING.get() is not None:
                raise RuntimeError("an attention-logit edit and Eq. 2 key scaling are active at once")
            return edit.attend(base, module, query, key, value, attention_mask, **kwargs)
        scaling = _ACTIVE_SCALING.get()
        if scaling is not None and scaling.applies_to(getattr(module, "layer_idx", None)):
            if query.shape[2] != 1:
                raise RuntimeError(
                    "ScalingVis must act on the last prompt token alone; got an attention call with "
                    f"{query.shape[2]} query positions"
                )
            key = scale_image_keys(key, scaling)
        return base(module, query, key, value, attention_mask, **kwargs)

    attention_with_image_scaling.__qualname__ = f"adaptvis[{getattr(base, '__name__', 'attention')}]"
    return attention_with_image_scaling


def register_attention_backend(name: str, attention: Callable, mask_like: str) -> str:
    """Register ``attention`` as backend ``name`` with ``mask_like``'s mask function; idempotent.

    The one registration mechanism of the suite: the intervention's ``adaptvis_*`` backends and the
    attention probe (``model_wrappers.analysis.attention``) both register through it. The mask
    function matters: without it, masking_utils treats an unknown name as "needs no mask" and
    padding and causal masks silently disappear.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, attention)
    if name not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[mask_like])
    return name


def register_backend(base_name: str) -> str:
    """Register ``adaptvis_<base_name>`` (attention + mask function); idempotent. Returns the name."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if base_name.startswith(BACKEND_PREFIX):
        return base_name
    if base_name not in SUPPORTED_BASE_BACKENDS:
        raise ValueError(
            f"attn_implementation={base_name!r} cannot carry the AdaptVis intervention; use one of "
            f"{', '.join(SUPPORTED_BASE_BACKENDS)} (eager would materialise full attention matrices)"
        )
    name = BACKEND_PREFIX + base_name
    if name in ALL_ATTENTION_FUNCTIONS:
        return name
    return register_attention_backend(name, _scaled_backend(ALL_ATTENTION_FUNCTIONS[base_name]), base_name)


def _text_config(model) -> object:
    config = model.config
    return getattr(config, "text_config", None) or config


def text_attention_implementation(model) -> str:
    """The attention implementation the language model of ``model`` currently uses."""
    return _text_config(model)._attn_implementation


def require_adaptvis_backend(model, method: str) -> None:
    """Refuse a model whose language model is not on ``adaptvis_sdpa``, where attention-logit edits act."""
    if text_attention_implementation(model) != "adaptvis_sdpa":
        raise MethodArgumentError(
            f"method={method} edits attention logits through the adaptvis_sdpa backend; the language model uses "
            f"{text_attention_implementation(model)!r}: load it with attn_implementation=sdpa"
        )


def enable_image_attention_scaling(model) -> str:
    """Point the language model of ``model`` at the ``adaptvis_*`` twin of its attention backend.

    The vision tower keeps its own backend. Returns the previous implementation name so callers
    can restore it (see :func:`image_scaling_backend`).
    """
    previous = text_attention_implementation(model)
    name = register_backend(previous)
    if name != previous:
        model.set_attn_implementation({"text_config": name})
    if text_attention_implementation(model) != name:
        raise RuntimeError(f"could not switch the language model of {type(model).__name__} to {name}")
    return previous


@contextmanager
def text_attention_backend(model, name: str) -> Iterator[None]:
    """Point the language model at the registered backend ``name`` for the block; restore it in ``finally``."""
    previous = text_attention_implementation(model)
    if name != previous:
        model.set_attn_implementation({"text_config": name})
    try:
        yield
    finally:
        if text_attention_implementation(model) != previous:
            model.set_attn_implementation({"text_config": previous})


@contextmanager
def image_scaling_backend(model) -> Iterator[None]:
    """Scoped :func:`enable_image_attention_scaling`: restores the previous backend on exit."""
    previous = enable_image_attention_scaling(model)
    try:
        yield
    finally:
        if text_attention_implementation(model) != previous:
            model.set_attn_implementation({"text_config": previous})


# --- AdaptVis (Eq. 3a / 3b) ---------------------------------------------------------------
# The rule itself (CONFIDENCE_RULES, compared_confidence, adaptvis_alpha) lives in
# adaptvis_tasks.confidence so that the model-free tuning tool replays exactly the same code.


def first_token_confidence(first_token_logits: torch.Tensor) -> torch.Tensor:
    """``C``: the largest softmax probability of the first generated token (float32, per row)."""
    return torch.softmax(first_token_logits.float(), dim=-1).max(dim=-1).values
