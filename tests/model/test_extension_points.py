"""A trial family and a trial method, each added with its own code plus one registration.

The trial family ``llava_trial`` is LLaVA-1.5's architecture under another ``model_type``: this
module is its family module (``SPEC``), and one :class:`FamilyEntry` registers it. Its position
ids count their calls, so the test sees that decoding asks the family. The trial method
``logit_temperature`` divides the logits by a parameter: its parameter dataclass and decoder live
here, registered with one ``@register_method``. Nothing else in the suite is edited or patched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from adaptvis_tasks.families import FamilyEntry, register_family, unregister_family, unsupported_message
from model_wrappers.api import adaptvis_generate
from model_wrappers.errors import MethodArgumentError
from model_wrappers.families import UnsupportedFamily, family_spec
from model_wrappers.families.llava15 import SPEC as LLAVA15
from model_wrappers.families.spec import llama_positions
from model_wrappers.methods import MethodConfig, method_argument_names, method_names
from model_wrappers.methods.arguments import positive
from model_wrappers.methods.contract import DecodingMethod
from model_wrappers.methods.registry import MethodParameters, register_method, unregister_method
from tests.support.decoding_helpers import Harness

TRIAL = FamilyEntry("llava_trial", "LLaVA trial", "llava_adaptvis", __name__, "example/llava-trial")
POSITION_CALLS: list[int] = []


def counted_positions(model, inputs):
    POSITION_CALLS.append(int(inputs["input_ids"].shape[0]))
    return llama_positions(model, inputs)


SPEC = replace(LLAVA15, entry=TRIAL, position_ids=counted_positions)
"""The trial family's spec: LLaVA-1.5's declaration with its own entry and position ids."""


@dataclass(frozen=True)
class TemperatureParameters(MethodParameters):
    """``method=logit_temperature``: ``temperature`` (> 0) divides every step's logits."""

    temperature: float = 2.0

    @classmethod
    def parse(cls, raw):
        value = raw["temperature"]
        return cls() if value is None else cls(temperature=positive("temperature", value))


class LogitTemperature(DecodingMethod):
    """Greedy decoding of ``logits / temperature`` (argmax-invariant: must equal the baseline)."""

    def next_scores(self, step, generated):
        self.seen_temperature = self.config.temperature
        return step.logits / self.config.temperature


@pytest.fixture
def trial_family():
    register_family(TRIAL)  # the family's one registration
    yield
    unregister_family(TRIAL.model_type)


@pytest.fixture
def trial_method():
    register_method("logit_temperature", TemperatureParameters)(LogitTemperature)  # the method's one registration
    yield
    unregister_method("logit_temperature")


def test_an_unregistered_family_is_refused_with_the_supported_list_and_the_guide():
    with pytest.raises(UnsupportedFamily) as error:
        family_spec("llava_trial")
    assert str(error.value) == unsupported_message("llava_trial")
    assert "llava (LLaVA-1.5)" in str(error.value) and "docs/guides/ADDING_A_FAMILY.md" in str(error.value)


def test_a_registered_method_is_accepted_everywhere_method_arguments_are(trial_method):
    assert "logit_temperature" in method_names() and "temperature" in method_argument_names()
    config = MethodConfig.from_model_args(method="logit_temperature", temperature="4")
    assert config.temperature == 4.0 and config.describe() == {"method": "logit_temperature", "temperature": 4.0}
    with pytest.raises(MethodArgumentError, match="temperature is not used by method=baseline"):
        MethodConfig.from_model_args(method="baseline", temperature=2)
    with pytest.raises(MethodArgumentError, match="temperature=0 must be > 0"):
        MethodConfig.from_model_args(method="logit_temperature", temperature=0)


def test_the_method_registration_is_removed_again(trial_method):
    unregister_method("logit_temperature")
    assert "logit_temperature" not in method_names()
    register_method("logit_temperature", TemperatureParameters)(LogitTemperature)


def test_a_trial_family_and_a_trial_method_decode_through_the_public_entry_point(
    tiny_llava, trial_family, trial_method
):
    harness = Harness(tiny_llava, "llava")
    baseline = harness.generate([0, 1, 2], "baseline")
    harness.model.config.model_type = TRIAL.model_type  # the checkpoint now belongs to the trial family
    try:
        assert family_spec(harness.model) is SPEC
        POSITION_CALLS.clear()
        trial = harness.generate([0, 1, 2], "logit_temperature", temperature=3)
        assert POSITION_CALLS == [3]  # the trial family's position ids built the batch
        assert [o.tokens for o in trial] == [o.tokens for o in baseline]
        scaled = adaptvis_generate(
            harness.model, harness.inputs([0]), "scaling_vis", alpha=0.5, max_new_tokens=3, eos_token_id=[]
        )
        assert len(scaled[0].tokens) == 3 and scaled[0].alpha == 0.5
    finally:
        harness.model.config.model_type = "llava"
