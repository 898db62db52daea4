"""The method registry: a decoding method is one module and one registration.

How a method module registers itself
------------------------------------
A method module (e.g. ``model_wrappers/methods/my_method.py``) defines two things:

1. its parameters, a frozen dataclass subclassing :class:`MethodParameters`. Its fields *are*
   the ``--model_args`` the method accepts (name, default); ``required`` lists the ones without a
   usable default; :meth:`MethodParameters.parse` turns raw values into the typed, validated
   instance (raising :class:`~model_wrappers.errors.MethodArgumentError`); :meth:`describe`
   gives the settings recorded in traces and logs.
2. its decoder, a :class:`~model_wrappers.methods.contract.DecodingMethod` subclass, decorated
   with the one registration::

       @register_method("my_method", MyParameters)
       class MyMethod(DecodingMethod):
           ...

   A decoder reads its parameters as ``self.config.<field>`` (the :class:`MethodConfig` forwards
   them).

The suite's own method modules are listed once, in registration order, in
:data:`BUILTIN_METHOD_MODULES`; they are imported on the first registry query, so importing this
module costs no torch. Code outside the package (a plugin, a test) registers a method by calling
:func:`register_method` the same way; :func:`unregister_method` removes it again.

Everything that accepts method arguments -- ``MethodConfig.from_model_args``, the lmms-eval
wrappers' ``--model_args`` check, ``model_wrappers.api.adaptvis_generate`` -- derives the accepted
names from this registry (:func:`method_argument_names`); no list of names is written by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from model_wrappers.methods.config import MethodConfig
    from model_wrappers.methods.contract import DecodingMethod

BUILTIN_METHOD_MODULES = (
    "model_wrappers.methods.scaling",
    "model_wrappers.methods.vcd",
    "model_wrappers.methods.dola",
    "model_wrappers.methods.pai",
    "model_wrappers.methods.vaf",
)
"""The suite's method modules, imported (and so registered) on the first registry query, in this order."""


@dataclass(frozen=True)
class MethodParameters:
    """Base of a method's parameters: the dataclass fields are the ``--model_args`` the method accepts.

    Class attributes a method may override: ``required`` (arguments that must be given),
    ``uses_layers`` (whether the shared ``layers=`` argument, where Eq. 2 acts, means something
    for the method) and ``layers_hint`` (appended to the error when ``layers=`` is given to a
    method that does not use it).
    """

    required: ClassVar[tuple[str, ...]] = ()
    uses_layers: ClassVar[bool] = False
    layers_hint: ClassVar[str] = ""

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        """The ``--model_args`` this method accepts (its dataclass fields), in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> MethodParameters:
        """Typed, validated parameters from raw values (``None`` = not given: use the default).

        The default passes values through; methods whose arguments need parsing override it.
        """
        return cls(**{name: value for name, value in raw.items() if value is not None})

    def describe(self, config: MethodConfig) -> dict[str, object]:
        """The settings recorded in traces and logs (``config``: the whole configuration, for shared arguments)."""
        return {name: getattr(self, name) for name in self.argument_names()}

    def check_layers(self, num_layers: int) -> None:
        """Fail early when a parameter names a layer the checkpoint lacks (``num_layers`` decoder layers)."""


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: its ``method=`` name, parameter class and decoder class."""

    name: str
    parameters: type[MethodParameters]
    decoder: type[DecodingMethod]


_REGISTRY: dict[str, MethodSpec] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_METHOD_MODULES:
            importlib.import_module(module)


def register_method(
    name: str, parameters: type[MethodParameters]
) -> Callable[[type[DecodingMethod]], type[DecodingMethod]]:
    """Class decorator: register the decorated decoder as ``method=name`` with ``parameters``.

    Refuses a name registered twice and a parameter class that is not a :class:`MethodParameters`
    dataclass.
    """
    if not (isinstance(parameters, type) and issubclass(parameters, MethodParameters)):
        raise TypeError(f"method {name!r}: parameters must subclass MethodParameters, got {parameters!r}")
    if not dataclasses.is_dataclass(parameters):
        raise TypeError(f"method {name!r}: {parameters.__name__} must be a dataclass")

    def decorate(decoder: type[DecodingMethod]) -> type[DecodingMethod]:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered (by {_REGISTRY[name].decoder.__qualname__})")
        _REGISTRY[name] = MethodSpec(name=name, parameters=parameters, decoder=decoder)
        return decoder

    return decorate


def unregister_method(name: str) -> None:
    """Remove a method registered with :func:`register_method` (a plugin's or a test's)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"method {name!r} is not registered")
    del _REGISTRY[name]


def _ordered() -> list[MethodSpec]:
    """Registered methods: the built-ins in :data:`BUILTIN_METHOD_MODULES` order, then others as registered.

    (Import order alone would decide otherwise: any module may import a method module first.)
    """
    _load_builtins()

    def rank(spec: MethodSpec) -> int:
        module = spec.decoder.__module__
        return BUILTIN_METHOD_MODULES.index(module) if module in BUILTIN_METHOD_MODULES else len(BUILTIN_METHOD_MODULES)

    return sorted(_REGISTRY.values(), key=rank)  # sorted() is stable: registration order within a module


def method_names() -> tuple[str, ...]:
    """Every registered ``method=`` value: the built-ins in their documented order, then plug-ins."""
    return tuple(spec.name for spec in _ordered())


def method_spec(name: str) -> MethodSpec | None:
    """The registered method called ``name``, or ``None``."""
    _load_builtins()
    return _REGISTRY.get(name)


def methods_using(argument: str) -> tuple[str, ...]:
    """The methods whose parameters include ``argument``."""
    return tuple(spec.name for spec in _ordered() if argument in spec.parameters.argument_names())


def method_parameter_names() -> tuple[str, ...]:
    """Every parameter of every registered method (no duplicates), in registration order."""
    names: dict[str, None] = {}
    for spec in _ordered():
        names.update(dict.fromkeys(spec.parameters.argument_names()))
    return tuple(names)


def describe_methods() -> dict[str, dict[str, Any]]:
    """Per method: its parameters with their defaults and which are required (for help texts and docs)."""
    out: dict[str, dict[str, Any]] = {}
    for spec in _ordered():
        fields = dataclasses.fields(spec.parameters)
        out[spec.name] = {
            "parameters": {f.name: None if f.default is dataclasses.MISSING else f.default for f in fields},
            "required": list(spec.parameters.required),
        }
    return out
