"""Fine-tune a small BERT on a synthetic sentiment task with the Hugging Face `Trainer`, while
Zeus's power-limit callback picks the GPU power limit.

Nothing is downloaded: the model is built from a `BertConfig`, the tokenizer is a word-level
vocabulary of the generated sentences.

    python train_hf.py --gpu 0      # a real NVIDIA GPU
    python train_hf.py --quick      # no GPU: the replay GPU v100-sentiment140-bert-base-uncased
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from zeus.device import backend_or_replay, gpu_backend
from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer, ProfileReport, ZeusCost

POSITIVE = ["great", "wonderful", "superb", "delightful", "moving", "brilliant", "charming", "fun"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "clumsy", "tedious", "bland", "painful"]
SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the ending", "the soundtrack"]
VERBS = ["was", "felt", "seemed", "is", "turned out"]
FILLERS = ["honestly", "really", "quite", "at times", "overall", "i think", "to me"]
MAX_LEN = 16
REPLAY_PROFILE = "v100-sentiment140-bert-base-uncased"
"""Replayed without a GPU: BERT-base fine-tuned on Sentiment140, measured on a V100 per batch size."""


def make_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Reviews whose label is the sentiment word's polarity, flipped by 'not'."""
    rng = random.Random(seed)
    sentences, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.3
        word = rng.choice(POSITIVE if positive != negated else NEGATIVE)
        parts = [rng.choice(SUBJECTS), rng.choice(VERBS)]
        parts += [rng.choice(FILLERS)] if rng.random() < 0.5 else []
        parts += ["not", word] if negated else [word]
        sentences.append(" ".join(parts))
        labels.append(int(positive))
    return sentences, labels


class WordTokenizer:
    """Word-level ids with [PAD]=0, [CLS]=1, [UNK]=2; fixed length."""

    def __init__(self, sentences: list[str]) -> None:
        words = sorted({w for s in sentences for w in s.split()})
        self.vocab = {"[PAD]": 0, "[CLS]": 1, "[UNK]": 2} | {w: i + 3 for i, w in enumerate(words)}

    def encode(self, sentence: str) -> list[int]:
        ids = [1, *(self.vocab.get(w, 2) for w in sentence.split()[: MAX_LEN - 1])]
        return ids + [0] * (MAX_LEN - len(ids))


class SentimentDataset(torch.utils.data.Dataset):
    def __init__(self, sentences: list[str], labels: list[int], tokenizer: WordTokenizer) -> None:
        self.ids = torch.tensor([tokenizer.encode(s) for s in sentences])
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": self.labels[i]}


def accuracy(eval_pred: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def print_savings(plo: GlobalPowerLimitOptimizer) -> None:
    """The chosen limit and its energy per step against the maximum limit, as measured."""
    print(ProfileReport.of(plo).format())
    if gpu_backend().startswith("replay:"):
        print(f"(replay GPU {gpu_backend()}: figures simulated from a profile)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="GPU index (as this process sees it)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eta-knob", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="small data, few steps per limit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["ZEUS_GPU"] = backend = backend_or_replay(REPLAY_PROFILE)
    print(f"GPU backend: {backend}", flush=True)
    warmup_steps, profile_steps, n_train = (2, 4, 1600) if args.quick else (10, 40, 8000)

    train_text, train_labels = make_sentences(n_train, seed=0)
    eval_text, eval_labels = make_sentences(400, seed=1)
    tokenizer = WordTokenizer(train_text)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LEN,
        num_labels=2,
    )
    callback = HFGlobalPowerLimitOptimizer(
        monitor=ZeusMonitor(gpu_indices=[args.gpu]),
        optimum_selector=ZeusCost(args.eta_knob),
        warmup_steps=warmup_steps,
        profile_steps=profile_steps,
    )
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs if not args.quick else 2,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=256,
            learning_rate=args.lr,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="epoch",
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=training_args,
            train_dataset=SentimentDataset(train_text, train_labels, tokenizer),
            eval_dataset=SentimentDataset(eval_text, eval_labels, tokenizer),
            compute_metrics=accuracy,
            callbacks=[callback],
        )
        trainer.train()
        print(f"eval accuracy: {trainer.evaluate()['eval_accuracy']:.3f}")
    if callback.optimizer.chosen_power_limit_w is None:
        print("profiling did not finish: train longer")
        return
    print_savings(callback.optimizer)


if __name__ == "__main__":
    main()
