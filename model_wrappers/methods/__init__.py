"""Decoding methods: a registry (``registry``), the step contract (``contract``) and one module per method.

A method is one module that declares its parameters (a :class:`MethodParameters` dataclass) and
registers its decoder with ``@register_method(name, Parameters)`` -- see ``registry``'s docstring
and docs/guides/ADDING_A_METHOD.md. ``MethodConfig.from_model_args`` validates ``--model_args`` against
the registry; ``MethodConfig.decoder`` returns the registered
:class:`~model_wrappers.methods.contract.DecodingMethod` that ``model_wrappers.decoding.generate``
drives. Methods: ``scaling`` (baseline, ScalingVis, AdaptVis, sweep), ``vcd`` (visual contrastive
decoding), ``dola`` (contrasting layers), ``pai`` (PAI) and ``vaf`` (ClearSight's VAF), the last
two through an attention-logit edit (``model_wrappers.logit_edit``). The contract is documented in
docs/guides/METHODS.md.

``METHODS`` is the tuple of registered method names at the time it is read.
"""

from model_wrappers.errors import MethodArgumentError
from model_wrappers.methods.arguments import format_layers, parse_alpha_list, parse_dola_layers, parse_layers
from model_wrappers.methods.config import SHARED_ARGUMENTS, MethodConfig, method_argument_names
from model_wrappers.methods.dola import DOLA_DEFAULTS
from model_wrappers.methods.registry import (
    MethodParameters,
    describe_methods,
    method_names,
    register_method,
    unregister_method,
)
from model_wrappers.methods.scaling import PAPER_ALPHA_GRID
from model_wrappers.methods.vcd import VCD_DEFAULTS


def __getattr__(name: str) -> object:
    if name == "METHODS":
        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DOLA_DEFAULTS",
    "METHODS",
    "PAPER_ALPHA_GRID",
    "SHARED_ARGUMENTS",
    "VCD_DEFAULTS",
    "MethodArgumentError",
    "MethodConfig",
    "MethodParameters",
    "describe_methods",
    "format_layers",
    "method_argument_names",
    "method_names",
    "parse_alpha_list",
    "parse_dola_layers",
    "parse_layers",
    "register_method",
    "unregister_method",
]
