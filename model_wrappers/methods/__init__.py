"""Decoding methods: argument parsing (``config``), the step contract (``contract``) and one module per method.

``MethodConfig.from_model_args`` validates ``--model_args``; ``MethodConfig.decoder`` returns the
:class:`~model_wrappers.methods.contract.DecodingMethod` that ``model_wrappers.decoding.generate``
drives. Methods: ``scaling`` (baseline, ScalingVis, AdaptVis, sweep), ``vcd`` (visual contrastive
decoding), ``dola`` (contrasting layers). The contract is documented in docs/METHODS.md.
"""

from model_wrappers.methods.config import (
    DOLA_DEFAULTS,
    METHODS,
    PAPER_ALPHA_GRID,
    VCD_DEFAULTS,
    MethodArgumentError,
    MethodConfig,
    format_layers,
    parse_alpha_list,
    parse_dola_layers,
    parse_layers,
)

__all__ = [
    "DOLA_DEFAULTS",
    "METHODS",
    "PAPER_ALPHA_GRID",
    "VCD_DEFAULTS",
    "MethodArgumentError",
    "MethodConfig",
    "format_layers",
    "parse_alpha_list",
    "parse_dola_layers",
    "parse_layers",
]
