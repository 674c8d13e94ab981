"""A Hugging Face ``Trainer`` swept by ``examples/hf-trainer.yaml`` (needs ``pip install -e '.[hf]'``).

The model is a 2-layer BERT built from a ``BertConfig`` (no download); the data are generated token
sequences, labelled by the half of the vocabulary most of their tokens come from. The training function
builds the Trainer as one would anyway and hands it to ``orchestrator.integrations.hf.fit``, which supplies
the learning rate, the optimizer and its decay law, the epochs left, checkpoints and the per-epoch report
(``eval_loss`` -> ``val_loss``, ``eval_accuracy`` -> ``val_accuracy``).
"""
from __future__ import annotations

from orchestrator.integrations import hf  # first: names the extra to install if missing

# isort: split
import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

space_keys = {"hidden", "batch_size", "n_train"}  # what this function reads from the sweep's space

VOCAB, LENGTH = 32, 16


def token_data(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` sequences of ``LENGTH`` tokens: label 1 draws each token from the upper half of the vocabulary
    (1..15 + 15) with probability 3/4, else from the lower half (1..15); label 0 the other way round."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    upper = (torch.rand(n, LENGTH, generator=g) < 0.75) == labels[:, None].bool()
    half = VOCAB // 2
    ids = torch.randint(1, half, (n, LENGTH), generator=g) + upper.long() * (half - 1)
    ids[:, 0] = VOCAB - 1  # a [CLS]-like first token (0 is BertConfig's padding id)
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def train(config: dict, trial) -> None:
    torch.manual_seed(int(config.get("seed", 0)))
    hidden = int(config.get("hidden", 32))
    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=LENGTH, num_labels=2))
    batch = int(config.get("batch_size", 32))
    args = TrainingArguments(
        output_dir="hf_trainer", eval_strategy="epoch", logging_strategy="epoch", save_strategy="no",
        report_to="none", per_device_train_batch_size=batch, per_device_eval_batch_size=256,
        use_cpu=trial.device.type == "cpu", disable_tqdm=True, seed=int(config.get("seed", 0)))
    trainer = Trainer(model=model, args=args, train_dataset=token_data(int(config.get("n_train", 512)), seed=1),
                      eval_dataset=token_data(256, seed=2), compute_metrics=accuracy)
    hf.fit(trainer, trial)
