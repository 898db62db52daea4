"""The family registry after issue 19: the new families are registered, others are refused with the guide."""

from __future__ import annotations

import pytest

from adaptvis_tasks.families import ADDING_A_FAMILY, families, model_types_of
from model_wrappers.families import UnsupportedFamily, family_spec
from model_wrappers.lmms_plugin.models import MODEL_CLASSES

NEW_FAMILIES = {
    "qwen2_5_vl": "qwen2_5_vl_adaptvis",
    "qwen3_vl": "qwen3_vl_adaptvis",
    "llava_onevision": "llava_onevision_adaptvis",
}


@pytest.mark.parametrize("model_type", sorted(NEW_FAMILIES))
def test_each_new_family_has_its_spec_and_its_own_lmms_eval_model(model_type):
    spec = family_spec(model_type)
    assert spec.model_type == model_type and spec.entry.lmms_model == NEW_FAMILIES[model_type]
    assert NEW_FAMILIES[model_type] in MODEL_CLASSES
    assert model_types_of(NEW_FAMILIES[model_type]) == (model_type,)


@pytest.mark.parametrize("model_type", ["gemma3", "internvl", "idefics3", "qwen3_vl_moe"])
def test_an_unsupported_model_type_is_refused_with_every_supported_family_and_the_guide(model_type):
    with pytest.raises(UnsupportedFamily) as error:
        family_spec(model_type)
    message = str(error.value)
    assert f"model_type={model_type!r} is not supported" in message and ADDING_A_FAMILY in message
    for entry in families():
        assert f"{entry.model_type} ({entry.name})" in message


def test_a_checkpoint_of_another_family_is_refused_by_the_wrapper_naming_the_right_model(tiny_qwen3_vl):
    from model_wrappers.llava import LlavaOnevisionAdaptVis

    with pytest.raises(Exception, match="qwen3_vl_adaptvis") as error:
        LlavaOnevisionAdaptVis(pretrained=str(tiny_qwen3_vl), device="cpu")
    assert "llava_onevision" in str(error.value)
