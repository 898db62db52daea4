"""method=pai and method=vaf: equal to the authors' code run naively (tests/support/authors_attention.py),
batched, fused."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from model_wrappers.api import adaptvis_generate
from model_wrappers.intervention import enable_image_attention_scaling
from model_wrappers.logit_edit import LogitEdit
from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.methods.contract import DecodingMethod
from model_wrappers.methods.pai import Pai, contrast, text_only_batch
from tests.model.test_intervention import QUESTIONS, _image
from tests.support.authors_attention import AuthorsReference, prompt_text

NEW_TOKENS = 5
FAMILIES = ("llava", "qwen2_vl")


class Product:
    """The product: the tiny checkpoint on the adaptvis_sdpa backend, left-padded batches."""

    def __init__(self, path, model_type: str) -> None:
        self.model_type = model_type
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        enable_image_attention_scaling(self.model)

    def inputs(self, indices):
        texts = [prompt_text(self.processor, self.model_type, QUESTIONS[i]) for i in indices]
        return self.processor(images=[_image(i) for i in indices], text=texts, padding=True, return_tensors="pt")

    def generate(self, indices, method: str, **arguments):
        return adaptvis_generate(
            self.model,
            self.inputs(indices),
            method,
            max_new_tokens=NEW_TOKENS,
            eos_token_id=[],
            pad_token_id=0,
            **arguments,
        )


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tiny_checkpoints):
    path = tiny_checkpoints[request.param]
    return Product(path, request.param), AuthorsReference(path, request.param)


@pytest.fixture
def first_scores(monkeypatch):
    """Records the first answer token's scores of every decoder call (rows of the batch, in order)."""
    recorded: list[torch.Tensor] = []
    original = {cls: cls.first_token for cls in (Pai, DecodingMethod)}

    def recording(cls):
        def first_token(self, prompt):
            first = original[cls](self, prompt)
            recorded.append(first.scores.clone())
            return first

        return first_token

    for cls in original:
        monkeypatch.setattr(cls, "first_token", recording(cls))
    return recorded


# --- the pieces, by hand ------------------------------------------------------------------------


def test_pai_contrast_matches_a_hand_computation():
    s = torch.tensor([[2.0, 1.8, -0.5, -3.0]])
    u = torch.tensor([[3.0, 0.0, 0.0, 1.0]])
    ls = s - torch.logsumexp(s, -1, keepdim=True)
    lu = u - torch.logsumexp(u, -1, keepdim=True)
    expected = 1.5 * (ls - lu) + lu
    keep = ls >= math.log(0.1) + ls.max()
    assert keep.tolist() == [[True, True, False, False]]
    out = contrast(s, u, 1.5)
    assert torch.allclose(out[keep], expected[keep], atol=1e-6)
    assert torch.isinf(out[~keep]).all()
    assert out.argmax().item() == 1 and s.argmax().item() == 0  # token 0 is what the text alone predicts
    assert torch.equal(contrast(s, None, 1.0), torch.log_softmax(s, -1))  # gamma == 1: no text-only pass


def _explicit_attention(query, key, value, visible, rows_from, scale, gain):
    """Full matrices, every row: the edit on rows >= rows_from, the mask, softmax, values."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    logits = query @ key.transpose(2, 3) / math.sqrt(query.shape[-1])
    start = key.shape[2] - query.shape[2]
    for b in range(query.shape[0]):
        for n in range(query.shape[2]):
            if start + n >= rows_from[b]:
                cols = scale.shape[1]
                a = logits[b, :, n, :cols]
                logits[b, :, n, :cols] = scale[b] * a + (0 if gain is None else gain[b]) * a.abs()
    logits = logits.masked_fill(~visible, -math.inf)
    return (torch.softmax(logits, -1) @ value).transpose(1, 2)


@pytest.mark.parametrize("with_gain", [False, True])
@pytest.mark.parametrize("q_len", [1, 6])
def test_logit_edit_equals_full_matrices(with_gain, q_len):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    batch, heads, kv_heads, dim, kv_len, prompt_len = 3, 4, 2, 8, 10, 9
    query = torch.randn(batch, heads, q_len, dim)
    key, value = torch.randn(batch, kv_heads, kv_len, dim), torch.randn(batch, kv_heads, kv_len, dim)
    start = kv_len - q_len
    causal = torch.arange(kv_len)[None, :] <= (start + torch.arange(q_len))[:, None]
    padding = torch.ones(batch, kv_len, dtype=torch.bool)
    padding[1, :2] = False
    visible = causal[None, None] & padding[:, None, None, :]
    rows_from = torch.tensor([kv_len - 1, start + 2, 0])
    scale = torch.rand(batch, prompt_len) + 0.5
    gain = torch.rand(batch, prompt_len) if with_gain else None

    class Module:
        num_key_value_groups = heads // kv_heads
        is_causal = True
        training = False

    edit = LogitEdit.build(rows_from, scale, gain)
    ours, _ = edit.attend(sdpa_attention_forward, Module(), query, key, value, visible, scaling=dim**-0.5)
    expected = _explicit_attention(query, key, value, visible, rows_from, scale, gain)
    assert torch.allclose(ours, expected, atol=1e-5)


# --- against the authors' code ------------------------------------------------------------------

PAI_SETTINGS = [
    {"pai_start_layer": 1},  # the authors' alpha 0.2 and gamma 1.1
    {"pai_alpha": 3.0, "pai_gamma": 2.0, "pai_start_layer": 0},
    {"pai_alpha": 3.0, "pai_gamma": 1.0, "pai_start_layer": 0, "pai_end_layer": 1},  # attention edit only
    {"pai_alpha": 0.0, "pai_gamma": 3.0, "pai_start_layer": 0},  # contrast only
]


@pytest.mark.parametrize("settings", PAI_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_pai_equals_the_authors_code(family, first_scores, settings):
    product, reference = family
    indices = [0, 1, 2, 3]
    ours = product.generate(indices, "pai", **settings)
    parameters = MethodConfig.from_model_args(method="pai", **settings).parameters
    layers = parameters.layers(2)
    for row, index in enumerate(indices):
        tokens, first = reference.pai(index, parameters.pai_alpha, parameters.pai_gamma, layers, NEW_TOKENS)
        assert ours[row].tokens == tokens, (index, settings)
        mine = first_scores[0][row]
        assert torch.equal(torch.isinf(mine), torch.isinf(first))
        finite = torch.isfinite(first)
        assert torch.allclose(mine[finite], first[finite], atol=1e-4)
        assert ours[row].alpha is None


def test_pai_acts(family):
    product, _ = family
    indices = list(range(8))
    baseline = [o.tokens for o in product.generate(indices, "baseline")]
    strong = [o.tokens for o in product.generate(indices, "pai", pai_alpha=5.0, pai_gamma=1.0, pai_start_layer=0)]
    contrasted = [o.tokens for o in product.generate(indices, "pai", pai_alpha=0.0, pai_gamma=3.0, pai_start_layer=0)]
    assert strong != baseline and contrasted != baseline


VAF_SETTINGS = [
    {"vaf_layers": "1"},  # the authors' 1.15 / 0.95
    {"vaf_enhance": 3.0, "vaf_suppress": 0.3, "vaf_layers": "0-1"},
    {"vaf_enhance": 1.0, "vaf_suppress": 0.2, "vaf_layers": "0"},
]


@pytest.mark.parametrize("settings", VAF_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_vaf_equals_the_authors_code(family, first_scores, settings):
    product, reference = family
    indices = [0, 1, 2, 3]
    ours = product.generate(indices, "vaf", **settings)
    parameters = MethodConfig.from_model_args(method="vaf", **settings).parameters
    for row, index in enumerate(indices):
        tokens, first = reference.vaf(
            index, parameters.vaf_enhance, parameters.vaf_suppress, parameters.vaf_layers, NEW_TOKENS
        )
        assert ours[row].tokens == tokens, (index, settings)
        assert torch.allclose(torch.softmax(first_scores[0][row], -1), first, atol=1e-4)
        assert ours[row].confidence == pytest.approx(float(first.max()), abs=1e-4)


def test_vaf_acts(family):
    product, _ = family
    indices = list(range(8))
    baseline = [o.tokens for o in product.generate(indices, "baseline")]
    strong = [o.tokens for o in product.generate(indices, "vaf", vaf_enhance=4.0, vaf_suppress=0.2, vaf_layers="0-1")]
    assert strong != baseline


def test_neutral_coefficients_are_the_baseline_bit_for_bit(family, first_scores):
    product, _ = family
    indices = [0, 1, 2, 3]
    baseline = product.generate(indices, "baseline")
    pai = product.generate(indices, "pai", pai_alpha=0, pai_gamma=1, pai_start_layer=0)
    vaf = product.generate(indices, "vaf", vaf_enhance=1, vaf_suppress=1, vaf_layers="0-1")
    for outputs in (pai, vaf):
        assert [o.tokens for o in outputs] == [o.tokens for o in baseline]
        assert [o.confidence for o in outputs] == [o.confidence for o in baseline]
    plain, pai_scores, vaf_scores = first_scores
    assert torch.equal(pai_scores, torch.log_softmax(plain, -1))  # gamma == 1: CFGLogits returns log_softmax
    assert torch.equal(vaf_scores, plain)


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("pai", {"pai_alpha": 2.0, "pai_gamma": 1.5, "pai_start_layer": 0}),
        ("vaf", {"vaf_enhance": 2.0, "vaf_suppress": 0.5, "vaf_layers": "0-1"}),
    ],
)
def test_answers_do_not_depend_on_batch_size(family, first_scores, method, settings):
    product, _ = family
    indices = list(range(8))
    answers: dict[int, set] = {}
    scores: dict[int, list[torch.Tensor]] = {}
    for size in (1, 4, 8):
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            for row, (i, out) in enumerate(zip(chunk, product.generate(chunk, method, **settings), strict=True)):
                answers.setdefault(i, set()).add(tuple(out.tokens))
                scores.setdefault(i, []).append(first_scores[-1][row])
    assert all(len(found) == 1 for found in answers.values()), answers
    for found in scores.values():
        for other in found[1:]:
            finite = torch.isfinite(found[0])
            assert torch.equal(finite, torch.isfinite(other))
            assert torch.allclose(found[0][finite], other[finite], atol=1e-4)


# --- fused kernels ------------------------------------------------------------------------------


def test_only_the_edited_rows_leave_the_fused_kernel(family, monkeypatch):
    """SDPA carries every attention call; PAI materialises one query row per call, VAF none."""
    product, _ = family
    calls = {"sdpa": 0, "matrices": []}
    sdpa = torch.nn.functional.scaled_dot_product_attention
    matmul = torch.matmul

    def counting_sdpa(*args, **kwargs):
        calls["sdpa"] += 1
        return sdpa(*args, **kwargs)

    def recording_matmul(a, b, *args, **kwargs):
        out = matmul(a, b, *args, **kwargs)
        if out.ndim == 4:
            calls["matrices"].append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
    monkeypatch.setattr(torch, "matmul", recording_matmul)
    product.generate([0, 1, 2, 3], "vaf", vaf_enhance=2.0, vaf_suppress=0.5, vaf_layers="0-1")
    assert calls["matrices"] == [] and calls["sdpa"] > 0
    calls["sdpa"] = 0
    product.generate([0, 1, 2, 3], "pai", pai_alpha=2.0, pai_gamma=1.5, pai_start_layer=1)
    heads = product.model.config.text_config.num_attention_heads
    # layer 1 only, one call per answer token (the first included), each Q K^T [4, heads, 1, keys] and P V
    assert len(calls["matrices"]) == 2 * NEW_TOKENS
    assert all(shape[:3] == (4, heads, 1) for shape in calls["matrices"]), calls["matrices"]
    assert calls["sdpa"] > 0


# --- arguments ----------------------------------------------------------------------------------


def test_defaults_are_the_authors():
    pai = MethodConfig.from_model_args(method="pai")
    assert pai.describe() == {
        "method": "pai",
        "pai_alpha": 0.2,
        "pai_gamma": 1.1,
        "pai_start_layer": 2,
        "pai_end_layer": None,
    }
    assert pai.parameters.layers(32) == tuple(range(2, 32))
    vaf = MethodConfig.from_model_args(method="vaf")
    assert vaf.describe() == {"method": "vaf", "vaf_enhance": 1.15, "vaf_suppress": 0.95, "vaf_layers": "9-14"}
    assert vaf.parameters.vaf_layers == (9, 10, 11, 12, 13, 14)


@pytest.mark.parametrize(
    ("method", "arguments", "message"),
    [
        ("pai", {"pai_alpha": -1}, "pai_alpha=-1 must be >= 0"),
        ("pai", {"pai_gamma": 0}, "pai_gamma=0 must be > 0"),
        ("pai", {"pai_start_layer": "x"}, "pai_start_layer='x' must be a decoder-layer index"),
        ("pai", {"pai_start_layer": 4, "pai_end_layer": 3}, "pai_end_layer=3 must be greater than pai_start_layer=4"),
        ("pai", {"vaf_enhance": 2}, "vaf_enhance is not used by method=pai; remove it or use method=vaf"),
        ("pai", {"alpha": 2}, "alpha is not used by method=pai"),
        ("pai", {"layers": "0-1"}, "layers is not used by method=pai"),
        ("vaf", {"vaf_enhance": 0}, "vaf_enhance=0 must be > 0"),
        ("vaf", {"vaf_suppress": "abc"}, "vaf_suppress='abc' is not a number"),
        ("vaf", {"vaf_layers": "all"}, "vaf_layers='all': VAF acts in chosen middle layers"),
        ("vaf", {"vaf_layers": "3-x"}, "vaf_layers='3-x'"),
        ("vaf", {"pai_gamma": 2}, "pai_gamma is not used by method=vaf; remove it or use method=pai"),
        ("adapt_vis", {"alpha1": 1, "alpha2": 2, "threshold": 0.3, "pai_alpha": 1}, "pai_alpha is not used"),
    ],
)
def test_bad_arguments_are_refused_naming_them(method, arguments, message):
    with pytest.raises(MethodArgumentError) as error:
        MethodConfig.from_model_args(method=method, **arguments)
    assert message in str(error.value)


def test_layers_the_checkpoint_lacks_are_refused():
    with pytest.raises(MethodArgumentError, match="pai_start_layer=2 names no layer: the language model has 2"):
        MethodConfig.from_model_args(method="pai").check_layers(2)
    with pytest.raises(MethodArgumentError, match="pai_end_layer=3 is past the last layer"):
        MethodConfig.from_model_args(method="pai", pai_start_layer=0, pai_end_layer=3).check_layers(2)
    with pytest.raises(MethodArgumentError, match="vaf_layers=9-14 names layer 14"):
        MethodConfig.from_model_args(method="vaf").check_layers(2)


def test_text_only_prompt_drops_the_image_and_its_markers(family):
    product, reference = family
    from model_wrappers.architectures import prompt_batch

    batch = prompt_batch(product.model, product.inputs([0, 1]))
    text = text_only_batch(product.model, batch)
    for row, index in enumerate([0, 1]):
        expected = reference.text_only_ids(reference.inputs(index)["input_ids"])[0]
        assert text.input_ids[row][text.attention_mask[row].bool()].tolist() == expected.tolist()
    assert not bool(text.image_token_mask.any()) and text.vision_inputs == {}


def test_the_lmms_eval_wrapper_takes_and_records_the_arguments(tiny_llava):
    from model_wrappers.llava import LlavaAdaptVis

    wrapper = LlavaAdaptVis(
        pretrained=str(tiny_llava), device="cpu", method="pai", pai_start_layer="1", pai_gamma="1.5"
    )
    assert wrapper.method.describe()["pai_gamma"] == 1.5 and wrapper.method.parameters.pai_start_layer == 1
    with pytest.raises(MethodArgumentError, match="vaf_layers=9-14 names layer 14"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", method="vaf")
    with pytest.raises(MethodArgumentError, match="attn_implementation=sdpa"):
        MethodConfig.from_model_args(method="vaf", vaf_layers="0").decoder(
            AutoModelForImageTextToText.from_pretrained(str(tiny_llava), attn_implementation="eager"), True
        )
