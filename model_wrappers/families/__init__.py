"""Model families: one module per family declaring a :class:`FamilySpec`, looked up by ``model_type``.

The registration list is torch-free (``adaptvis_tasks.families``); :func:`family_spec` imports a
family's module on first use. An unsupported ``model_type`` raises :class:`UnsupportedFamily`
naming the supported families and docs/guides/ADDING_A_FAMILY.md.
"""

from __future__ import annotations

import importlib

from adaptvis_tasks.families import families, family_entry, unsupported_message
from model_wrappers.families.spec import FamilySpec


class UnsupportedFamily(ValueError):
    """A checkpoint's ``model_type`` is not a registered family."""


def family_spec(model_or_type: object) -> FamilySpec:
    """The :class:`FamilySpec` of a model (its ``config.model_type``) or of a ``model_type`` string."""
    model_type = model_or_type if isinstance(model_or_type, str) else getattr(model_or_type.config, "model_type", "")
    entry = family_entry(model_type)
    if entry is None:
        raise UnsupportedFamily(unsupported_message(model_type))
    spec = importlib.import_module(entry.spec_module).SPEC
    if not isinstance(spec, FamilySpec) or spec.entry != entry:
        raise TypeError(f"{entry.spec_module}.SPEC must be a FamilySpec for the entry {entry}")
    return spec


__all__ = ["FamilySpec", "UnsupportedFamily", "families", "family_spec"]
