"""The trainer's "Beyond Semantics" variants of the embedded model (docs/reports/VISION_EXPERIMENT.md).

A variant trained with ``--normalize-projector`` / ``--multilayer-features`` is saved in the declared
form the converter writes (``adaptvis_vision_extras`` + the extras weights file), so the ordinary
loader rebuilds it: the reloaded model must give the in-training model's logits, and its vision
tokens must equal a straightforward re-implementation of the paper's recipe."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch

from adaptvis_tasks import whatsup_synthetic as gen
from model_wrappers.loading import load_checkpoint
from model_wrappers.vision import EXTRAS_FIELD, EXTRAS_WEIGHTS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--text-hidden", "64", "--vision-hidden", "64", "--batch-size", "4", "--vocab-size", "600"]


def _trainer():
    spec = importlib.util.spec_from_file_location("train_embedded_model", REPO / "scripts" / "train_embedded_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(trainer, out: Path, *options: str) -> argparse.Namespace:
    """The trainer's own command line, defaults included."""
    return trainer.parse_arguments(["--out", str(out), *SMALL, *options])


@pytest.fixture(scope="module", params=[("--normalize-projector",), ("--normalize-projector", "--multilayer-features")])
def trained_variant(request, tmp_path_factory):
    """A variant after three real optimisation steps of the trainer's loss, saved with the trainer's ``save``."""
    trainer = _trainer()
    out = tmp_path_factory.mktemp("variant")
    args = _args(trainer, out, *request.param)
    torch.manual_seed(args.seed)
    processor = trainer.build_processor(args.vocab_size, args.patch)
    model = trainer.build_model(processor, args)
    initial_embeddings = model.get_input_embeddings().weight.detach().clone()
    variant = trainer.VisionVariant(model, processor, args)
    batcher = trainer.Batcher(processor, args.patch)
    split = gen.pair_split()
    rng = random.Random("variant-test")
    params = [*model.parameters(), *variant.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    for step in range(3):
        inputs = batcher.batch(trainer.sample_examples(step + args.stage1_steps, args, split.train, rng))
        loss = trainer.training_loss(model, inputs, args.question_loss_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    trainer.save(
        model,
        processor,
        out,
        {
            "parameters": 0,
            "settings": vars(args) | {"out": str(out)},
            "steps_done": 3,
            "train_minutes": 0.0,
            "curve": [],
        },
        variant,
    )
    batch = batcher.batch(trainer.sample_examples(args.stage1_steps, args, split.train, random.Random("batch")))
    return {
        "options": request.param,
        "out": out,
        "model": model,
        "variant": variant,
        "batch": batch,
        "tokenizer": processor.tokenizer,
        "initial_embeddings": initial_embeddings,
    }


def _logits(model, batch) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "question_labels")}
    with torch.no_grad():
        return model(**inputs).logits


def _reloaded(out: Path):
    return load_checkpoint(str(out), ("llava",), "llava_adaptvis", torch.device("cpu"), dtype="float32").model.eval()


def _ordinary_row_norms(tokenizer, embeddings: torch.Tensor) -> torch.Tensor:
    """L2 norms of the input-embedding rows of ordinary tokens (not special, not added), computed by hand."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    rows = [i for i in range(len(tokenizer)) if i not in special]
    return embeddings[rows].norm(dim=-1)


def test_saved_variant_reloads_through_the_loader_with_the_training_logits(trained_variant):
    reloaded = _reloaded(trained_variant["out"])
    expected = _logits(trained_variant["model"], trained_variant["batch"])
    assert torch.allclose(_logits(reloaded, trained_variant["batch"]), expected, atol=1e-5, rtol=0)


def test_the_learned_rmsnorm_weight_is_saved_and_has_moved_from_its_initial_ones(trained_variant):
    from safetensors.torch import load_file

    saved = load_file(str(trained_variant["out"] / EXTRAS_WEIGHTS))["norm.weight"]
    assert torch.equal(saved, trained_variant["variant"].norm_weight.detach())
    assert not torch.allclose(saved, torch.ones_like(saved))


def test_declaration_records_the_text_embedding_norms_at_initialisation(trained_variant):
    config = json.loads((trained_variant["out"] / "config.json").read_text())
    spec = config[EXTRAS_FIELD]["normalized_projector"]
    norms = _ordinary_row_norms(trained_variant["tokenizer"], trained_variant["initial_embeddings"])
    assert spec["max_norm"] == pytest.approx(float(norms.max()), rel=1e-6)
    assert spec["target_mean"] == pytest.approx(float(norms.mean()), rel=1e-6)
    assert spec["eps"] == 1e-6
    multilayer = "--multilayer-features" in trained_variant["options"]
    assert config["vision_feature_layer"] == ([1, 2] if multilayer else -1)
    assert bool(config[EXTRAS_FIELD].get("per_layer_post_layernorm")) is multilayer


def test_vision_tokens_follow_the_papers_recipe_step_by_step(trained_variant):
    """Independent re-implementation: CLIP layers (each through post_layernorm when multi-layer), CLS
    dropped, MLP projector, RMSNorm with the learned weight, per-token L2 clip, scale."""
    model = _reloaded(trained_variant["out"])
    config = json.loads((trained_variant["out"] / "config.json").read_text())
    spec = config[EXTRAS_FIELD]["normalized_projector"]
    pixels = trained_variant["batch"]["pixel_values"]
    clip = model.model.vision_tower
    post_layernorm = getattr(clip, "vision_model", clip).post_layernorm
    with torch.no_grad():
        hidden = clip(pixel_values=pixels, output_hidden_states=True).hidden_states
        if "--multilayer-features" in trained_variant["options"]:
            features = torch.cat([post_layernorm(hidden[i][:, 1:]) for i in (1, 2)], dim=-1)
        else:
            features = hidden[-1][:, 1:]
        projector = model.model.multi_modal_projector
        x = projector.linear_2(torch.nn.functional.gelu(projector.linear_1(features)))
        x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * trained_variant["variant"].norm_weight
        norm = x.norm(dim=-1, keepdim=True)
        expected = torch.where(norm > spec["max_norm"], x * spec["max_norm"] / norm, x) * spec["target_mean"]
        actual = model.model.get_image_features(pixel_values=pixels)
        actual = actual.pooler_output if hasattr(actual, "pooler_output") else actual
        actual = torch.stack(list(actual)) if isinstance(actual, (list, tuple)) else actual
    assert torch.allclose(actual.reshape(expected.shape), expected, atol=1e-6, rtol=1e-5)
    assert float(actual.norm(dim=-1).max()) <= spec["max_norm"] * spec["target_mean"] * (1 + 1e-5)


def test_default_run_declares_no_extras(tmp_path):
    trainer = _trainer()
    small = ["--steps", "1", "--stage1-steps", "1", "--eval-every", "1", "--dev-per-relation", "1", *SMALL]
    assert trainer.main(["--out", str(tmp_path), *small]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert EXTRAS_FIELD not in config and config["vision_feature_layer"] == -1
    assert not (tmp_path / EXTRAS_WEIGHTS).exists()
    settings = json.loads((tmp_path / "training_log.json").read_text())["settings"]
    assert "normalize_projector" not in settings and "multilayer_features" not in settings
    assert "norm_clip" not in settings


def test_norm_clip_replaces_only_the_clip_constant(tmp_path):
    """``--norm-clip 1.22``: the clip is the given number, the scale stays the initial text mean, so
    every vision token ends at most 1.22x the mean text norm (the paper's 1.22 x 0.83 against 0.83)."""
    trainer = _trainer()
    args = _args(trainer, tmp_path, "--normalize-projector", "--norm-clip", "1.22")
    torch.manual_seed(args.seed)
    processor = trainer.build_processor(args.vocab_size, args.patch)
    model = trainer.build_model(processor, args)
    initial_mean = float(_ordinary_row_norms(processor.tokenizer, model.get_input_embeddings().weight.detach()).mean())
    variant = trainer.VisionVariant(model, processor, args)
    assert variant.normalized.max_norm == 1.22
    assert variant.normalized.target_mean == pytest.approx(initial_mean, rel=1e-6)
    spec = getattr(model.config, EXTRAS_FIELD)["normalized_projector"]
    assert spec["max_norm"] == 1.22 and "--norm-clip" in spec["constants"]


@pytest.mark.parametrize("options", [("--norm-clip", "1.22"), ("--normalize-projector", "--norm-clip", "0")])
def test_norm_clip_is_refused_without_the_normalised_projector_or_when_not_positive(tmp_path, options, capsys):
    trainer = _trainer()
    with pytest.raises(SystemExit) as stopped:
        trainer.parse_arguments(["--out", str(tmp_path), *options])
    assert stopped.value.code == 2
    assert "--norm-clip takes a positive number and needs --normalize-projector" in capsys.readouterr().err
