"""The macro-averaged accuracy (MAD's metric) beside the per-token one, against plain Python."""

from __future__ import annotations

import torch

from runners.lit import LitModel
from runners.metrics import metric
from tasks import IGNORE_INDEX


class FixedLogits(torch.nn.Module):
    """A model whose prediction at each position is given (one-hot logits)."""

    def __init__(self, preds: torch.Tensor, vocab: int):
        super().__init__()
        self.logits = torch.nn.functional.one_hot(preds, vocab).float()

    def forward(self, tokens):
        return self.logits


def plain_macro(preds, targets):
    """Mean over classes of (right / asked); a class predicted but never asked counts 0, a class
    neither predicted nor asked is left out (torchmetrics' macro, MAD's metric)."""
    per_class = []
    classes = {t for t in targets if t != IGNORE_INDEX} | {
        p for p, t in zip(preds, targets) if t != IGNORE_INDEX}
    for c in sorted(classes):
        asked = [p for p, t in zip(preds, targets) if t == c]
        per_class.append(sum(p == c for p in asked) / len(asked) if asked else 0.0)
    return sum(per_class) / len(per_class)


def test_macro_and_micro_accuracy_on_an_imbalanced_batch():
    gen = torch.Generator().manual_seed(0)
    vocab = 12
    targets = torch.randint(0, 3, (6, 20), generator=gen)  # mostly classes 0..2
    targets[0, :4] = torch.tensor([7, 7, 9, 11])
    targets[torch.rand(6, 20, generator=gen) < 0.3] = IGNORE_INDEX
    preds = torch.where(torch.rand(6, 20, generator=gen) < 0.7, targets.clamp(min=0),
                        torch.randint(0, vocab, (6, 20), generator=gen))
    lit = LitModel(FixedLogits(preds, vocab), vocab, 1e-3, {"test": []})
    lit._eval_step("test", (torch.zeros_like(targets), targets, torch.zeros(6, 0, 20).bool()))
    out = lit._group_metrics("test", [], "test")
    flat_p, flat_t = preds.reshape(-1).tolist(), targets.reshape(-1).tolist()
    scored = [(p, t) for p, t in zip(flat_p, flat_t) if t != IGNORE_INDEX]
    micro = sum(p == t for p, t in scored) / len(scored)
    assert abs(out["test_acc"] - micro) < 1e-6
    assert abs(out["test_acc_macro"] - plain_macro(flat_p, flat_t)) < 1e-6
    assert abs(out["test_acc_macro"] - micro) > 1e-3  # the two averages differ here
    assert metric("test_acc_macro").higher_is_better and metric("val_acc_macro").accuracy


def test_result_metrics_carry_the_macro_accuracy():
    from types import SimpleNamespace

    from runners.train import final_metrics

    val = {"val_acc": 0.5, "val_exact": 0.1, "val_loss": 1.0, "val_acc_macro": 0.4}
    test = {"test_acc": 0.6, "test_exact": 0.2, "test_loss": 0.9, "test_acc_macro": 0.3,
            "test_acc_macro@s": 0.35}
    lit = SimpleNamespace(results={"val": val, "test": test}, recent_losses=[1.0],
                          curve={"val": {"step": [10], "acc": [0.5]}})
    m = final_metrics(lit)
    assert (m["val_acc_macro"], m["test_acc_macro"], m["test_acc_macro@s"]) == (0.4, 0.3, 0.35)
