"""The lmms-eval wrappers' ``--model_args``: which names exist and how the wrapper's own values parse.

Three groups of names, none written out by hand: the decoding method's (from the method registry,
:func:`model_wrappers.methods.method_argument_names`), the vision options' (the parameters of
:meth:`model_wrappers.vision.VisionOptions.from_model_args`) and the wrapper's own (the
parameters of its ``__init__``). :func:`split_model_args` sorts the extra keyword arguments a
wrapper receives into the first two groups and refuses anything else, listing every allowed name
(with close matches for a misspelt one). The wrapper's own values (``batch_size``, ``dtype``, pixel
bounds, ...) are checked by the ``parse_*`` functions here, before any weights are read.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence

import torch

from model_wrappers.errors import MethodArgumentError
from model_wrappers.methods import method_argument_names
from model_wrappers.vision import VisionOptions


def _parameter_names(function: Callable) -> tuple[str, ...]:
    """Named parameters of ``function`` (no ``self``, ``cls`` or ``**kwargs``)."""
    return tuple(
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name not in ("self", "cls") and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    )


REFUSED_WRAPPER_ARGUMENTS: dict[str, str] = {
    "max_batch_size": "only bounds lmms-eval's automatic batch sizing (--batch_size auto), which these wrappers "
    "do not support; remove it and set --batch_size N",
}
"""Wrapper parameters lmms-eval passes to every model (so ``__init__`` takes them) that are refused when
set, with the reason; not listed as allowed."""


def refuse_if_set(name: str, value: object) -> None:
    """Raise :class:`MethodArgumentError` with the reason of :data:`REFUSED_WRAPPER_ARGUMENTS` if ``value`` is set."""
    if value is not None:
        raise MethodArgumentError(f"{name}={value!r} {REFUSED_WRAPPER_ARGUMENTS[name]}")


def vision_argument_names() -> tuple[str, ...]:
    """The vision options' ``--model_args`` names."""
    return _parameter_names(VisionOptions.from_model_args)


def split_model_args(
    wrapper_name: str, wrapper_init: Callable, extra: Mapping[str, object]
) -> tuple[dict[str, object], dict[str, object]]:
    """``extra`` (arguments the wrapper's ``__init__`` does not name) -> (method arguments, vision arguments).

    Raises :class:`MethodArgumentError` for a name no group knows, with close matches among the
    allowed names (:func:`unknown_arguments_error`), listing every allowed name.
    """
    method_names, vision_names = method_argument_names(), vision_argument_names()
    unknown = sorted(set(extra) - set(method_names) - set(vision_names))
    if unknown:
        own = [name for name in _parameter_names(wrapper_init) if name not in REFUSED_WRAPPER_ARGUMENTS]
        allowed = [*own[:1], *method_names, *vision_names, *own[1:]]
        raise unknown_arguments_error(wrapper_name, unknown, allowed)
    methods = {name: value for name, value in extra.items() if name in method_names}
    vision = {name: value for name, value in extra.items() if name in vision_names}
    return methods, vision


def unknown_arguments_error(wrapper: str, unknown: Sequence[str], allowed: Sequence[str]) -> MethodArgumentError:
    """The error for ``--model_args`` names the wrapper does not take: each with its close matches, then all names."""
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.6)
        if close:
            hints.append(f"{name}: did you mean {' or '.join(close)}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return MethodArgumentError(
        f"{wrapper}: unknown model argument(s) {', '.join(unknown)}{hint}; allowed: {', '.join(allowed)}"
    )


def parse_batch_size(value: object) -> int:
    """``batch_size``: a positive integer (lmms-eval's ``auto`` is not supported)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise MethodArgumentError(
            f"batch_size={value!r}: give a positive integer (automatic batch sizing is not supported)"
        )
    return int(text)


DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""The ``dtype=`` values besides ``auto``: the floating-point types these checkpoints are evaluated in."""


def parse_dtype(value: str | torch.dtype) -> torch.dtype | str:
    """``dtype``: ``auto`` or one of :data:`DTYPES` (a name or the torch dtype itself).

    Anything else is refused before any weights are read (float64 doubles memory for nothing;
    integer types cannot hold the weights and would otherwise surface as a confusing loading error).
    """
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value in DTYPES:
        return DTYPES[value]
    shown = str(value).replace("torch.", "")
    what = "is not supported here" if isinstance(getattr(torch, shown, None), torch.dtype) else "is not a torch dtype"
    raise MethodArgumentError(
        f"dtype={shown!r} {what}; allowed: auto, {', '.join(DTYPES)} (auto: float32 on CPU, the checkpoint's own "
        "dtype on GPU)"
    )


def parse_pixels(name: str, value: object) -> int | None:
    """``min_pixels`` / ``max_pixels``: a whole number of pixels, or ``None``."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise MethodArgumentError(f"{name}={value!r}: give a positive whole number of pixels, e.g. {name}=1003520")
    return int(text)


def parse_eps(value: object) -> float | None:
    """``rms_norm_eps``: a number, or ``None``."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MethodArgumentError(f"rms_norm_eps={value!r}: give a small positive number, e.g. 1e-6") from None


def parse_bool(name: str, value: object) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, or a bool)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise MethodArgumentError(f"{name}={value!r} must be true or false")
