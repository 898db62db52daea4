"""The model-family registry: which checkpoint families the suite supports, as plain data (torch-free).

One :class:`FamilyEntry` per family is its *registration*: the ``model_type`` of its
``config.json``, its display name, the lmms-eval model that evaluates it, an example checkpoint,
the default AdaptVis tuning range, and the module that declares everything model-side (a
``model_wrappers.families.spec.FamilySpec`` called ``SPEC``: transformers class, vision input
keys, image token, position ids, image grid, layer access, prompt styles).

The entries live here, in the model-free layer, because the model-free tools (``adaptvis tune``)
need the tuning defaults without importing torch or ``model_wrappers``; ``model_wrappers.families``
loads each entry's module on demand. Adding a family = its spec module + one entry in
:data:`FAMILIES` (docs/guides/ADDING_A_FAMILY.md).
"""

from __future__ import annotations

from dataclasses import dataclass

ADDING_A_FAMILY = "docs/guides/ADDING_A_FAMILY.md"
"""The guide an unsupported ``model_type`` error points to."""


@dataclass(frozen=True)
class FamilyEntry:
    """One supported checkpoint family (plain data; see the module docstring)."""

    model_type: str
    """``config.json``'s ``model_type`` (the key everything is looked up by)."""
    name: str
    """Display name, e.g. ``LLaVA-1.5``."""
    lmms_model: str
    """The lmms-eval ``--model`` that evaluates this family."""
    spec_module: str
    """Module holding the family's ``SPEC`` (``model_wrappers.families.<module>``)."""
    example_checkpoint: str
    """A public checkpoint of the family (used in error messages)."""
    beta_range: tuple[float, float] | None = None
    """Default AdaptVis threshold range for ``adaptvis tune`` (Appendix E.3), or ``None`` if the paper gives none."""


FAMILIES: tuple[FamilyEntry, ...] = (
    FamilyEntry(
        "llava",
        "LLaVA-1.5",
        "llava_adaptvis",
        "model_wrappers.families.llava15",
        "llava-hf/llava-1.5-7b-hf",
        beta_range=(0.20, 0.55),
    ),
    FamilyEntry(
        "llava_next",
        "LLaVA-1.6",
        "llava_adaptvis",
        "model_wrappers.families.llava16",
        "llava-hf/llava-v1.6-mistral-7b-hf",
        beta_range=(0.30, 0.65),
    ),
    FamilyEntry(
        "qwen2_vl",
        "Qwen2-VL",
        "qwen2_vl_adaptvis",
        "model_wrappers.families.qwen2_vl",
        "Qwen/Qwen2-VL-7B-Instruct",
    ),
    FamilyEntry(
        "qwen2_5_vl",
        "Qwen2.5-VL",
        "qwen2_5_vl_adaptvis",
        "model_wrappers.families.qwen2_5_vl",
        "Qwen/Qwen2.5-VL-7B-Instruct",
    ),
    FamilyEntry(
        "qwen3_vl",
        "Qwen3-VL",
        "qwen3_vl_adaptvis",
        "model_wrappers.families.qwen3_vl",
        "Qwen/Qwen3-VL-8B-Instruct",
    ),
    FamilyEntry(
        "llava_onevision",
        "LLaVA-OneVision",
        "llava_onevision_adaptvis",
        "model_wrappers.families.llava_onevision",
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
    ),
)
"""Every supported family, in documentation order: the registration list."""

_EXTRA: list[FamilyEntry] = []


def register_family(entry: FamilyEntry) -> FamilyEntry:
    """Register a family outside :data:`FAMILIES` (a plug-in's or a test's); refuses a duplicate ``model_type``."""
    if any(e.model_type == entry.model_type for e in families()):
        raise ValueError(f"model_type {entry.model_type!r} is already registered")
    _EXTRA.append(entry)
    return entry


def unregister_family(model_type: str) -> None:
    """Remove a family added with :func:`register_family`."""
    for entry in _EXTRA:
        if entry.model_type == model_type:
            _EXTRA.remove(entry)
            return
    raise KeyError(f"model_type {model_type!r} was not added with register_family")


def families() -> tuple[FamilyEntry, ...]:
    """Every registered family: :data:`FAMILIES`, then any added with :func:`register_family`."""
    return (*FAMILIES, *_EXTRA)


def family_entry(model_type: object) -> FamilyEntry | None:
    """The family registered for ``model_type``, or ``None``."""
    return next((e for e in families() if e.model_type == model_type), None)


def model_types_of(lmms_model: str) -> tuple[str, ...]:
    """The ``model_type`` values the lmms-eval model ``lmms_model`` evaluates."""
    return tuple(e.model_type for e in families() if e.lmms_model == lmms_model)


def supported_text(model_types: tuple[str, ...] | None = None) -> str:
    """``llava (LLaVA-1.5), llava_next (LLaVA-1.6), ...`` for messages (all families by default)."""
    chosen = [e for e in families() if model_types is None or e.model_type in model_types]
    return ", ".join(f"{e.model_type} ({e.name})" for e in chosen)


def unsupported_message(model_type: object) -> str:
    """Why ``model_type`` is refused: the supported families and the guide to add one."""
    return (
        f"model_type={model_type!r} is not supported; supported: {supported_text()} "
        f"(to add a family, see {ADDING_A_FAMILY})"
    )
