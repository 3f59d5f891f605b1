"""Built-in sample results for the demo: the shape of a real GenRec results tree.

Six model directories named like the real ones, checkpoints at their real steps, and
``metrics.json`` + ``metrics.tsv`` with HR@k / NDCG@k that rise and then plateau. It also
holds what real trees hold: a ``checkpoint-best`` folder (never a step) and a checkpoint with
only ``metrics.tsv``. Deterministic, standard library only, so it runs on the training machine.

    python -m remote.demo.sample ./results [--add-checkpoint]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List, Optional, Tuple

KS = (1, 3, 5, 10, 20, 50)
SAMPLE_MODELS: Tuple[Tuple[str, Tuple[int, ...]], ...] = (
    ("Games-grec-grpo-rule-only-fixedhint-taskfix-b16-sft896", (876, 1752, 2628, 3504, 4380, 5256)),
    ("Games-grec-sft-qwen4B-4-256-dsz0", (128, 256, 384, 512, 640, 768, 896, 1024)),
    ("Industrial_and_Scientific-sft-dsz0-4gpu-eq8", (260, 320)),
    ("Instruments-grec-grpo-rule-only-fixedhint-taskfix-b16-hintce-3-sft495", (333, 666, 999, 1332, 1665)),
    ("Instruments-grec-sft-qwen4B-4-64-dsz0", (675, 810)),
    ("Instruments-mimionerec-sft-qwen4B-4-256-dsz0-backup", (50, 100, 550)),
)


def sample_metrics(model_index: int, step: int) -> Dict[str, float]:
    """Given a model and a step, return plausible metrics that rise with the step, then plateau."""
    level = 0.02 + 0.01 * model_index
    progress = 1 - math.exp(-step / 1500.0)
    hit = {k: level * (1 + math.log(k)) * (0.5 + progress) for k in KS}
    metrics: Dict[str, float] = {}
    for k in KS:
        metrics[f"HR@{k}"] = round(hit[k], 4)
        metrics[f"NDCG@{k}"] = round(hit[k] * (0.55 + 0.25 / k), 4)
    return metrics


def write_sample_checkpoint(
    root: str, model_dir: str, model_index: int, step: int, json_file: bool = True
) -> None:
    """Given a root, a model and a step, write that checkpoint's metrics files."""
    directory = os.path.join(root, model_dir, f"checkpoint-{step}")
    os.makedirs(directory, exist_ok=True)
    metrics = sample_metrics(model_index, step)
    if json_file:
        with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
    names = sorted(metrics, key=lambda name: (name.split("@")[0], int(name.split("@")[1])))
    rows = [
        "\t".join(["path"] + names),
        "\t".join([f"{model_dir}/checkpoint-{step}"] + [str(metrics[n]) for n in names]),
    ]
    with open(os.path.join(directory, "metrics.tsv"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def make_sample_results(root: str) -> List[str]:
    """Given a directory, write the sample results tree into it; return the model directories."""
    for index, (model_dir, steps) in enumerate(SAMPLE_MODELS):
        for step in steps:
            write_sample_checkpoint(root, model_dir, index, step)
    first_model = SAMPLE_MODELS[0][0]
    os.makedirs(os.path.join(root, first_model, "checkpoint-best"), exist_ok=True)
    write_sample_checkpoint(root, SAMPLE_MODELS[4][0], 4, 945, json_file=False)  # metrics.tsv only
    return [model_dir for model_dir, _ in SAMPLE_MODELS]


def add_next_checkpoint(root: str) -> Tuple[str, int]:
    """Given a sample tree, add the next checkpoint of the first model; return (model_dir, step)."""
    model_dir, steps = SAMPLE_MODELS[0]
    stride = steps[1] - steps[0]
    existing = [
        int(n.split("-", 1)[1])
        for n in os.listdir(os.path.join(root, model_dir))
        if n.startswith("checkpoint-") and n.split("-", 1)[1].isdigit()
    ]
    step = max(existing) + stride
    write_sample_checkpoint(root, model_dir, 0, step)
    return model_dir, step


def main(argv: Optional[List[str]] = None) -> int:
    """Write the sample tree (or one more checkpoint of it) into the given directory."""
    parser = argparse.ArgumentParser(prog="python -m remote.demo.sample", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="results root to write")
    parser.add_argument("--add-checkpoint", action="store_true", help="add the next checkpoint only")
    args = parser.parse_args(argv)
    if args.add_checkpoint:
        print("added {} checkpoint-{}".format(*add_next_checkpoint(args.root)))
    else:
        print(f"wrote {len(make_sample_results(args.root))} sample models to {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
