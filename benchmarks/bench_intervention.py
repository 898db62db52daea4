"""Cost of ScalingVis, AdaptVis, an alpha sweep and the VCD / DoLa / PAI / VAF baselines relative to greedy decoding.

Realistic shape on CPU: a LLaVA-1.5-shaped checkpoint with 336 px images (576 image tokens),
a 4-layer language model and WhatsUp-like prompts, answers of a few tokens (WhatsUp answers are
one word plus EOS). Weights are random; only cost is measured.

All methods run in one process, interleaved round by round; each ratio is paired within a round
and the table reports the median and quartiles over rounds. Each method's peak memory is measured
in a fresh subprocess: the peak resident set size above the RSS after loading (Linux VmHWM).

    python benchmarks/bench_intervention.py                  # defaults used in docs/reports/BENCHMARKS.md
    python benchmarks/bench_intervention.py --quick          # smaller, for a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import DecodeSettings, generate
from model_wrappers.intervention import enable_image_attention_scaling
from model_wrappers.methods import MethodConfig
from tests.support.tiny_checkpoints import TinySpec, build_tiny_llava

QUESTIONS = [
    "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under.",
    "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    "Where is the dining table in the photo? Answer with left, right, top or bottom.",
    "Where is the refrigerator in relation to the oven? Answer with left, right, above, or below.",
]
METHODS = {
    "baseline": {"method": "baseline"},
    "scaling_vis": {"method": "scaling_vis", "alpha": 0.5},
    "adapt_vis": {"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5, "threshold": 0.3},
    "sweep(5 alphas)": {"method": "sweep", "alphas": "0.5|0.8|1.2|1.5|2.0"},
    "vcd": {"method": "vcd"},
    "dola": {"method": "dola"},
    # PAI in every layer (the authors edit 30 of 32), VAF in 2 of 4 (the authors: 6 of 32)
    "pai": {"method": "pai", "pai_start_layer": 0},
    "vaf": {"method": "vaf", "vaf_layers": "1-2"},
}


def _spec(args) -> TinySpec:
    return TinySpec(
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.hidden // 64,
        num_kv_heads=args.hidden // 64,
        vision_hidden_size=64,
        vision_layers=2,
        image_size=args.image_size,
        patch_size=14,
        initializer_range=0.02,
    )


def _load(checkpoint: Path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(checkpoint)
    processor.tokenizer.padding_side = "left"
    model = LlavaForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32).eval()
    return model, processor


def _inputs(processor, batch_size: int, image_size: int):
    images = [Image.new("RGB", (image_size + 40 * i, image_size), (30 * i, 100, 200)) for i in range(batch_size)]
    texts = [f"<image>\nUSER: {QUESTIONS[i % len(QUESTIONS)]}\nASSISTANT:" for i in range(batch_size)]
    return processor(images=images, text=texts, padding=True, return_tensors="pt")


def _settings(args) -> DecodeSettings:
    # No EOS: every answer is exactly --new-tokens long, the same work for every method.
    return DecodeSettings(max_new_tokens=args.new_tokens, eos_token_ids=(), pad_token_id=0)


def _runner(name: str, model, inputs, args):
    settings = _settings(args)
    if name == "hf_generate":

        def run():
            with torch.inference_mode():
                model.generate(
                    **inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False
                )

        return run
    method = MethodConfig.from_model_args(**METHODS[name])

    def run():
        generate(model, prompt_batch(model, inputs), method, settings, need_confidence=False)

    return run


def _peak_memory(checkpoint: Path, name: str, args) -> dict:
    """Run one method in this script's ``--memory-probe`` mode in a fresh process."""
    command = [sys.executable, __file__, "--memory-probe", name, "--checkpoint", str(checkpoint)]
    command += ["--batch-size", str(args.batch_size), "--new-tokens", str(args.new_tokens)]
    command += ["--image-size", str(args.image_size)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_probe(args) -> None:
    model, processor = _load(Path(args.checkpoint))
    if args.memory_probe != "hf_generate":
        enable_image_attention_scaling(model)
    inputs = _inputs(processor, args.batch_size, args.image_size)
    run = _runner(args.memory_probe, model, inputs, args)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark (Linux)
    before = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    print(json.dumps({"rss_growth_mib": (peak - before) / 1024, "peak_rss_mib": peak / 1024}))


MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
"""glibc keeps freed tensor memory instead of returning it to the OS after every step; without this,
page faults on re-allocation add +-20% noise to every timing on CPU (all methods alike)."""


def main() -> None:
    if any(os.environ.get(k) != v for k, v in MALLOC_SETTINGS.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_SETTINGS})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=336, help="336 px / 14 px patches = 576 image tokens")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is least noisy here)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke check, not for the docs)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        _memory_probe(args)
        return
    if args.quick:
        args.rounds = 3

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_tiny_llava(Path(tmp) / "bench_llava", _spec(args))
        model, processor = _load(checkpoint)
        reference_model, _ = _load(checkpoint)  # stays on plain sdpa for transformers' generate()
        enable_image_attention_scaling(model)
        inputs = _inputs(processor, args.batch_size, args.image_size)
        image_tokens = int((inputs["input_ids"][0] == model.config.image_token_id).sum())
        names = ["hf_generate", *METHODS]
        runners = {n: _runner(n, reference_model if n == "hf_generate" else model, inputs, args) for n in names}
        for run in runners.values():  # warm-up
            run()
        times: dict[str, list[float]] = {n: [] for n in names}
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                start = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - start)
        memory = {name: _peak_memory(checkpoint, name, args) for name in names}

    medians = {n: statistics.median(t) for n, t in times.items()}
    # Ratios are paired within a round (every method runs once per round, in rotating order), so
    # slow drifts of the machine cancel; the table reports their median and quartiles.
    ratios = {n: sorted(t / b for t, b in zip(times[n], times["baseline"], strict=True)) for n in names}
    base_growth = max(memory["baseline"]["rss_growth_mib"], 1e-9)
    print(
        f"shape: {image_tokens} image tokens, prompt {inputs['input_ids'].shape[1]} tokens, "
        f"{args.layers} layers x hidden {args.hidden}, batch {args.batch_size}, {args.new_tokens} new tokens, "
        f"{args.rounds} rounds, {args.threads} threads, torch {torch.__version__}"
    )
    print(
        f"{'method':<18}{'median s':>10}{'time / baseline':>17}{'(quartiles)':>16}"
        f"{'peak RSS MiB':>14}{'RSS growth MiB':>16}{'growth / baseline':>19}"
    )
    for name in names:
        quartiles = statistics.quantiles(ratios[name], n=4)
        growth = memory[name]["rss_growth_mib"]
        print(
            f"{name:<18}{medians[name]:>10.4f}{statistics.median(ratios[name]):>17.3f}"
            f"{f'{quartiles[0]:.3f}-{quartiles[2]:.3f}':>16}"
            f"{memory[name]['peak_rss_mib']:>14.0f}{growth:>16.1f}{growth / base_growth:>19.2f}"
        )


if __name__ == "__main__":
    main()
