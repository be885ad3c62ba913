"""Lightning pieces: the data module, the training module, the metrics, early stopping.

Metrics (validation and test), all on scored positions only (targets != -100):
  acc       token accuracy: torchmetrics MulticlassAccuracy(ignore_index=-100, average="micro")
  exact     sequence exact match: every scored position of a sequence right
  slice/<s> token accuracy on the scored positions of slice s (the task's named slices)
  loss      cross-entropy
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from tasks import IGNORE_INDEX, split_seed


# ----------------------------------------------------------------------------------- data
class TaskDataModule(pl.LightningDataModule):
    """Train / val / test sets of a task from disjoint seeds (`tasks.split_seed`)."""

    def __init__(self, task, seed: int, num_train: int, num_val: int, num_test: int,
                 batch_size: int, eval_batch_size: int, num_workers: int = 0):
        super().__init__()
        self.task, self.seed = task, seed
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.data, self.slice_names = {}, {}

    def setup(self, stage: str | None = None) -> None:
        for split, n in self.sizes.items():
            if split in self.data:
                continue
            d = self.task.generate(n, split_seed(self.seed, split))
            names = sorted(d.slices)
            masks = (torch.stack([d.slices[s] for s in names], dim=1) if names
                     else torch.zeros(n, 0, d.inputs.shape[1], dtype=torch.bool))
            self.data[split] = TensorDataset(d.inputs, d.targets, masks)
            self.slice_names[split] = names

    def _loader(self, split, batch_size, shuffle):
        gen = torch.Generator().manual_seed(split_seed(self.seed, split)) if shuffle else None
        return DataLoader(self.data[split], batch_size=batch_size, shuffle=shuffle,
                          generator=gen, num_workers=self.num_workers, drop_last=shuffle)

    def train_dataloader(self):
        bs = min(self.batch_size, self.sizes["train"])
        return self._loader("train", bs, shuffle=True)

    def val_dataloader(self):
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self):
        return self._loader("test", self.eval_batch_size, shuffle=False)


# -------------------------------------------------------------------------------- metrics
class ExactMatch(Metric):
    """Fraction of sequences whose scored positions are all right (sequences with no scored
    position do not count)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds, targets):
        scored = targets != IGNORE_INDEX
        wrong = ((preds != targets) & scored).any(dim=1)
        has = scored.any(dim=1)
        self.correct += (has & ~wrong).sum()
        self.total += has.sum()

    def compute(self):
        return self.correct / self.total.clamp(min=1)


class SliceAccuracy(Metric):
    """Token accuracy within each named slice (masks [B, S, n], True on scored positions)."""

    full_state_update = False

    def __init__(self, num_slices: int):
        super().__init__()
        self.add_state("correct", torch.zeros(num_slices), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_slices), dist_reduce_fx="sum")

    def update(self, preds, targets, masks):
        right = ((preds == targets) & (targets != IGNORE_INDEX)).unsqueeze(1)  # [B, 1, n]
        self.correct += (right & masks).sum(dim=(0, 2)).float()
        self.total += (masks & (targets != IGNORE_INDEX).unsqueeze(1)).sum(dim=(0, 2)).float()

    def compute(self):
        # a slice without examples in this split is NaN (absent), not 0 or 1
        return torch.where(self.total > 0, self.correct / self.total.clamp(min=1),
                           torch.full_like(self.total, float("nan")))


# ---------------------------------------------------------------------------------- model
class LitModel(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, vocab_size: int, lr: float,
                 slice_names: dict, warmup_steps: int = 100, max_steps: int = 1000,
                 min_lr_ratio: float = 0.1, weight_decay: float = 0.1,
                 betas: tuple = (0.9, 0.98)):
        super().__init__()
        self.model, self.vocab_size, self.lr = model, vocab_size, lr
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, min_lr_ratio
        self.weight_decay, self.betas = weight_decay, tuple(betas)
        self.slice_names = {s: list(slice_names.get(s, [])) for s in ("val", "test")}
        self.metrics = torch.nn.ModuleDict({
            split: torch.nn.ModuleDict({
                "acc": MulticlassAccuracy(num_classes=vocab_size, ignore_index=IGNORE_INDEX,
                                          average="micro"),
                "exact": ExactMatch(),
                "slices": SliceAccuracy(len(self.slice_names[split])),
            }) for split in ("val", "test")
        })
        self.recent_losses: list[float] = []  # the last training losses (train_loss)
        self.results: dict[str, dict] = {}  # split -> metrics of the last evaluation

    def forward(self, tokens):
        return self.model(tokens)

    def loss(self, logits, targets):
        if not (targets != IGNORE_INDEX).any():  # nothing scored in this batch: a zero loss
            return logits.sum() * 0.0
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               targets.reshape(-1), ignore_index=IGNORE_INDEX)

    def training_step(self, batch, batch_idx):
        inputs, targets, _ = batch
        loss = self.loss(self(inputs), targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step}")
        self.recent_losses = (self.recent_losses + [loss.item()])[-50:]
        return loss

    # evaluation: validation and test share one path
    def _eval_step(self, split, batch):
        inputs, targets, masks = batch
        logits = self(inputs)
        loss = self.loss(logits, targets)
        preds = logits.argmax(dim=-1)
        m = self.metrics[split]
        m["acc"].update(preds, targets)
        m["exact"].update(preds, targets)
        m["slices"].update(preds, targets, masks)
        n = (targets != IGNORE_INDEX).sum()
        self._loss_sum = getattr(self, "_loss_sum", 0.0) + loss.item() * n.item()
        self._loss_n = getattr(self, "_loss_n", 0) + n.item()

    def _eval_end(self, split):
        m = self.metrics[split]
        out = {f"{split}_acc": m["acc"].compute().item(),
               f"{split}_exact": m["exact"].compute().item(),
               f"{split}_loss": self._loss_sum / max(self._loss_n, 1)}
        for name, v in zip(self.slice_names[split], m["slices"].compute().reshape(-1).tolist()):
            out[f"{split}_slice_acc/{name}"] = v
        for metric in m.values():
            metric.reset()
        self._loss_sum, self._loss_n = 0.0, 0
        out["at_step"] = self.global_step
        self.results[split] = out
        self.log(f"{split}_acc", out[f"{split}_acc"], prog_bar=True)

    def on_validation_epoch_start(self):
        self._loss_sum, self._loss_n = 0.0, 0

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_start(self):
        self._loss_sum, self._loss_n = 0.0, 0

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def on_test_epoch_end(self):
        self._eval_end("test")

    def configure_optimizers(self):
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        # embeddings (and the tied head) are matrices but are not decayed
        emb_ids = {id(m.weight) for m in self.model.modules() if isinstance(m, torch.nn.Embedding)}
        no_decay += [p for p in decay if id(p) in emb_ids]
        decay = [p for p in decay if id(p) not in emb_ids]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr, betas=self.betas)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def lr_factor(self, step: int) -> float:
        """Linear warm-up to 1, then cosine decay to min_lr_ratio at max_steps."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.max_steps - self.warmup_steps, 1)
        t = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


class StopAtAccuracy(pl.Callback):
    """Stop training once validation accuracy reaches `target`."""

    def __init__(self, target: float):
        self.target = target
        self.reached_at: int | None = None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        acc = pl_module.results.get("val", {}).get("val_acc")
        if acc is not None and acc >= self.target:
            self.reached_at = trainer.global_step
            trainer.should_stop = True
