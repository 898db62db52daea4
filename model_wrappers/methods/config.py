"""Which decoding method to run and with which coefficients, parsed and validated once.

``MethodConfig.from_model_args`` takes the raw values lmms-eval hands over from ``--model_args``
(strings, ints, floats or bools) and either returns a valid configuration or raises
:class:`MethodArgumentError` naming the argument, the value and what is allowed.
``MethodConfig.decoder`` turns it into the object that implements the method
(``model_wrappers.methods.scaling`` / ``vcd`` / ``dola``).

``method=`` takes exactly one value: the baselines VCD and DoLa do not compose with ScalingVis or
AdaptVis (no combined algorithm is defined in any of the papers), so an argument of another method
is an error naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_wrappers.methods.contract import DecodingMethod

METHODS = ("baseline", "scaling_vis", "adapt_vis", "sweep", "vcd", "dola")
PAPER_ALPHA_GRID = (0.5, 0.8, 1.2, 1.5, 2.0)
"""The alpha grid of the paper (Sec. 4.2, Appendix E.3); the default of ``method=sweep``."""

_METHOD_ARGUMENTS = {
    "baseline": set(),
    "scaling_vis": {"alpha"},
    "adapt_vis": {"alpha1", "alpha2", "threshold"},
    "sweep": {"alphas"},
    "vcd": {"vcd_alpha", "vcd_beta", "vcd_noise_step"},
    "dola": {"dola_layers", "repetition_penalty"},
}
_EQ2_METHODS = ("baseline", "scaling_vis", "adapt_vis", "sweep")
"""Methods for which ``layers=`` (where Eq. 2 acts) means something."""

VCD_DEFAULTS = {"vcd_alpha": 1.0, "vcd_beta": 0.1, "vcd_noise_step": 500}
"""VCD's own defaults (``--cd_alpha 1 --cd_beta 0.1 --noise_step 500`` in its evaluation scripts)."""
DOLA_DEFAULTS = {"dola_layers": "high", "repetition_penalty": 1.2}
"""``high``: transformers' DoLa guide recommends the high bucket for short-answer tasks (WhatsUp answers
are one word); 1.2: the repetition penalty DoLa's authors recommend with DoLa."""
VCD_NOISE_STEPS = 1000

_REQUIRED = {
    "baseline": (),
    "scaling_vis": ("alpha",),
    "adapt_vis": ("alpha1", "alpha2", "threshold"),
    "sweep": (),
    "vcd": (),
    "dola": (),
}


class MethodArgumentError(ValueError):
    """A method argument from ``--model_args`` (or the Python API) is missing or invalid."""


def unknown_arguments_error(wrapper: str, unknown: Sequence[str], allowed: Sequence[str]) -> MethodArgumentError:
    """The error for ``--model_args`` names the wrapper does not take: each with its close matches, then all names."""
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.6)
        if close:
            hints.append(f"{name}: did you mean {' or '.join(close)}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return MethodArgumentError(
        f"{wrapper}: unknown model argument(s) {', '.join(unknown)}{hint}; allowed: {', '.join(allowed)}"
    )


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise MethodArgumentError(f"{name}={value!r} is not a number; give e.g. {name}=0.5")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MethodArgumentError(f"{name}={value!r} is not a number; give e.g. {name}=0.5") from None
    if not math.isfinite(number):
        raise MethodArgumentError(f"{name}={value!r} must be a finite number")
    return number


def _positive(name: str, value: object) -> float:
    number = _as_float(name, value)
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
    alphas = tuple(_positive(name, item) for item in items)
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


@dataclass(frozen=True)
class MethodConfig:
    """A validated decoding method: baseline, ScalingVis, AdaptVis, an alpha sweep, VCD or DoLa."""

    method: str = "baseline"
    alpha: float | None = None
    alpha1: float | None = None
    alpha2: float | None = None
    threshold: float | None = None
    alphas: tuple[float, ...] = field(default_factory=tuple)
    layers: tuple[int, ...] | None = None
    confidence_rule: str = "paper_rounded"
    vcd_alpha: float | None = None
    vcd_beta: float | None = None
    vcd_noise_step: int | None = None
    dola_layers: str | tuple[int, ...] | None = None
    repetition_penalty: float | None = None

    @classmethod
    def from_model_args(
        cls,
        method: object = "baseline",
        alpha: object = None,
        alpha1: object = None,
        alpha2: object = None,
        threshold: object = None,
        alphas: object = None,
        layers: object = None,
        confidence_rule: object = "paper_rounded",
        vcd_alpha: object = None,
        vcd_beta: object = None,
        vcd_noise_step: object = None,
        dola_layers: object = None,
        repetition_penalty: object = None,
    ) -> MethodConfig:
        """Parse and validate raw ``--model_args`` values; raises :class:`MethodArgumentError`."""
        from model_wrappers.intervention import CONFIDENCE_RULES

        if not isinstance(method, str) or method not in METHODS:
            raise MethodArgumentError(f"method={method!r} is not supported; allowed: {', '.join(METHODS)}")
        given = {
            name
            for name, value in (
                ("alpha", alpha),
                ("alpha1", alpha1),
                ("alpha2", alpha2),
                ("threshold", threshold),
                ("alphas", alphas),
                ("vcd_alpha", vcd_alpha),
                ("vcd_beta", vcd_beta),
                ("vcd_noise_step", vcd_noise_step),
                ("dola_layers", dola_layers),
                ("repetition_penalty", repetition_penalty),
            )
            if value is not None
        }
        for name in sorted(given - _METHOD_ARGUMENTS[method]):
            users = [m for m, args in _METHOD_ARGUMENTS.items() if name in args]
            raise MethodArgumentError(
                f"{name} is not used by method={method}; remove it or use method={'/'.join(users)}"
            )
        for name in _REQUIRED[method]:
            if name not in given:
                needed = ", ".join(f"{n}=..." for n in _REQUIRED[method])
                raise MethodArgumentError(f"method={method} needs {name}; give {needed}")
        if method not in _EQ2_METHODS and parse_layers(layers) is not None:
            raise MethodArgumentError(
                f"layers is not used by method={method} (it selects where Eq. 2 acts); remove it, or use "
                "method=scaling_vis/adapt_vis/sweep"
                + (" (DoLa's early-exit layers are dola_layers=)" if method == "dola" else "")
            )
        if confidence_rule not in CONFIDENCE_RULES:
            raise MethodArgumentError(
                f"confidence_rule={confidence_rule!r} is not supported; allowed: {', '.join(CONFIDENCE_RULES)}"
            )
        parsed_threshold = None
        if threshold is not None:
            parsed_threshold = _as_float("threshold", threshold)
            if not 0.0 <= parsed_threshold <= 1.0:
                raise MethodArgumentError(
                    f"threshold={threshold!r} must lie in [0, 1] (it is compared with a probability)"
                )
        return cls(
            method=method,
            alpha=None if alpha is None else _positive("alpha", alpha),
            alpha1=None if alpha1 is None else _positive("alpha1", alpha1),
            alpha2=None if alpha2 is None else _positive("alpha2", alpha2),
            threshold=parsed_threshold,
            alphas=parse_alpha_list(alphas) if alphas is not None else (PAPER_ALPHA_GRID if method == "sweep" else ()),
            layers=parse_layers(layers),
            confidence_rule=str(confidence_rule),
            **(_vcd_arguments(vcd_alpha, vcd_beta, vcd_noise_step) if method == "vcd" else {}),
            **(_dola_arguments(dola_layers, repetition_penalty) if method == "dola" else {}),
        )

    def decoder(self, model, need_confidence: bool = True) -> DecodingMethod:
        """The object that runs this method inside ``decoding.generate`` (one per call)."""
        from model_wrappers.methods.dola import DoLa
        from model_wrappers.methods.scaling import AdaptVis, Baseline, ScalingVis, Sweep
        from model_wrappers.methods.vcd import VisualContrastiveDecoding

        implementations: dict[str, type[DecodingMethod]] = {
            "baseline": Baseline,
            "scaling_vis": ScalingVis,
            "adapt_vis": AdaptVis,
            "sweep": Sweep,
            "vcd": VisualContrastiveDecoding,
            "dola": DoLa,
        }
        return implementations[self.method](self, model, need_confidence)

    def check_layers(self, num_layers: int) -> None:
        """Fail early when ``layers`` or ``dola_layers`` names a layer the checkpoint does not have."""
        if self.layers is not None and self.layers and max(self.layers) >= num_layers:
            raise MethodArgumentError(
                f"layers={format_layers(self.layers)} names layer {max(self.layers)}, but the language model has "
                f"{num_layers} decoder layers (0..{num_layers - 1})"
            )
        if isinstance(self.dola_layers, tuple) and max(self.dola_layers) >= num_layers:
            raise MethodArgumentError(
                f"dola_layers={'|'.join(map(str, self.dola_layers))} names early-exit layer {max(self.dola_layers)}, "
                f"but the language model has {num_layers} decoder layers: premature layers are 0..{num_layers - 1} "
                f"(layer {num_layers} is the final, mature layer)"
            )

    @property
    def sweep_alphas(self) -> tuple[float, ...]:
        """Alphas decoded in sweep mode: 1 first (the answer returned), then the listed ones."""
        return (1.0, *(a for a in self.alphas if a != 1.0))

    def describe(self) -> dict[str, object]:
        """The settings that matter for this method, for traces and logs."""
        out: dict[str, object] = {"method": self.method}
        if self.method == "scaling_vis":
            out["alpha"] = self.alpha
        elif self.method == "adapt_vis":
            out.update(
                alpha1=self.alpha1,
                alpha2=self.alpha2,
                threshold=self.threshold,
                confidence_rule=self.confidence_rule,
            )
        elif self.method == "sweep":
            out["alphas"] = list(self.sweep_alphas)
        elif self.method == "vcd":
            out.update(vcd_alpha=self.vcd_alpha, vcd_beta=self.vcd_beta, vcd_noise_step=self.vcd_noise_step)
        elif self.method == "dola":
            layers = self.dola_layers if isinstance(self.dola_layers, str) else list(self.dola_layers or ())
            out.update(dola_layers=layers, repetition_penalty=self.repetition_penalty)
        if self.method in _EQ2_METHODS:
            out["layers"] = "all" if self.layers is None else list(self.layers)
        return out


def _vcd_arguments(vcd_alpha: object, vcd_beta: object, vcd_noise_step: object) -> dict[str, object]:
    alpha = VCD_DEFAULTS["vcd_alpha"] if vcd_alpha is None else _as_float("vcd_alpha", vcd_alpha)
    if alpha < 0:
        raise MethodArgumentError(
            f"vcd_alpha={vcd_alpha!r} must be >= 0 (the weight of the contrast; 0 is plain greedy decoding)"
        )
    beta = VCD_DEFAULTS["vcd_beta"] if vcd_beta is None else _as_float("vcd_beta", vcd_beta)
    if not 0.0 < beta <= 1.0:
        raise MethodArgumentError(
            f"vcd_beta={vcd_beta!r} must lie in (0, 1] (tokens with p < vcd_beta * max p are excluded)"
        )
    step: object = VCD_DEFAULTS["vcd_noise_step"] if vcd_noise_step is None else vcd_noise_step
    if isinstance(step, bool) or not re.fullmatch(r"\d+", str(step).strip()):
        raise MethodArgumentError(
            f"vcd_noise_step={vcd_noise_step!r} must be an integer diffusion step in 0..{VCD_NOISE_STEPS - 1}"
        )
    if int(str(step).strip()) >= VCD_NOISE_STEPS:
        raise MethodArgumentError(
            f"vcd_noise_step={vcd_noise_step!r} must be an integer diffusion step in 0..{VCD_NOISE_STEPS - 1}"
        )
    return {"vcd_alpha": alpha, "vcd_beta": beta, "vcd_noise_step": int(str(step).strip())}


def _dola_arguments(dola_layers: object, repetition_penalty: object) -> dict[str, object]:
    layers = parse_dola_layers(DOLA_DEFAULTS["dola_layers"] if dola_layers is None else dola_layers)
    penalty_value = DOLA_DEFAULTS["repetition_penalty"] if repetition_penalty is None else repetition_penalty
    penalty = _as_float("repetition_penalty", penalty_value)
    if penalty <= 0:
        raise MethodArgumentError(
            f"repetition_penalty={repetition_penalty!r} must be > 0 (1 = no penalty; DoLa recommends 1.2)"
        )
    return {"dola_layers": layers, "repetition_penalty": penalty}
