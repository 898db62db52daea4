"""Parsers of raw ``--model_args`` values shared by the method modules (torch-free).

lmms-eval hands values over as strings, ints, floats or bools; each parser returns the typed
value or raises :class:`~model_wrappers.errors.MethodArgumentError` naming the argument and what
is allowed. ``|`` separates list entries because ``--model_args`` splits on commas.
"""

from __future__ import annotations

import math
import re

from model_wrappers.errors import MethodArgumentError


def as_float(name: str, value: object) -> float:
    """``value`` as a finite float (bools refused)."""
    if isinstance(value, bool):
        raise MethodArgumentError(f"{name}={value!r} is not a number; give e.g. {name}=0.5")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MethodArgumentError(f"{name}={value!r} is not a number; give e.g. {name}=0.5") from None
    if not math.isfinite(number):
        raise MethodArgumentError(f"{name}={value!r} must be a finite number")
    return number


def positive(name: str, value: object) -> float:
    """``value`` as a float > 0 (an attention-logit multiplier)."""
    number = as_float(name, value)
    if number <= 0:
        raise MethodArgumentError(
            f"{name}={value!r} must be > 0 (it multiplies attention logits; < 1 smooths, > 1 sharpens)"
        )
    return number


def parse_alpha_list(value: object, name: str = "alphas") -> tuple[float, ...]:
    """``0.5|0.8|1.2`` (``|``-separated, since ``--model_args`` splits on commas) or one number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[object] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split("|")]
        if any(part == "" for part in items):
            raise MethodArgumentError(f"{name}={value!r} has an empty entry; write e.g. {name}=0.5|0.8|1.2")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise MethodArgumentError(f"{name}={value!r} must be numbers separated by '|', e.g. {name}=0.5|1.5")
    alphas = tuple(positive(name, item) for item in items)
    if len(set(alphas)) != len(alphas):
        raise MethodArgumentError(f"{name}={value!r} lists an alpha twice")
    return alphas


def parse_layers(value: object) -> tuple[int, ...] | None:
    """``all`` (default), one index, ``|``-separated indices, or ranges ``a-b`` (inclusive)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return None
    if isinstance(value, bool):
        raise MethodArgumentError(f"layers={value!r} must be 'all', an index, 'a-b' or 'i|j|k'")
    if isinstance(value, int):
        parts: list[str] = [str(value)]
    elif isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, (str, float)):
        parts = [p.strip() for p in str(value).split("|")]
    else:
        raise MethodArgumentError(f"layers={value!r} must be 'all', an index, 'a-b' or 'i|j|k'")
    layers: list[int] = []
    for part in parts:
        single, span = re.fullmatch(r"\d+", part), re.fullmatch(r"(\d+)-(\d+)", part)
        if single:
            layers.append(int(part))
        elif span and int(span.group(1)) <= int(span.group(2)):
            layers.extend(range(int(span.group(1)), int(span.group(2)) + 1))
        else:
            raise MethodArgumentError(
                f"layers={value!r}: {part!r} is not a layer index or an 'a-b' range; "
                "write e.g. layers=all, layers=8-23 or layers=0|4|8"
            )
    return tuple(sorted(set(layers)))


def parse_dola_layers(value: object) -> str | tuple[int, ...]:
    """``low``, ``high`` or ``|``-separated early-exit layer indices (0 = the embedding output)."""
    if isinstance(value, str) and value.strip().lower() in ("low", "high"):
        return value.strip().lower()
    message = (
        f"dola_layers={value!r} must be low, high, or early-exit layer indices separated by '|' "
        "(0 = embedding output, i = output of decoder layer i), e.g. dola_layers=0|2|4"
    )
    if isinstance(value, bool):
        raise MethodArgumentError(message)
    if isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split("|")]
    else:
        raise MethodArgumentError(message)
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise MethodArgumentError(message)
    layers = tuple(int(p) for p in parts)
    if len(set(layers)) != len(layers):
        raise MethodArgumentError(f"dola_layers={value!r} lists a layer twice")
    return layers


def format_layers(layers: tuple[int, ...]) -> str:
    """The compact ``a-b|c`` form of sorted layer indices (the inverse of :func:`parse_layers`)."""
    spans: list[list[int]] = []
    for layer in layers:
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return "|".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
