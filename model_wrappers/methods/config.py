"""Which decoding method to run and with which coefficients, parsed and validated once.

``MethodConfig.from_model_args`` takes the raw values lmms-eval hands over from ``--model_args``
(strings, ints, floats or bools) and either returns a valid configuration or raises
:class:`MethodArgumentError` naming the argument, the value and what is allowed. Which methods
exist and which arguments each accepts comes from the method registry
(``model_wrappers.methods.registry``); ``MethodConfig.decoder`` builds the registered decoder.

Two arguments are shared by every method (:data:`SHARED_ARGUMENTS`): ``layers`` (where Eq. 2 acts;
only methods whose parameters set ``uses_layers`` accept a value other than ``all``) and
``confidence_rule`` (how AdaptVis compares ``C`` with its threshold).

``method=`` takes exactly one value: the baselines VCD and DoLa do not compose with ScalingVis or
AdaptVis (no combined algorithm is defined in any of the papers), so an argument of another method
is an error naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adaptvis_tasks.confidence import CONFIDENCE_RULES
from model_wrappers.errors import MethodArgumentError
from model_wrappers.methods.arguments import format_layers, parse_layers
from model_wrappers.methods.registry import (
    MethodParameters,
    method_names,
    method_parameter_names,
    method_spec,
    methods_using,
)

if TYPE_CHECKING:
    from model_wrappers.methods.contract import DecodingMethod


@dataclass(frozen=True)
class MethodConfig:
    """A validated decoding method: its name, its parameters, and the shared ``layers``/``confidence_rule``.

    The chosen method's parameters read as attributes (``config.alpha`` for ``scaling_vis``).
    """

    method: str = "baseline"
    layers: tuple[int, ...] | None = None
    confidence_rule: str = "paper_rounded"
    parameters: MethodParameters | None = None

    @classmethod
    def from_model_args(
        cls, method: object = "baseline", layers: object = None, confidence_rule: object = "paper_rounded", **raw
    ) -> MethodConfig:
        """Parse and validate raw ``--model_args`` values; raises :class:`MethodArgumentError`.

        ``raw``: the methods' own arguments (``None`` = not given).
        """
        spec = method_spec(method) if isinstance(method, str) else None
        if spec is None:
            raise MethodArgumentError(f"method={method!r} is not supported; allowed: {', '.join(method_names())}")
        known = set(method_parameter_names())
        for name in sorted(set(raw) - known):
            raise MethodArgumentError(
                f"{name} is not an argument of any method; method arguments: {', '.join(method_argument_names())}"
            )
        accepted = spec.parameters.argument_names()
        given = {name for name, value in raw.items() if value is not None}
        for name in sorted(given - set(accepted)):
            users = methods_using(name)
            raise MethodArgumentError(
                f"{name} is not used by method={method}; remove it or use method={'/'.join(users)}"
            )
        for name in spec.parameters.required:
            if name not in given:
                needed = ", ".join(f"{n}=..." for n in spec.parameters.required)
                raise MethodArgumentError(f"method={method} needs {name}; give {needed}")
        if not spec.parameters.uses_layers and parse_layers(layers) is not None:
            eq2 = "/".join(name for name in method_names() if method_spec(name).parameters.uses_layers)
            raise MethodArgumentError(
                f"layers is not used by method={method} (it selects where Eq. 2 acts); remove it, or use "
                f"method={eq2}" + spec.parameters.layers_hint
            )
        if confidence_rule not in CONFIDENCE_RULES:
            raise MethodArgumentError(
                f"confidence_rule={confidence_rule!r} is not supported; allowed: {', '.join(CONFIDENCE_RULES)}"
            )
        parameters = spec.parameters.parse({name: raw.get(name) for name in accepted})
        return cls(
            method=method,
            layers=parse_layers(layers),
            confidence_rule=str(confidence_rule),
            parameters=parameters,
        )

    def __getattr__(self, name: str) -> object:
        # Only called for names that are not fields: the chosen method's parameters.
        parameters = self.__dict__.get("parameters")
        if parameters is not None and (
            name in parameters.argument_names() or isinstance(getattr(type(parameters), name, None), property)
        ):
            return getattr(parameters, name)
        raise AttributeError(f"method={self.__dict__.get('method')} has no parameter or attribute {name!r}")

    def decoder(self, model, need_confidence: bool = True) -> DecodingMethod:
        """The object that runs this method inside ``decoding.generate`` (one per call)."""
        spec = method_spec(self.method)
        assert spec is not None, self.method
        return spec.decoder(self, model, need_confidence)

    def check_layers(self, num_layers: int) -> None:
        """Fail early when ``layers`` (or a method's own layer parameter) names a layer the checkpoint lacks."""
        if self.layers is not None and self.layers and max(self.layers) >= num_layers:
            raise MethodArgumentError(
                f"layers={format_layers(self.layers)} names layer {max(self.layers)}, but the language model has "
                f"{num_layers} decoder layers (0..{num_layers - 1})"
            )
        if self.parameters is not None:
            self.parameters.check_layers(num_layers)

    def describe(self) -> dict[str, object]:
        """The settings that matter for this method, for traces and logs."""
        out: dict[str, object] = {"method": self.method}
        if self.parameters is not None:
            out.update(self.parameters.describe(self))
        spec = method_spec(self.method)
        if spec is not None and spec.parameters.uses_layers:
            out["layers"] = "all" if self.layers is None else list(self.layers)
        return out


SHARED_ARGUMENTS = tuple(f.name for f in dataclasses.fields(MethodConfig) if f.name != "parameters")
"""Arguments every method accepts: ``method``, ``layers``, ``confidence_rule``."""


def method_argument_names() -> tuple[str, ...]:
    """Every ``--model_args`` name that selects or configures a method, derived from the registry."""
    return SHARED_ARGUMENTS + tuple(n for n in method_parameter_names() if n not in SHARED_ARGUMENTS)
