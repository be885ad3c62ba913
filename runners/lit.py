"""Lightning pieces: the data module, the training module, the metrics, early stopping, the
Slurm time limit's backstop.

Metrics (validation and test; runners.metrics.EVAL_METRICS, the table of every metric's
direction, label and format), all on scored positions only (targets != -100), written as
<split>_<name>:
  acc            token accuracy: torchmetrics MulticlassAccuracy(ignore_index=-100,
                 average="micro")
  exact          sequence exact match: every scored position of a sequence right
  acc_macro      accuracy averaged per class (MAD's metric): torchmetrics MulticlassAccuracy
                 (ignore_index=-100, average="macro"); classes neither predicted nor asked
                 count for nothing
  loss           cross-entropy
  slice_acc/<s>  token accuracy on the scored positions of slice s (the task's named slices)

With test settings (a tasks.TaskMixture: Zoology's protocol), the test split is one loader per
setting; test acc, exact and loss pool them all, and each setting <label> also has its own:
test_acc@<label>, test_exact@<label>, test_loss@<label>, test_slice_acc/<s>@<label>.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from runners.cluster import check_time_limit
from runners.metrics import EVAL_METRICS
from tasks import IGNORE_INDEX, TaskMixture, split_seed

# One test setting, one label (the key under the config's `test_settings`), written three ways
# for three containers: its slices in `slice_names` under "test@<label>"; its metrics in the
# result file with the suffix "@<label>" (test_acc@<label>); its metric group, a torch ModuleDict
# key, under "test@<index>" because a label may hold "." and ModuleDict keys may not.
SETTING_PREFIX = "test@"


def setting_slices(label: str) -> str:
    return f"{SETTING_PREFIX}{label}"


def setting_suffix(label: str) -> str:
    return f"@{label}"


def setting_group(index: int) -> str:
    return f"{SETTING_PREFIX}{index}"


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

    @property
    def test_labels(self) -> list[str]:
        """The labels of the test settings ([] for a plain task)."""
        return list(self.task.test) if isinstance(self.task, TaskMixture) else []

    def setup(self, stage: str | None = None) -> None:
        for split, n in self.sizes.items():
            if split in self.data:
                continue
            seed = split_seed(self.seed, split)
            if split == "test" and self.test_labels:  # one data set per test setting
                self.slice_names[split] = []
                self.data[split] = {}
                for label, d in self.task.generate_test_settings(n, seed).items():
                    self.data[split][label], self.slice_names[setting_slices(label)] = _dataset(d)
                continue
            self.data[split], self.slice_names[split] = _dataset(self.task.generate(n, seed))

    def _loader(self, split, batch_size, shuffle):
        if isinstance(self.data[split], dict):
            return [DataLoader(d, batch_size=batch_size, num_workers=self.num_workers)
                    for d in self.data[split].values()]
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


def _dataset(d) -> tuple[TensorDataset, list[str]]:
    """(inputs, targets, slice masks [N, n_slices, seq_len]) of a TaskData, and slice names."""
    names = sorted(d.slices)
    masks = (torch.stack([d.slices[s] for s in names], dim=1) if names
             else torch.zeros(len(d), 0, d.inputs.shape[1], dtype=torch.bool))
    return TensorDataset(d.inputs, d.targets, masks), names


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
                 betas: tuple = (0.9, 0.98), log_every: int = 10):
        super().__init__()
        self.model, self.vocab_size, self.lr = model, vocab_size, lr
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, min_lr_ratio
        self.weight_decay, self.betas = weight_decay, tuple(betas)
        self.slice_names = {s: list(slice_names.get(s, [])) for s in ("val", "test")}
        # test settings (Zoology's protocol), in test order
        self.settings = [k[len(SETTING_PREFIX):] for k in slice_names
                         if k.startswith(SETTING_PREFIX)]
        groups = {split: self.slice_names[split] for split in ("val", "test")}
        for i, label in enumerate(self.settings):
            self.slice_names[setting_slices(label)] = list(slice_names[setting_slices(label)])
            groups[setting_group(i)] = self.slice_names[setting_slices(label)]
        self.metrics = torch.nn.ModuleDict({
            key: torch.nn.ModuleDict({
                "acc": MulticlassAccuracy(num_classes=vocab_size, ignore_index=IGNORE_INDEX,
                                          average="micro"),
                "acc_macro": MulticlassAccuracy(num_classes=vocab_size,
                                                ignore_index=IGNORE_INDEX, average="macro"),
                "exact": ExactMatch(),
                "slices": SliceAccuracy(len(names)),
            }) for key, names in groups.items()
        })
        self._loss_sums: dict[str, list[float]] = {}  # metric group -> [loss * n, n]
        self.recent_losses: list[float] = []  # the last training losses (train_loss)
        # the learning curve (runners.schema.Curve): training loss averaged over log_every steps,
        # validation metrics at each validation
        self.log_every = max(int(log_every), 1)
        self.curve = {"train": {"step": [], "loss": []},
                      "val": {"step": [], "acc": [], "exact": [], "loss": []}}
        self._pending: list[float] = []
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
        value = loss.item()
        self.recent_losses = (self.recent_losses + [value])[-50:]
        self._pending.append(value)
        step = self.global_step + 1  # the step this batch completes
        if step % self.log_every == 0:
            self._flush_train_point(step)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _flush_train_point(self, step: int) -> None:
        if self._pending:
            self.curve["train"]["step"].append(int(step))
            self.curve["train"]["loss"].append(sum(self._pending) / len(self._pending))
            self._pending = []

    def on_train_end(self):
        self._flush_train_point(self.global_step)

    # evaluation: validation and test share one path
    def _eval_step(self, split, batch, dataloader_idx: int = 0):
        inputs, targets, masks = batch
        logits = self(inputs)
        loss = self.loss(logits, targets)
        preds = logits.argmax(dim=-1)
        n = (targets != IGNORE_INDEX).sum().item()
        groups = [(split, masks)]
        if split == "test" and self.settings:  # pooled (no pooled slices) and per setting
            groups = [(split, masks[:, :0]), (setting_group(dataloader_idx), masks)]
        for key, group_masks in groups:
            m = self.metrics[key]
            m["acc"].update(preds, targets)
            m["acc_macro"].update(preds, targets)
            m["exact"].update(preds, targets)
            m["slices"].update(preds, targets, group_masks)
            sums = self._loss_sums.setdefault(key, [0.0, 0])
            sums[0] += loss.item() * n
            sums[1] += n

    def _group_metrics(self, key, names, prefix, suffix="") -> dict:
        """The metrics of group `key` (slices `names`) as {f"{prefix}_acc{suffix}": ...}, then
        reset it."""
        m = self.metrics[key]
        loss_sum, n = self._loss_sums.get(key, (0.0, 0))
        values = {"acc": m["acc"].compute().item(), "exact": m["exact"].compute().item(),
                  "loss": loss_sum / max(n, 1)}
        out = {f"{prefix}_{name}{suffix}": values[name] for name in EVAL_METRICS}
        out[f"{prefix}_acc_macro{suffix}"] = m["acc_macro"].compute().item()
        for name, v in zip(names, m["slices"].compute().reshape(-1).tolist()):
            out[f"{prefix}_slice_acc/{name}{suffix}"] = v
        for metric in m.values():
            metric.reset()
        self._loss_sums.pop(key, None)
        return out

    def _eval_end(self, split):
        out = self._group_metrics(split, self.slice_names[split], split)
        if split == "test":
            for i, label in enumerate(self.settings):
                names = self.slice_names[setting_slices(label)]
                out.update(self._group_metrics(setting_group(i), names, split,
                                               setting_suffix(label)))
        out["at_step"] = self.global_step
        self.results[split] = out
        if split == "val":
            point = self.curve["val"]
            if point["step"] and point["step"][-1] == self.global_step:  # validated again
                for key in point:
                    point[key].pop()
            point["step"].append(int(self.global_step))
            for key in EVAL_METRICS:
                v = out[f"val_{key}"]
                point[key].append(v if math.isfinite(v) else None)
        for key in EVAL_METRICS:
            self.log(f"{split}_{key}", out[f"{split}_{key}"], prog_bar=key == "acc")

    def on_validation_epoch_start(self):
        self._loss_sums = {}

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_start(self):
        self._loss_sums = {}

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self._eval_step("test", batch, dataloader_idx)

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


class StopAtTimeLimit(pl.Callback):
    """Raise the Slurm time limit at the next step should the exception that its signal raised
    have been swallowed where it landed (runners.cluster.check_time_limit)."""

    def on_train_batch_start(self, *_):
        check_time_limit()

    def on_validation_batch_start(self, *_):
        check_time_limit()

    def on_test_batch_start(self, *_):
        check_time_limit()


class StepProgressBar(TQDMProgressBar):
    """The single-run bar: steps done of `trainer.max_steps` (not batches of an epoch) and the
    training loss; validation and test bars as Lightning draws them."""

    def on_train_epoch_start(self, trainer, *_):
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:
            bar.reset(total=trainer.max_steps)
            bar.set_description("steps")
        bar.n = trainer.global_step
        bar.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is not None and not bar.disable and (step % self.refresh_rate == 0
                                                   or step == trainer.max_steps):
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # train_loss, val_acc

    def on_train_epoch_end(self, trainer, pl_module):
        pass
