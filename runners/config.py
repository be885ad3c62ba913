"""The schema of `conf/`: dataclasses registered in Hydra's ConfigStore.

`conf/config.yaml` starts its defaults list with `base_config` (the `Config` dataclass below),
so every group file is merged into a typed node: a misspelled key or a value of the wrong type
is an error when Hydra composes the config, before any training starts. What a type cannot say
(the task's parameters, a mixer's pattern strings, d_model % num_heads) is checked by
`validate(cfg)`, which the train entry point calls before it builds anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mixers import build_mixer
from mixers.config import MixerConfig
from mixers.positions import POS_EMB
from runners.loggers import LOGGERS, installed
from runners.schema import RUN_ONLY  # noqa: F401  (re-exported: the fields outside identity)


@dataclass
class TaskConfig:
    name: str = MISSING  # a registry name of tasks.make_task: mqar, copy, multihop, ...
    setting: str = ""  # a label of the task and its size, e.g. mqar-n64-kv4; "": <name>-n<seq_len>
    params: dict[str, Any] = field(default_factory=dict)  # make_task(name, **params)
    num_train: int = 10_000  # examples per split; the three splits use disjoint seeds
    num_val: int = 500
    num_test: int = 1_000
    # Zoology's protocol (docs/tasks.md): label -> overrides of params. train_settings: train on
    # an equal-share mixture of them ({}: on params alone); test_settings: test on each
    # (num_test examples each; {}: as trained). Either one set gives per-setting test metrics.
    train_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_settings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "tiny"
    d_model: int = 64
    n_layers: int = 2
    num_heads: int = 2
    mlp_ratio: int = 4  # hidden size of the MLP = mlp_ratio * d_model; 0: blocks without MLP
    # learned | sinusoidal | rope | alibi | none (mixers/positions.py); only learned has a table
    pos_emb: str = "learned"
    tie_embeddings: bool = True  # the head shares the embedding matrix
    dropout: float = 0.0


@dataclass
class TrainerConfig:
    name: str = "cpu"
    accelerator: str = "cpu"  # cpu | gpu | auto (Lightning's names)
    devices: int = 1
    precision: str = "32-true"  # Lightning precision: 32-true | bf16-mixed | 16-mixed
    matmul_precision: str = "highest"  # torch.set_float32_matmul_precision: highest | high
    max_steps: int = 2_000  # the schedule's length (warm-up, then cosine decay to its end)
    # end the run at this step, on max_steps' schedule (a short check of a longer run's curve);
    # null: at max_steps. Part of the run's identity when set (docs/runners.md)
    stop_step: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 256
    warmup_steps: int = 100  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1  # on matrices only (not on norms, biases or embeddings)
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0  # 0: no clipping
    val_every: int = 200  # validate every val_every steps (and at the end)
    target_acc: float | None = 1.0  # stop when val accuracy >= target_acc; null: never
    threads: int = 0  # torch threads per run; 0: the cores divided by the parallel jobs
    num_workers: int = 0  # DataLoader workers (the data is already in memory)
    progress_bar: bool | None = None  # null: a step bar for a single run, none in a grid
    logger: str = "auto"  # auto (csv + tensorboard if installed) | csv | tensorboard | wandb | none
    log_every: int = 10  # a training-loss point of the curve every log_every steps


@dataclass
class DebugConfig:
    fail: bool = False  # raise inside the run (after validation): tests the failure path


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    seed: int = 0
    lr: float = 1e-3
    results_dir: str = "results"
    force: bool = False  # rerun even when a finished result of this config exists
    save_checkpoint: bool = False  # keep the final weights (<run folder>/final.ckpt)


class ConfigError(ValueError):
    """A config or task validation error: the message names the field and the constraint.
    `glmix-train` prints it alone (no traceback) and exits with code 2."""


def register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


register()


def validate(cfg: DictConfig):
    """Check what the schema cannot; returns the task (a validated tasks.Task).

    Raises ConfigError naming the field. Called before any data or model is built.
    """
    task = build_task(cfg.task)
    try:
        mixer_cfg = MixerConfig.from_mapping(OmegaConf.to_container(cfg.mixer, resolve=True))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e) if str(e).startswith("mixer") else f"mixer: {e}") from None
    m, t = cfg.model, cfg.trainer
    _check(m.d_model >= 1 and m.n_layers >= 1 and m.num_heads >= 1,
           "model: d_model, n_layers and num_heads must be >= 1")
    _check(m.n_layers <= MAX_LAYERS, f"model.n_layers must be <= {MAX_LAYERS}, got {m.n_layers}")
    _check(m.d_model % m.num_heads == 0,
           f"model.d_model ({m.d_model}) must be divisible by model.num_heads ({m.num_heads})")
    _check(m.pos_emb in POS_EMB, f"model.pos_emb must be one of {' | '.join(POS_EMB)}, got "
           f"{m.pos_emb!r}")
    try:  # the kind's own checks (mixer.params) and whether it takes the position scheme, on
        with torch.device("meta"):  # the meta device: nothing is allocated
            build_mixer(mixer_cfg, m.d_model, m.num_heads, pos_emb=m.pos_emb)
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(("mixer", "model")) else f"mixer: {e}") from None
    _check(m.mlp_ratio >= 0, f"model.mlp_ratio must be >= 0, got {m.mlp_ratio}")
    _check(0.0 <= m.dropout < 1.0, f"model.dropout must be in [0, 1), got {m.dropout}")
    check_model_memory(cfg, task)
    _check(t.max_steps >= 1, f"trainer.max_steps must be >= 1, got {t.max_steps}")
    _check(t.stop_step is None or 1 <= t.stop_step < t.max_steps,
           f"trainer.stop_step must be in [1, trainer.max_steps={t.max_steps}) (null: run the "
           f"whole schedule), got {t.stop_step}")
    _check(t.batch_size >= 1 and t.eval_batch_size >= 1, "trainer batch sizes must be >= 1")
    _check(t.warmup_steps >= 0, f"trainer.warmup_steps must be >= 0, got {t.warmup_steps}")
    _check(0.0 <= t.min_lr_ratio <= 1.0, f"trainer.min_lr_ratio must be in [0, 1], got "
           f"{t.min_lr_ratio}")
    _check(t.val_every >= 1, f"trainer.val_every must be >= 1, got {t.val_every}")
    _check(t.threads >= 0, f"trainer.threads must be >= 0, got {t.threads}")
    _check(t.logger in LOGGERS, f"trainer.logger must be one of {LOGGERS}, got {t.logger!r}")
    _check(t.log_every >= 1, f"trainer.log_every must be >= 1, got {t.log_every}")
    _check(t.logger != "tensorboard" or installed("tensorboard"), "trainer.logger: tensorboard "
           "needs the tensorboard package (pip install tensorboard); use trainer.logger=csv")
    _check(t.logger != "wandb" or installed("wandb"), "trainer.logger: wandb needs the wandb "
           "package (pip install wandb, requirements.txt pins it); use trainer.logger=csv")
    _check(cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, f"lr must be a positive number, got {cfg.lr}")
    return task


#: the deepest model accepted: the memory guard builds the model's layers (on the meta device)
#: one by one to count their parameters, so the depth itself must be bounded first
MAX_LAYERS = 1024
#: bytes per parameter in training: float32 weights, gradients and AdamW's two moments
TRAINING_BYTES_PER_PARAM = 16


def check_model_memory(cfg: DictConfig, task) -> None:
    """ConfigError naming the model fields when the model's parameters in training (weights,
    gradients, AdamW's two moments: TRAINING_BYTES_PER_PARAM each) would exceed the memory guard
    (tasks.base.memory_limit: 8 GiB, or $GLMIX_MAX_BYTES). The model is built on the meta device
    to count them, so nothing is allocated. Activations are not counted (docs/design.md,
    "Untrusted inputs")."""
    from runners.model import build_model
    from tasks.base import memory_limit

    with torch.device("meta"):
        model = build_model(cfg, task.vocab_size, task.seq_len)
    count = sum(p.numel() for p in model.parameters())
    need, limit = count * TRAINING_BYTES_PER_PARAM, memory_limit()
    m = cfg.model
    _check(need <= limit, f"model: {count:,} parameters (d_model={m.d_model}, n_layers="
           f"{m.n_layers}, vocab_size={task.vocab_size}, seq_len={task.seq_len}) need about "
           f"{need / 2**30:.1f} GiB in training, over the memory guard of {limit / 2**30:.1f} "
           f"GiB (GLMIX_MAX_BYTES)")


def build_task(tc: DictConfig):
    """The task of a task config: a tasks.Task, or a tasks.TaskMixture when train_settings or
    test_settings is set. Checks the memory guard for each split's size. ConfigError naming the
    field (and a close match for a misspelled parameter)."""
    from tasks import task_of_config

    params = OmegaConf.to_container(tc.params, resolve=True)
    train = OmegaConf.to_container(tc.train_settings, resolve=True) if tc.train_settings else {}
    test = OmegaConf.to_container(tc.test_settings, resolve=True) if tc.test_settings else {}
    unknown = _unknown_params(tc.name, params)
    if unknown:
        raise ConfigError(unknown)
    try:
        task = task_of_config(tc.name, params, train, test)
    except ValueError as e:
        name = tc.name if str(tc.name).isidentifier() else repr(tc.name)  # one line, whatever
        raise ConfigError(f"task ({name}): {e}") from None
    except TypeError as e:  # a parameter of the wrong kind of value
        raise ConfigError(f"task.params: {e}") from None
    for key in ("num_train", "num_val", "num_test"):
        _check(tc[key] >= 1, f"task.{key} must be >= 1, got {tc[key]}")
        try:
            if key == "num_test" and (train or test):
                task.check_memory(tc[key], test=True)
            else:
                task.check_memory(tc[key])
        except ValueError as e:
            raise ConfigError(f"task.{key}: {e}") from None
    return task


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _unknown_params(task_name: str, params: dict) -> str:
    """'task.params.num_pair: no such parameter of mqar; did you mean task.params.num_kv_pairs?'
    for each parameter the task does not take, joined by '; ' ('' when all are known, or when
    the task itself is unknown: make_task names the known tasks)."""
    import dataclasses
    import difflib

    from tasks import TASKS

    cls = TASKS.get(task_name)
    if cls is None or not dataclasses.is_dataclass(cls):
        return ""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    hints = []
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            shown = key if str(key).isidentifier() else repr(key)  # one line, whatever the key
            hints.append(f"task.params.{shown}: no such parameter of {task_name}; "
                         + (f"did you mean task.params.{close[0]}?" if close
                            else f"known parameters: {', '.join(known)}"))
    return "; ".join(hints)
