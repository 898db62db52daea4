"""Train the embedded tiny LLaVA on the synthetic WhatsUp generator, deterministically, on CPU.

What it builds: a standard LLaVA-1.5-architecture checkpoint (``LlavaForConditionalGeneration``:
CLIP vision tower, 2-layer MLP projector, Llama decoder) with a byte-level BPE tokenizer trained on
the generator's text and a ``LlavaProcessor`` + ``CLIPImageProcessor``, saved with
``save_pretrained`` so it loads like any llava-hf checkpoint.

How it trains (see docs/reports/EMBEDDED_MODEL.md):

* data: fresh renders from :mod:`adaptvis_tasks.whatsup_synthetic`, only of the *training* object
  pairs (the benchmark's pairs are never seen, in either order); a development set of other
  held-out pairs is evaluated every ``--eval-every`` steps and logged as a curve;
* stage 1 (``--stage1-steps``): object localisation only ("Where is the red circle in the image?
  Answer with left, right, top or bottom."), half with one object, half with two;
* stage 2: relation questions (relations drawn with the paper-Figure-15-like frequencies of
  ``TRAINING_RELATION_FREQUENCIES``) mixed with two-object localisation questions;
* loss: cross-entropy on the answer tokens (one relation word and ``</s>``) plus, with weight
  ``--question-loss-weight``, next-token cross-entropy on the object-name words of the question
  (predicting "circle" after "the red" needs the picture: it teaches the binding of names to image
  regions that answer-only training did not find); AdamW, linear warm-up then cosine decay,
  gradient clipping; ``torch.set_num_threads(--threads)`` (1 by default) and every seed fixed.

Product code never imports this script.

    python scripts/train_embedded_model.py --out model_wrappers/embedded/whatsup-synthetic-llava
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptvis_tasks import whatsup_synthetic as gen
from model_wrappers.chat_templates import LLAVA15_CHAT_TEMPLATE

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def build_processor(vocab_size: int, patch: int):
    """Tokenizer (byte-level BPE trained on the generator's text) and the LLaVA-1.5 processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(gen.corpus(), trainer=trainer)
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", raw.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )
    size = gen.IMAGE_SIZE
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=True,
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=LLAVA15_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )


def build_model(processor, args: argparse.Namespace):
    """A LLaVA-1.5-architecture model with small CLIP and Llama towers (seeded init)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tok = processor.tokenizer
    ids = {name: tok.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=args.text_hidden,
        intermediate_size=args.text_hidden * 4,
        num_hidden_layers=args.text_layers,
        num_attention_heads=args.text_hidden // 32,
        num_key_value_heads=args.text_hidden // 32,
        max_position_embeddings=512,
        initializer_range=0.02,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=args.vision_hidden,
        intermediate_size=args.vision_hidden * 4,
        num_hidden_layers=args.vision_layers,
        num_attention_heads=args.vision_hidden // 32,
        image_size=gen.IMAGE_SIZE,
        patch_size=args.patch,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=ids["<image>"],
        vision_feature_layer=list(MULTILAYER_FEATURES) if args.multilayer_features else -1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        pad_token_id=ids["<pad>"],
    )
    torch.manual_seed(args.seed)
    model = LlavaForConditionalGeneration(config)
    _sincos_positions(model, args.patch)
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<s>"]
    return model


def _sincos_positions(model, patch: int) -> None:
    """Initialise CLIP's learned patch position embeddings with 2-D sin-cos values (CLS row: zeros)."""
    tower = model.model.vision_tower
    embeddings = getattr(tower, "vision_model", tower).embeddings
    table = embeddings.position_embedding.weight
    dim = table.shape[1]
    grid = gen.IMAGE_SIZE // patch
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij"
    )
    parts = []
    for coord in (xs.reshape(-1), ys.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    values = torch.cat(parts, dim=1)
    with torch.no_grad():
        table.zero_()
        table[1:, : values.shape[1]] = values.to(table.dtype)


MULTILAYER_FEATURES = (1, 2)
"""``--multilayer-features``: CLIP ``hidden_states`` indices concatenated as the projector input.

The paper takes layers 12/16/20/24 of a 24-layer CLIP (the last layer and evenly spaced ones
before it); the toy's CLIP has 2 layers, so "every transformer layer" (1 and 2; 0 is the patch
embedding) is the nearest analogue. Each goes through ``post_layernorm`` (CLS dropped), as in the
paper's ``extract_multilayer_features``."""

VARIANT_OPTIONS = ("normalize_projector", "multilayer_features", "norm_clip")
"""Recorded in ``training_log.json`` only when on, so the default run's record is unchanged."""

VARIANT_ORIGIN = "trained by scripts/train_embedded_model.py (variant of arXiv 2503.17349's recipe, tiny scale)"


class VisionVariant:
    """The "Beyond Semantics" variants of the toy, installed with the loader's own hooks.

    ``--normalize-projector`` adds a learned RMSNorm weight (init ones) after the MLP projector,
    then clips each token's L2 norm to ``max_norm`` and multiplies by ``target_mean``
    (``model_wrappers.vision_extras.NormalizedProjectorSpec``); both constants are the max and mean L2
    norm of the toy's ordinary text input-embedding rows *at initialisation* (the paper's 1.22 and
    0.83 are those statistics of its LLM's embeddings before multimodal training). ``--norm-clip``
    replaces the clip constant: ``--norm-clip 1.22`` keeps the paper's outcome, vision tokens at
    1.22x the mean text norm (1.22 x 0.83 = 1.01 against 0.83 in the paper).
    ``--multilayer-features`` concatenates :data:`MULTILAYER_FEATURES` (``vision_feature_layer``)
    and applies ``post_layernorm`` to each (``_post_layernorm_each_layer``). Training runs through
    exactly the hooks ``model_wrappers.loading`` installs from the saved declaration.
    """

    def __init__(self, model, processor, args: argparse.Namespace):
        from model_wrappers import vision, vision_extras

        self.normalized = None
        self.norm_weight = None
        declared: dict[str, object] = {}
        projector = vision_extras.projector_module(model)
        if args.multilayer_features:
            projector.register_forward_pre_hook(vision_extras._post_layernorm_each_layer(model))
            declared["per_layer_post_layernorm"] = True
        if args.normalize_projector:
            tokenizer = processor.tokenizer
            target_mean = vision.text_norm_statistic(model, tokenizer, "mean")
            if args.norm_clip is None:
                max_norm = vision.text_norm_statistic(model, tokenizer, "max")
                constants = "max / mean L2 norm of the ordinary text input-embedding rows at initialisation"
            else:
                max_norm = float(args.norm_clip)
                constants = (
                    "clip given by --norm-clip; scale: mean L2 norm of the ordinary text input-embedding rows "
                    "at initialisation"
                )
            self.norm_weight = torch.nn.Parameter(torch.ones(model.config.text_config.hidden_size))
            self.normalized = vision_extras.NormalizedProjectorSpec(
                weight=self.norm_weight, eps=1e-6, max_norm=max_norm, target_mean=target_mean
            )
            projector.register_forward_hook(lambda module, inputs, output: self.normalized.apply(output))
            declared["normalized_projector"] = {**self.normalized.declaration(), "constants": constants}
        if declared:
            declared["origin"] = VARIANT_ORIGIN
            setattr(model.config, vision_extras.EXTRAS_FIELD, declared)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Trainable parameters outside the transformers model (the RMSNorm weight)."""
        return [] if self.norm_weight is None else [self.norm_weight]

    def save(self, out: Path) -> None:
        """Write the extras weights file the loader reads (``norm.weight``)."""
        if self.norm_weight is None:
            return
        from safetensors.torch import save_file

        from model_wrappers import vision_extras

        weight = self.norm_weight.detach().clone().contiguous()
        save_file({"norm.weight": weight}, str(out / vision_extras.EXTRAS_WEIGHTS))


class Batcher:
    """Turns examples into model inputs exactly as ``LlavaProcessor`` does (checked once at start)."""

    def __init__(self, processor, patch: int):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id
        self.mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGE_STD).view(3, 1, 1)
        self.image_tokens = (gen.IMAGE_SIZE // patch) ** 2
        self._prompt_cache: dict[str, list[int]] = {}
        self._answer_cache: dict[str, list[int]] = {}
        self.name_ids = set()
        for word in (*gen.COLOURS, *gen.SHAPES):
            ids = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise SystemExit(f"object word {word!r} is not one token; raise --vocab-size")
            self.name_ids.add(ids[0])

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompt_cache:
            expanded = prompt.replace("<image>", "<image>" * self.image_tokens)
            self._prompt_cache[prompt] = self.tokenizer(expanded)["input_ids"]
        return self._prompt_cache[prompt]

    def answer_ids(self, answer: str) -> list[int]:
        if answer not in self._answer_cache:
            ids = self.tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
            self._answer_cache[answer] = [*ids, self.eos]
        return self._answer_cache[answer]

    def pixels(self, images) -> torch.Tensor:
        array = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
        tensor = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0
        return (tensor - self.mean) / self.std

    def check_against_processor(self, examples) -> None:
        """Fail loudly if this fast path differs from what the evaluation's processor produces."""
        reference = self.processor(
            images=[e.image for e in examples], text=[e.prompt for e in examples], padding=True, return_tensors="pt"
        )
        ours = self.batch(examples, with_answers=False)
        if not torch.allclose(reference["pixel_values"], ours["pixel_values"], atol=1e-5):
            raise SystemExit("pixel preprocessing differs from the CLIPImageProcessor; fix Batcher.pixels")
        if not torch.equal(reference["input_ids"], ours["input_ids"]):
            raise SystemExit("prompt tokenisation differs from the LlavaProcessor; fix Batcher.prompt_ids")

    def batch(self, examples, with_answers: bool = True) -> dict[str, torch.Tensor]:
        sequences, labels, question_labels = [], [], []
        for example in examples:
            prompt = self.prompt_ids(example.prompt)
            answer = self.answer_ids(example.answer) if with_answers else []
            sequences.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
            names = [token if token in self.name_ids else -100 for token in prompt]
            question_labels.append(names + [-100] * len(answer))
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad, dtype=torch.long)
        label_ids = torch.full((len(sequences), width), -100, dtype=torch.long)
        question_ids = torch.full((len(sequences), width), -100, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (sequence, label, question) in enumerate(zip(sequences, labels, question_labels, strict=True)):
            input_ids[row, width - len(sequence) :] = torch.tensor(sequence)
            label_ids[row, width - len(sequence) :] = torch.tensor(label)
            question_ids[row, width - len(sequence) :] = torch.tensor(question)
            mask[row, width - len(sequence) :] = 1
        out = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "pixel_values": self.pixels([e.image for e in examples]),
        }
        if with_answers:
            out["labels"] = label_ids
            out["question_labels"] = question_ids
            out["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        return out


def sample_examples(step: int, args, pairs, rng: random.Random):
    """The examples of one training step (stage 1: localisation; stage 2: relations + localisation)."""
    examples = []
    for _ in range(args.batch_size):
        if step < args.stage1_steps:
            examples.append(gen.localisation_example(pairs, rng, single=rng.random() < 0.5))
        elif rng.random() < args.localisation_fraction:
            examples.append(gen.localisation_example(pairs, rng, single=False))
        else:
            examples.append(gen.relation_example(pairs, rng))
    return examples


def dev_set(pairs, seed: int, per_relation: int):
    """Fixed development examples from the held-out dev pairs: ``per_relation`` per relation and as many
    two-object localisation questions as there are relations."""
    rng = random.Random(f"dev:{seed}")
    examples = []
    for relation in gen.TRAINING_RELATION_FREQUENCIES:
        examples += [gen.relation_example(pairs, rng, relation) for _ in range(per_relation)]
    examples += [gen.localisation_example(pairs, rng, single=False) for _ in range(2 * per_relation)]
    return examples


@torch.no_grad()
def evaluate(model, batcher: Batcher, examples) -> dict[str, float]:
    """First-answer-token accuracy per relation (and localisation) on fixed examples."""
    model.eval()
    hits: dict[str, list[int]] = {}
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        inputs = batcher.batch(chunk)
        labels = inputs.pop("labels")
        inputs.pop("question_labels")
        logits = model(**inputs).logits
        for row, example in enumerate(chunk):
            positions = (labels[row] != -100).nonzero().flatten()
            first = int(positions[0])
            predicted = int(logits[row, first - 1].argmax())
            key = example.answer.lower() if example.kind == "relation" else "localisation"
            hits.setdefault(key, []).append(int(predicted == int(labels[row, first])))
    model.train()
    report = {key: sum(v) / len(v) for key, v in hits.items()}
    relation_hits = [h for key, v in hits.items() if key != "localisation" for h in v]
    report["relation_mean"] = sum(relation_hits) / len(relation_hits)
    return report


def training_loss(model, inputs: dict[str, torch.Tensor], question_weight: float) -> torch.Tensor:
    """Cross-entropy on the answer tokens, plus ``question_weight`` x next-token cross-entropy on the
    object-name tokens of the question (colour and shape words: after the image they can only be
    predicted by looking at it, e.g. "the red ..." -> "circle" needs the red object's shape). The
    evaluation never sees this loss; it gives the binding of names to image regions a direct signal."""
    batch = {k: v for k, v in inputs.items() if k not in ("labels", "question_labels")}
    logits = model(**batch).logits[:, :-1]
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    answer = torch.nn.functional.cross_entropy(flat, inputs["labels"][:, 1:].reshape(-1), ignore_index=-100)
    if question_weight == 0:
        return answer
    question = torch.nn.functional.cross_entropy(flat, inputs["question_labels"][:, 1:].reshape(-1), ignore_index=-100)
    return answer + question_weight * question


MODEL_CARD = """# whatsup-synthetic-llava (a toy trained here)

A {parameters:,}-parameter model with the LLaVA-1.5 architecture (`LlavaForConditionalGeneration`:
CLIP vision tower, {vision_layers} layers of width {vision_hidden}, {image_size} px images in {patch} px
patches; 2-layer MLP projector; Llama decoder, {text_layers} layers of width {text_hidden}; a {vocab}-token
byte-level BPE tokenizer trained on the generator's text), with a `LlavaProcessor` and
`CLIPImageProcessor`. It loads like any llava-hf checkpoint and is prompted like LLaVA-1.5
(`<image>\\nUSER: ... \\nASSISTANT:`); it answers with one capitalised relation word.

It was trained from scratch by `scripts/train_embedded_model.py` ({steps} steps, seed {seed}, {minutes} min on CPU)
on fresh renders of the synthetic WhatsUp-style generator (`adaptvis_tasks/whatsup_synthetic.py`),
using only the *training* object pairs: no object pair of the shipped benchmark appears in its
training data, in either order. Training questions use relation frequencies shaped like the
paper's Figure 15 (our choice: left 30%, right 30%, on 12%, under 12%, front 8%, behind 8%).

It knows nothing but this toy world: eight colours, five shapes, six relations. It exists so the
suite's pipeline can be run offline with numbers that respond to the image and to the method;
it says nothing about real VLMs. Results and how it was built: docs/reports/EMBEDDED_MODEL.md in the
adaptvis-eval repository. Training curve (held-out development pairs): `training_log.json`.
"""


def save(model, processor, out: Path, record: dict, variant: VisionVariant | None = None) -> None:
    """Write the checkpoint folder (weights, config, processor, model card) and the training record."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if variant is not None:
        variant.save(out)
    (out / "training_log.json").write_text(json.dumps(record, indent=1) + "\n")
    settings = record["settings"]
    card = MODEL_CARD.format(
        parameters=record["parameters"],
        vocab=len(processor.tokenizer),
        image_size=gen.IMAGE_SIZE,
        minutes=record["train_minutes"],
        steps=record["steps_done"],
        **{k: settings[k] for k in ("vision_layers", "vision_hidden", "patch", "text_layers", "text_hidden", "seed")},
    )
    if settings.get("normalize_projector") or settings.get("multilayer_features"):
        card += (
            "\n**Variant** (docs/reports/VISION_EXPERIMENT.md): "
            f"normalised projector {bool(settings.get('normalize_projector'))}, "
            f"multi-layer features {bool(settings.get('multilayer_features'))}; declared in config.json "
            "(`adaptvis_vision_extras`) and installed by the suite's loader.\n"
        )
    (out / "README.md").write_text(card)


def learning_rate(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def parse_arguments(argv=None) -> argparse.Namespace:
    """The command line (also used by tests to get the defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--stage1-steps", type=int, default=200)
    parser.add_argument("--localisation-fraction", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--text-hidden", type=int, default=128)
    parser.add_argument("--text-layers", type=int, default=3)
    parser.add_argument("--vision-hidden", type=int, default=128)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=600)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every-eval", action="store_true", help="also write the checkpoint at every evaluation")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--dev-per-relation", type=int, default=40)
    parser.add_argument("--question-loss-weight", type=float, default=1.0)
    parser.add_argument(
        "--normalize-projector",
        action="store_true",
        help="Beyond Semantics' NormalizedProjector after the MLP (RMSNorm, norm clip, scale; off by default)",
    )
    parser.add_argument(
        "--multilayer-features",
        action="store_true",
        help="projector input: CLIP layers 1 and 2, each through post_layernorm, concatenated (off by default)",
    )
    parser.add_argument(
        "--norm-clip",
        type=float,
        default=None,
        help="with --normalize-projector: the norm clip constant (default: the max text-embedding norm at "
        "initialisation; 1.22 gives vision tokens the paper's 1.22x ratio to the mean text norm)",
    )
    args = parser.parse_args(argv)
    if args.norm_clip is not None and (not args.normalize_projector or args.norm_clip <= 0):
        parser.error("--norm-clip takes a positive number and needs --normalize-projector")
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.time()
    processor = build_processor(args.vocab_size, args.patch)
    model = build_model(processor, args)
    variant = VisionVariant(model, processor, args)
    model.train()
    batcher = Batcher(processor, args.patch)
    split = gen.pair_split()
    rng = random.Random(f"train:{args.seed}")
    batcher.check_against_processor(sample_examples(0, args, split.train, random.Random("check")))
    dev = dev_set(split.dev, args.seed, args.dev_per_relation)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    no_decay += variant.parameters()
    trainable = [*model.parameters(), *variant.parameters()]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    n_params = sum(p.numel() for p in trainable)
    print(f"parameters: {n_params}  vocab: {len(processor.tokenizer)}", flush=True)
    curve = []
    running = 0.0
    settings = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("out", "save_every_eval") and not (k in VARIANT_OPTIONS and not v)
    }
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        inputs = batcher.batch(sample_examples(step, args, split.train, rng))
        loss = training_loss(model, inputs, args.question_loss_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            report = evaluate(model, batcher, dev)
            entry = {"step": step + 1, "minutes": round((time.time() - started) / 60, 2), "loss": round(running, 4)}
            entry.update({k: round(v, 3) for k, v in report.items()})
            curve.append(entry)
            print(json.dumps(entry), flush=True)
            record = {
                "parameters": n_params,
                "settings": settings,
                "steps_done": step + 1,
                "train_minutes": entry["minutes"],
                "torch": torch.__version__,
                "curve": curve,
            }
            if args.save_every_eval or step + 1 == args.steps:
                save(model, processor, args.out, record, variant)
    print(f"saved {args.out} after {record['train_minutes']} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
