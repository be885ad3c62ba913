"""conf/ composes, is strict, and validates what a type cannot say."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from runners.config import validate
from runners.paths import catalogue
from runners.progress import sweep_size
from runners.schema import config_hash

CONF = Path(__file__).resolve().parents[2] / "conf"
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
TASKS += sorted(f"{p.parent.name}/{p.stem}" for p in (CONF / "task").glob("*/*.yaml"))
MIXERS = sorted(p.stem for p in (CONF / "mixer").glob("*.yaml"))


def test_default_config(compose):
    cfg = compose()
    task = validate(cfg)
    assert cfg.task.name == "mqar" and cfg.mixer.name == "attention"
    assert cfg.model.name == "tiny" and cfg.model.d_model == 64 and cfg.model.n_layers == 2
    assert cfg.trainer.name == "cpu" and cfg.seed == 0 and cfg.lr == pytest.approx(1e-3)
    assert task.seq_len == cfg.task.params.seq_len
    assert cfg.task.setting == "mqar-n64-kv4"


@pytest.mark.parametrize("task", TASKS)
def test_every_task_file_validates(compose, task):
    cfg = compose([f"task={task}"])
    t = validate(cfg)
    assert t.seq_len >= 1 and cfg.task.setting
    if task.startswith("lengthgen/"):  # named by protocol: lengthgen/parity is state_tracking
        from tasks.lengthgen import PROTOCOLS

        assert cfg.task.name == PROTOCOLS[task.split("/")[-1]]["name"]
    elif task.startswith("mad/"):  # named by MAD's task and change: mad/noisy-v80 is noisy_recall
        from tasks.mad import config

        assert cfg.task.name == config("mad-" + task.split("/")[-1])["name"]
    elif task.startswith("forgetting/"):  # forgetting MQAR by size: forgetting/n64 is mqar
        assert cfg.task.name == "mqar"
    else:
        assert task.split("/")[-1].startswith(cfg.task.name)  # e.g. mqar, mqar_generalization


@pytest.mark.parametrize("mixer", MIXERS)
def test_every_mixer_file_composes(compose, mixer):
    validate(compose([f"mixer={mixer}"]))


@pytest.mark.parametrize("group", ["model=small", "model=paper", "trainer=gpu"])
def test_other_groups_compose(compose, group):
    validate(compose([group]))


def test_max_steps_from_the_command_line(compose):
    assert compose(["trainer.max_steps=7"]).trainer.max_steps == 7


@pytest.mark.parametrize("override", [
    "trainer.max_step=3",          # misspelled key
    "model.d_modle=32",            # misspelled key in a group
    "mixer.recurent=pow2",         # misspelled key of the mixer (MixerConfig schema)
    "lr_rate=0.1",                 # a misspelled top-level key
    "model.d_model=abc",           # wrong type
    "trainer.target_acc=high",     # wrong type
    "mixer.cache_efficient=maybe",  # wrong type
    "task=mqqar",                  # no such task file
    "task.params.num_pair=4",      # a task parameter the task file does not list (needs +)
])
def test_strict_schema(compose, override):
    with pytest.raises(ConfigCompositionException):
        compose([override])


@pytest.mark.parametrize("override, words", [
    ("+task.params.num_pair=4", "num_pair"),             # unknown task parameter
    ("task.params.num_kv_pairs=100", "num_kv_pairs"),    # a constraint of the task
    ("mixer.recurrent=pow3", "pow3"),                    # a pattern that does not parse
    ("model.num_heads=3", "num_heads"),                  # d_model % num_heads
    ("lr=-1", "lr"),
])
def test_validation_names_the_field(compose, override, words):
    cfg = compose([override])
    with pytest.raises(ValueError, match=words):
        validate(cfg)


def test_grids(compose):
    smoke = compose(["grid=smoke"], return_hydra_config=True)
    assert sweep_size(smoke) == 8
    assert smoke.trainer.max_steps <= 1000
    params = smoke.hydra.sweeper.params
    assert len(str(params.mixer).split(",")) == 4 and len(str(params.task).split(",")) == 2
    # the paper's table at CPU scale: 3 tasks x the 9 vector mixers x 3 seeds x 2 learning rates
    vector = {"attention", "local_attention", "first_order", "kth_order", "dense_recurrence",
              "pow2", "pow2_cache", "sq1", "sq1_cache"}
    paper = compose(["grid=paper_table1"], return_hydra_config=True)
    assert set(str(paper.hydra.sweeper.params.mixer).split(",")) == vector
    assert sweep_size(paper) == 3 * 9 * 3 * 2
    # the GPU grid adds the state-expanded rows, short_conv off and on q, k, v; its baselines
    # grid every fla mixer (which cannot take the q, k, v placement)
    gpu = compose(["grid=paper_table1_gpu"], return_hydra_config=True)
    gpu_mixers = set(str(gpu.hydra.sweeper.params.mixer).split(","))
    # the signed variants and the state-tracking baselines (docs/design.md 1.10) are not rows of
    # the paper's table
    expanded = {name for name in catalogue()
                if name.startswith("se_") and not name.endswith("_signed")}
    fla = {name for name, cfg in catalogue().items() if cfg["kind"] == "fla"} - {
        "deltanet_neg", "gated_deltanet_neg", "gated_deltaproduct", "kda", "rwkv7"}
    assert gpu_mixers == vector | expanded and gpu.mixer.short_conv_on == "qkv"
    assert sweep_size(gpu) == 3 * len(gpu_mixers) * 2 * 3 * 3
    base = compose(["grid=paper_table1_gpu_baselines"], return_hydra_config=True)
    assert set(str(base.hydra.sweeper.params.mixer).split(",")) == fla
    assert sweep_size(base) == 3 * len(fla) * 3 * 3
    # the second edition's recall grids: every mixer named is a catalogue entry
    for grid in ("table1_v2_recall", "table1_v2_recall_noconv", "table1_v2_baselines"):
        cfg = compose([f"grid={grid}"], return_hydra_config=True)
        assert set(str(cfg.hydra.sweeper.params.mixer).split(",")) <= set(catalogue())
        assert cfg.task.params.seq_len == 128
    # the state-tracking page's grid: catalogue mixers, and every task of it validates
    tracking = compose(["grid=state_tracking"], return_hydra_config=True)
    assert set(str(tracking.hydra.sweeper.params.mixer).split(",")) <= set(catalogue())
    # MAD's protocol, the forgetting grids and the frontier's width sweep: catalogue mixers
    for grid in ("mad", "recall_forgetting", "recall_forgetting_fla", "frontier_capacity",
                 "frontier_capacity_fla"):
        cfg = compose([f"grid={grid}"], return_hydra_config=True)
        assert set(str(cfg.hydra.sweeper.params.mixer).split(",")) <= set(catalogue())
    # the width sweep: the state binds at 32 pairs (widths 16 to 64), the fla grid drops glmix's
    # convolution
    capacity = compose(["grid=frontier_capacity"], return_hydra_config=True)
    assert str(capacity.hydra.sweeper.params["model.d_model"]) == "16,32,64"
    assert capacity.task.params.num_kv_pairs == 32 and capacity.model.num_heads == 1
    assert sweep_size(capacity) == 3 * 3 * 5
    capacity_fla = compose(["grid=frontier_capacity_fla"], return_hydra_config=True)
    assert capacity_fla.mixer.short_conv == 0 and sweep_size(capacity_fla) == 3 * 3 * 2
    # each task of each grid validates
    for grid in ("paper_table1", "paper_table1_gpu", "table1_v2_recall", "state_tracking", "mad",
                 "recall_forgetting", "frontier_capacity"):
        cfg = compose([f"grid={grid}"], return_hydra_config=True)
        for task in str(cfg.hydra.sweeper.params.task).split(","):
            validate(compose([f"grid={grid}", f"task={task}"]))
    # the command line narrows a grid
    narrow = compose(["grid=smoke", "mixer=pow2"], return_hydra_config=True)
    narrow.hydra.overrides.task = ["mixer=pow2"]
    assert sweep_size(narrow) == 2


def test_copy_length_grids(compose):
    """The frontier's copy grids: catalogue mixers, one protocol, lengths with no one-hop edge."""
    lengths = {}
    for grid, size in (("frontier_copy", 3 * 4 * 9), ("frontier_copy_se", 3 * 4 * 6),
                       ("frontier_copy_fla", 3 * 4 * 3), ("frontier_copy_se_dense", 3 * 3 * 1)):
        cfg = compose([f"grid={grid}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        assert set(str(params.mixer).split(",")) <= set(catalogue()), grid
        assert sweep_size(cfg) == size, grid
        assert (cfg.trainer.max_steps, cfg.lr, cfg.model.num_heads) == (600, 3e-3, 1), grid
        lengths[grid] = [int(n) for n in str(params["task.params.copy_len"]).split(",")]
        for n in lengths[grid]:
            validate(compose([f"grid={grid}", "task=table1/copy", f"task.params.copy_len={n}"]))
    # no pattern reaches the copied token in one hop: no length is 2^k or k^2 + 1
    one_hop = {2 ** k for k in range(10)} | {k * k + 1 for k in range(32)}
    assert lengths["frontier_copy"] == [24, 40, 80, 160]
    assert not set(lengths["frontier_copy"]) & one_hop
    # every family runs the vector grid's lengths (se_dense all but the longest)
    assert lengths["frontier_copy_se"] == lengths["frontier_copy_fla"] == lengths["frontier_copy"]
    assert lengths["frontier_copy_se_dense"] == lengths["frontier_copy"][:-1]


def test_budget_grid(compose):
    """4x budgets: the second edition's recall protocol at 4x its 800 steps, two learning rates."""
    base = compose(["grid=table1_v2_recall"], return_hydra_config=True)
    cfg = compose(["grid=frontier_budget"], return_hydra_config=True)
    assert cfg.trainer.max_steps == 4 * base.trainer.max_steps
    assert set(str(cfg.hydra.sweeper.params.mixer).split(",")) <= set(catalogue())
    assert sweep_size(cfg) == 4 * 2 * 2 * 3
    assert cfg.task == base.task and cfg.model == base.model and cfg.lr == base.lr
    assert (cfg.mixer.short_conv, cfg.mixer.short_conv_on) == (4, "qkv")
    # one pair count and one learning rate narrow it to one command of 12 runs
    narrow = compose(["grid=frontier_budget", "task.params.num_kv_pairs=8", "lr=3e-3"],
                     return_hydra_config=True)
    narrow.hydra.overrides.task = ["task.params.num_kv_pairs=8", "lr=3e-3"]
    assert sweep_size(narrow) == 12


def test_multihop_grid(compose):
    """The frontier's multi-hop grid: the probe's recipe, 1 to 3 hops, three mixers, 3 seeds."""
    cfg = compose(["grid=frontier_multihop"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    mixers = str(params.mixer).split(",")
    assert set(mixers) == {"chacal_dense", "attention", "dense_recurrence"} <= set(catalogue())
    assert sweep_size(cfg) == 3 * 2 * 2 * 3
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size, cfg.lr) == (8000, 64, 3e-3)
    assert (cfg.model.d_model, cfg.model.num_heads, cfg.model.mlp_ratio) == (64, 1, 0)
    assert (cfg.mixer.short_conv, cfg.mixer.short_conv_on) == (4, "qkv")
    for hops in str(params["task.params.hops"]).split(","):
        run = compose(["grid=frontier_multihop", "task=table1/multihop",
                       f"task.params.hops={hops}", f"mixer={mixers[0]}"])
        validate(run)
        assert run.task.num_train == 100_000 and run.task.setting == f"multihop-c4-h{hops}"
    # seeds vary slowest: a grid cut short holds whole seeds
    assert list(params)[0] == "seed"


def test_chomsky_grid(compose):
    """The rest of the Chomsky ladder: state_tracking's recipe and rows, the tasks it leaves out."""
    from tasks.registry import TASKS

    tracking = compose(["grid=state_tracking"], return_hydra_config=True)
    cfg = compose(["grid=chomsky"], return_hydra_config=True)
    params, tracking_params = cfg.hydra.sweeper.params, tracking.hydra.sweeper.params
    assert (cfg.trainer, cfg.model, cfg.lr) == (tracking.trainer, tracking.model, tracking.lr)
    assert str(params.mixer) == str(tracking_params.mixer)
    tasks = str(params.task).split(",")
    assert not set(tasks) & set(str(tracking_params.task).split(","))  # no run twice
    assert sweep_size(cfg) == len(tasks) * 13 * 3 and list(params)[0] == "seed"
    levels = set()
    for task in tasks:
        run = compose(["grid=chomsky", f"task={task}"])
        validate(run)
        levels.add(TASKS[run.task.name].level)
    assert levels == {"regular", "dcf", "cs"}


def test_config_hash_ignores_run_only_fields(compose):
    def h(*overrides):
        return config_hash(OmegaConf.to_container(compose(list(overrides)), resolve=True),
                           {"task": 1, "generator": 1, "op": 1})

    base = h()
    assert h("results_dir=/elsewhere", "trainer.threads=3", "trainer.progress_bar=true",
             "force=true", "trainer.logger=none", "trainer.log_every=5") == base
    assert h("lr=0.002") != base
    assert h("seed=1") != base
    assert h("task.params.num_kv_pairs=2") != base
    assert h("trainer.max_steps=10") != base
