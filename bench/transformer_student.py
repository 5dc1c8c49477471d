"""How long the transformers student takes to train, and how fast it predicts, on the device present.

Draws N texts from the example pool (dish name and ingredients of
examples/data/keto_pool.jsonl, drawn with a fixed seed, repeated when N is
larger than the pool) and labels them by a keyword, for this bench only:
"sugar" when the text mentions sugar, else "flour" when it mentions flour, else
"neither". Then, --repeat times, it trains a `TransformerStudent` on them
(`fit`, model loading from disk included, the default 10 % held out for
validation, no early stopping so that every run does --epochs epochs) and
predicts all N texts (`predict_proba`). It prints the device and torch's thread
count, the model's size, and the median (with the range) of training seconds,
training examples/s (examples × epochs / seconds) and predictions/s, plus the
last run's validation accuracy as a sanity check that it learnt something.

The model is a random BERT built from a config (by the tests' `tiny_model`: a
word-level vocabulary of the texts' words, --hidden wide, --layers layers, no
download), or a local model directory given by --model (config, tokenizer and
optionally weights; the hub is off, so a model id is refused).

Needs the extra: pip install 'taskc-compiler[transformers]'.

    python bench/transformer_student.py                      # 2,000 texts, 2 epochs, tiny model
    python bench/transformer_student.py --texts 500 --hidden 128 --layers 4 --repeat 1
    python bench/transformer_student.py --model path/to/bert-tiny --threads 1 --predict-batch 64
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "examples" / "data" / "keto_pool.jsonl"
CLASSES = ("sugar", "flour", "neither")

sys.path.insert(0, str(ROOT / "tests"))


def pool_texts(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`count` pool texts ("dish: ingredient, ingredient, ...") and their keyword labels."""
    pool = [json.loads(line) for line in POOL.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(pool)
    texts = [f"{item['dish']}: {', '.join(item['ingredients'])}" for item in (pool * (count // len(pool) + 1))[:count]]
    labels = ["sugar" if "sugar" in t.lower() else "flour" if "flour" in t.lower() else "neither" for t in texts]
    return texts, labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000, help="training (and prediction) texts")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="high, for a small random model")
    parser.add_argument("--predict-batch", type=int, help="texts per batch when predicting (default: --batch-size)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a local model directory instead of the random BERT")
    parser.add_argument("--hidden", type=int, default=32, help="width of the random BERT")
    parser.add_argument("--layers", type=int, default=2, help="layers of the random BERT")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's choice)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best one present)")
    args = parser.parse_args()

    from taskc.runtime.transformer_student import TransformerSettings, TransformerStudent, missing_dependencies

    if missing := missing_dependencies():
        print(missing, file=sys.stderr)
        return 1
    import torch
    from test_transformer_student import tiny_model  # also switches the hub off (HF_HUB_OFFLINE=1)

    if args.threads:
        torch.set_num_threads(args.threads)
    texts, labels = pool_texts(args.texts)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or tiny_model(Path(scratch) / "tiny", texts, hidden=args.hidden, layers=args.layers,
                                         positions=max(args.max_length, 8))
        settings = TransformerSettings(model=str(model), epochs=args.epochs, batch_size=args.batch_size,
                                       learning_rate=args.learning_rate, max_length=args.max_length,
                                       patience=args.epochs)
        train_seconds, rates = [], []
        described: dict[str, Any] = {}
        for _ in range(args.repeat):
            student = TransformerStudent(CLASSES, settings, device=args.device)
            started = time.perf_counter()
            student.fit(texts, labels)
            train_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            student.predict_proba(texts, batch_size=args.predict_batch)
            rates.append(len(texts) / (time.perf_counter() - started))
            described = student.describe()
    examples_per_second = [described["training_examples"] * described["epochs_run"] / s for s in train_seconds]
    counts = {name: labels.count(name) for name in CLASSES}
    print(f"device {described['device']}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"transformers {described['transformers_version']}")
    name = args.model or f"random BERT, {args.hidden} wide, {args.layers} layers"
    print(f"model {name} ({described['parameters']:,} parameters, weights {described['weights']}), "
          f"max_length {described['max_length']}")
    print(f"{len(texts):,} texts {counts}, {described['training_examples']:,} trained on, "
          f"{described['epochs_run']} epochs, batch {args.batch_size}; median of {args.repeat}:")
    print(f"  training:    {statistics.median(train_seconds):8.2f} s      "
          f"(range {min(train_seconds):.2f}–{max(train_seconds):.2f}), "
          f"{statistics.median(examples_per_second):,.0f} examples/s")
    print(f"  prediction:  {statistics.median(rates):8,.0f} items/s "
          f"(range {min(rates):,.0f}–{max(rates):,.0f}), batch {args.predict_batch or args.batch_size}")
    last = described["history"][-1]
    print(f"last run's validation: loss {last['validation_loss']}, accuracy {last['validation_accuracy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
