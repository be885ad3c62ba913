"""The model, the Lightning module and its metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torchmetrics.classification import MulticlassAccuracy

from runners.lit import ExactMatch, LitModel, SliceAccuracy, StopAtAccuracy, TaskDataModule
from runners.model import LanguageModel, build_model
from tasks import make_task

CONF = Path(__file__).resolve().parents[2] / "conf"
MIXERS = sorted(p.stem for p in (CONF / "mixer").glob("*.yaml"))


def tiny_data(seed=0):
    task = make_task("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2)
    dm = TaskDataModule(task, seed, num_train=32, num_val=16, num_test=16, batch_size=8,
                        eval_batch_size=16)
    dm.setup()
    return task, dm


@pytest.mark.parametrize("mixer", MIXERS)
def test_one_training_step_for_every_mixer(mixer):
    torch.manual_seed(0)
    task, dm = tiny_data()
    mixer_cfg = OmegaConf.to_container(OmegaConf.load(CONF / "mixer" / f"{mixer}.yaml"))
    model = LanguageModel(task.vocab_size, task.seq_len, mixer_cfg, d_model=16, n_layers=2,
                          num_heads=2)
    lit = LitModel(model, task.vocab_size, 1e-2, dm.slice_names, warmup_steps=1, max_steps=10)
    opt = lit.configure_optimizers()["optimizer"]
    batch = next(iter(dm.train_dataloader()))
    before = [p.detach().clone() for p in model.parameters()]
    loss = lit.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    # a second step: behind an output projection that starts at zero (RWKV-7, as fla initialises
    # it) the first gradients are zero, and those parameters move once the projection has moved
    opt.zero_grad()
    lit.training_step(batch, 1).backward()
    opt.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert changed == len(before)
    theory = model.theory(task.seq_len)
    assert theory["seq_len"] == 16 and theory["state_size"] > 0 and theory["flops_per_token"] > 0


def test_model_variants(compose):
    cfg = compose(["model.mlp_ratio=0", "model.tie_embeddings=false", "model.pos_emb=none"])
    m = build_model(cfg, vocab_size=32, seq_len=16)
    assert m.blocks[0].mlp is None and m.pos is None
    assert m.head.weight is not m.embed.weight
    tied = build_model(compose(), vocab_size=32, seq_len=16)
    assert tied.head.weight is tied.embed.weight
    # a tied matrix counts once
    assert tied.num_params() == sum(p.numel() for p in set(tied.parameters()))
    x = torch.randint(0, 32, (3, 16))
    assert m(x).shape == (3, 16, 32) and tied(x).shape == (3, 16, 32)


def test_token_accuracy_ignores_minus_100():
    acc = MulticlassAccuracy(num_classes=5, ignore_index=-100, average="micro")
    targets = torch.tensor([[1, -100, 2, -100], [-100, 3, -100, 4]])
    preds = torch.tensor([[1, 0, 0, 0], [0, 3, 0, 0]])  # right at 2 of the 4 scored positions
    assert acc(preds, targets).item() == pytest.approx(0.5)
    acc.reset()
    # predictions at ignored positions do not matter, whatever they are
    preds2 = torch.tensor([[1, 1, 0, 2], [3, 3, 4, 0]])
    assert acc(preds2, targets).item() == pytest.approx(0.5)
    acc.reset()
    # accumulated over batches of different sizes: micro (per position), not per batch
    acc.update(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2, 3]]))
    acc.update(torch.tensor([[0]]), torch.tensor([[1]]))
    assert acc.compute().item() == pytest.approx(0.75)


def test_exact_match_and_slices():
    targets = torch.tensor([[1, -100, 2], [3, 4, -100], [-100, -100, -100]])
    preds = torch.tensor([[1, 0, 2], [3, 0, 0], [0, 0, 0]])
    em = ExactMatch()
    em.update(preds, targets)
    assert em.compute().item() == pytest.approx(0.5)  # the unscored sequence does not count
    masks = torch.zeros(3, 2, 3, dtype=torch.bool)
    masks[0, 0, 0] = masks[1, 0, 0] = True  # slice a: two right
    masks[1, 1, 1] = True  # slice b: one wrong
    sa = SliceAccuracy(3)
    sa.update(preds, targets, torch.cat([masks, torch.zeros(3, 1, 3, dtype=torch.bool)], 1))
    a, b, empty = sa.compute().tolist()
    assert a == 1.0 and b == 0.0 and math.isnan(empty)


def test_lr_schedule():
    lit = LitModel(torch.nn.Linear(2, 2), 4, 1e-3, {}, warmup_steps=10, max_steps=110,
                   min_lr_ratio=0.1)
    assert lit.lr_factor(0) == pytest.approx(0.1)
    assert lit.lr_factor(9) == pytest.approx(1.0)
    assert lit.lr_factor(10) == pytest.approx(1.0)
    assert lit.lr_factor(60) == pytest.approx(0.55)
    assert lit.lr_factor(110) == pytest.approx(0.1)
    assert lit.lr_factor(500) == pytest.approx(0.1)


def test_non_finite_loss_raises():
    task, dm = tiny_data()
    model = LanguageModel(task.vocab_size, task.seq_len, {"name": "attention"}, d_model=16,
                          n_layers=1, num_heads=2)
    with torch.no_grad():
        model.embed.weight.fill_(float("nan"))
    lit = LitModel(model, task.vocab_size, 1e-3, dm.slice_names)
    with pytest.raises(FloatingPointError, match="non-finite"):
        lit.training_step(next(iter(dm.train_dataloader())), 0)


def test_data_splits_are_disjoint_and_deterministic():
    _, a = tiny_data(seed=0)
    _, b = tiny_data(seed=0)
    for split in ("train", "val", "test"):
        assert torch.equal(a.data[split].tensors[0], b.data[split].tensors[0])
    assert not torch.equal(a.data["train"].tensors[0][:16], a.data["val"].tensors[0])
    assert not torch.equal(a.data["val"].tensors[0], a.data["test"].tensors[0])
    assert a.slice_names["test"]  # MQAR has slices
    x, y, masks = next(iter(a.test_dataloader()))
    assert masks.shape == (16, len(a.slice_names["test"]), 16)
    # slice masks lie on scored positions only
    assert not (masks & (y == -100).unsqueeze(1)).any()


def test_stop_at_accuracy():
    class T:
        sanity_checking = False
        global_step = 7
        should_stop = False

    class M:
        results = {"val": {"val_acc": 0.995}}

    cb, trainer = StopAtAccuracy(0.99), T()
    cb.on_validation_end(trainer, M())
    assert trainer.should_stop and cb.reached_at == 7
    trainer2 = T()
    StopAtAccuracy(1.0).on_validation_end(trainer2, M())
    assert not trainer2.should_stop
