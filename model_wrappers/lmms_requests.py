"""One lmms-eval request -> what the model sees: prompt, image, generation settings, token statistics.

Used by the wrappers' adapter (``model_wrappers.base``); knows nothing about batching or traces.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from lmms_eval.api.instance import Instance
from PIL import Image

from adaptvis_tasks.images import to_rgb
from model_wrappers.decoding import DecodeSettings
from model_wrappers.errors import MethodArgumentError
from model_wrappers.model_args import parse_bool

if TYPE_CHECKING:
    from model_wrappers.lmms_eval_convention import LmmsEvalConvention

DEFAULT_MAX_NEW_TOKENS = 100
"""Used when a task sets no ``max_new_tokens``; the paper's code generates up to 100 tokens."""


class RequestError(RuntimeError):
    """A request cannot be evaluated; the message names the task and document."""


@dataclass
class Prepared:
    """One request with its final prompt and RGB image."""

    request: Instance
    where: str
    prompt: str
    image: Image.Image
    token_stats: dict | None = None
    """Set when the batch is tokenized: ``prompt_tokens``, ``image_tokens``, ``input_ids_sha`` (trace fields)."""
    convention: LmmsEvalConvention | None = None
    """lmms-eval's convention for lmms-eval's own tasks; None for this suite's paper tasks."""

    @cached_property
    def input_sha(self) -> str:
        """Hash of exactly what the model sees (prompt text and image pixels); computed once."""
        digest = hashlib.sha256(self.prompt.encode("utf-8"))
        digest.update(f"{self.image.size}{self.image.mode}".encode())
        digest.update(self.image.tobytes())
        return digest.hexdigest()[:16]


def generation_value(gen_kwargs: dict, key: str, default, where: str, parse):
    """One generation setting parsed with ``parse``; a RequestError names the task if it is malformed."""
    value = gen_kwargs.get(key)
    if value is None:
        return default
    try:
        return parse(value)
    except (TypeError, ValueError, MethodArgumentError):
        raise RequestError(f"{where}: generation_kwargs {key}={value!r} is not valid") from None


def token_stats(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_id: int) -> list[dict]:
    """Per row of a left-padded batch: prompt and image token counts and a hash of the unpadded ids.

    ``input_ids_sha`` = first 16 hex digits of sha256 over the ids written as decimal numbers joined
    by commas (e.g. ``"1,32000,29871,13"``), so anyone can recompute it from a tokenizer's output.
    """
    stats = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
        kept = [token for token, keep in zip(ids, mask, strict=True) if keep]
        stats.append(
            {
                "prompt_tokens": len(kept),
                "image_tokens": sum(1 for token in kept if token == image_id),
                "input_ids_sha": hashlib.sha256(",".join(map(str, kept)).encode()).hexdigest()[:16],
            }
        )
    return stats


def decode_settings(
    gen_kwargs: dict,
    where: str,
    wrapper_name: str,
    tokenizer,
    eos_token_ids: tuple[int, ...],
    pad_token_id: int,
    convention: LmmsEvalConvention | None = None,
) -> tuple[DecodeSettings, list[str]]:
    """A task's ``generation_kwargs`` -> greedy :class:`DecodeSettings` and its stop strings.

    Sampling and beam search are refused (the paper decodes greedily); a malformed value raises
    :class:`RequestError` naming the task and document (``where``). With ``convention`` (lmms-eval's
    own tasks, ``lmms_eval_convention.py``) its default ``max_new_tokens``, stop strings and EOS apply.
    """
    sampling = generation_value(gen_kwargs, "do_sample", False, where, lambda v: parse_bool("do_sample", v))
    temperature = generation_value(gen_kwargs, "temperature", 0.0, where, float)
    if sampling or temperature > 0:
        raise RequestError(
            f"{where}: {wrapper_name} decodes greedily, as the paper; the task asks for sampling "
            f"(do_sample={gen_kwargs.get('do_sample')!r}, temperature={gen_kwargs.get('temperature')!r})"
        )
    if generation_value(gen_kwargs, "num_beams", 1, where, int) != 1:
        raise RequestError(f"{where}: {wrapper_name} decodes greedily; the task asks for beam search")
    until = gen_kwargs.get("until") or []
    if isinstance(until, str):
        until = [until]
    if not isinstance(until, list) or not all(isinstance(s, str) for s in until):
        raise RequestError(f"{where}: generation_kwargs 'until' must be a string or a list of strings")
    until = [s for s in until if s]
    # --- lmms-eval's convention (lmms_eval_convention.py): its defaults, stop strings and EOS ---
    default_tokens = DEFAULT_MAX_NEW_TOKENS if convention is None else convention.default_max_new_tokens
    until = until if convention is None or convention.applies_until else []
    eos_token_ids = eos_token_ids if convention is None else convention.eos_token_ids
    # --- end of lmms-eval's convention ---
    max_new_tokens = generation_value(gen_kwargs, "max_new_tokens", default_tokens, where, int)
    if max_new_tokens < 1:
        raise RequestError(f"{where}: generation_kwargs max_new_tokens={max_new_tokens} must be at least 1")
    stop = None
    if until:

        def stop(tokens: list[int]) -> bool:
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            return any(s in text for s in until)

    settings = DecodeSettings(
        max_new_tokens=max_new_tokens, eos_token_ids=eos_token_ids, pad_token_id=pad_token_id, stop_condition=stop
    )
    return settings, until


def request_image(request: Instance, task_dict, where: str, wrapper_name: str, convert: bool = True) -> Image.Image:
    """The one image of a request (``doc_to_visual`` of its document); a RequestError otherwise.

    Converted to RGB by the suite's rules unless ``convert`` is False (lmms-eval's convention hands
    the image over as ``doc_to_visual`` returned it).
    """
    _, _, doc_to_visual, doc_id, task, split = request.args
    try:
        visuals = doc_to_visual(task_dict[task][split][doc_id])
    except Exception as error:
        raise RequestError(f"{where}: could not load its image: {error}") from error
    visuals = [v for v in (visuals or [])]
    if len(visuals) != 1 or not isinstance(visuals[0], Image.Image):
        raise RequestError(
            f"{where}: {wrapper_name} evaluates one image per request; doc_to_visual returned "
            f"{len(visuals)} item(s) of type {sorted({type(v).__name__ for v in visuals})}"
        )
    # The task suite's own conversion rules (16-bit greyscale, palettes, colour keys), also for
    # images that other lmms-eval tasks hand over in memory.
    return to_rgb(visuals[0]) if convert else visuals[0]
