"""kind: fla, the field's baselines through flash-linear-attention (mixers/fla_adapter.py).

fla's Triton kernels do not run on this CPU, so the CPU path (fla's layer with its PyTorch
references swapped in) is checked against a second form of the same math that does run here:
two of fla's reference forms against each other (chunked vs recurrent), or against the
materialised attention form where fla ships one reference only; gradients included. Then each
baseline's decoding (`step`, fla's recurrent mode with its own cache) against its forward, and
one training step (in tests/runners/test_runners_model.py, which runs every conf/mixer file).
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mixers import build_mixer
from mixers import fla_adapter as fa
from runners.paths import catalogue

BASELINES = ["gla", "deltanet", "gated_deltanet", "mamba2", "retnet", "hgrn2",
             "log_linear_attention", "deltanet_neg", "gated_deltanet_neg", "gated_deltaproduct",
             "kda", "rwkv7"]
NO_CPU_STEP = {"log_linear_attention"}  # fla ships no recurrent reference for it
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


def _agree(f1, f2, inputs):
    """f1(*inputs) == f2(*inputs), and so are their gradients for a random cotangent."""
    y1, y2 = f1(*inputs), f2(*inputs)
    torch.testing.assert_close(y1, y2, **TOL)
    w = torch.randn_like(y1)
    g1 = torch.autograd.grad((y1 * w).sum(), inputs)
    g2 = torch.autograd.grad((y2 * w).sum(), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **TOL)


def _built(name, d_model, num_heads):
    """The catalogue baseline with every parameter moved off fla's initialisation: some inits
    are zero (RWKV-7's output projection), which would make every check below trivial."""
    mixer = build_mixer(catalogue()[name], d_model=d_model, num_heads=num_heads)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return mixer


# -- the op swapped in on CPU against a second form ---------------------------------------------

def test_gla_reference_matches_the_materialised_form():
    """fla ships GLA's recurrence only; the oracle is o_i = sum_j (q_i * e^(G_i - G_j)) . k_j v_j
    with G the cumulative log-gates (GLA paper, eq. 3). GLA and HGRN-2 run this op."""
    b, n, h, dk, dv = 2, 37, 2, 4, 3
    q, k, v, gl = _inputs((b, n, h, dk), (b, n, h, dk), (b, n, h, dv), (b, n, h, dk))

    def ours(q, k, v, gl):
        return fa._gla(q, k, v, gk=torch.nn.functional.logsigmoid(gl))[0]

    def oracle(q, k, v, gl):
        cum = torch.nn.functional.logsigmoid(gl).cumsum(1)  # [b, n, h, dk]
        decay = (cum[:, :, None] - cum[:, None, :]).masked_fill(  # [b, i, j, h, dk]
            ~torch.ones(n, n, dtype=torch.bool).tril()[None, :, :, None, None], float("-inf"))
        att = torch.einsum("bihc,bjhc,bijhc->bhij", q * dk ** -0.5, k, decay.exp())
        return torch.einsum("bhij,bjhd->bihd", att, v)

    _agree(ours, oracle, [q, k, v, gl])


def test_delta_rule_chunkwise_matches_recurrence():
    """DeltaNet: the chunkwise (WY) reference used in training, padded to its chunk, against the
    recurrence used when a state is carried (decoding)."""
    b, n, h, d = 2, 45, 2, 8
    q, k, v, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))

    def chunked(q, k, v, beta):
        return fa._delta_rule(q, k, v, beta.sigmoid(), use_qk_l2norm_in_kernel=True)[0]

    def recurrent(q, k, v, beta):
        return fa._delta_rule(q, k, v, beta.sigmoid(), use_qk_l2norm_in_kernel=True,
                              output_final_state=True)[0]

    _agree(chunked, recurrent, [q, k, v, beta])


def test_gated_delta_rule_chunked_matches_recurrent():
    b, n, h, d = 2, 45, 2, 8
    q, k, v, a, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h), (b, n, h))
    a_log, dt_bias = torch.zeros(h), torch.zeros(h)
    kw = dict(use_qk_l2norm_in_kernel=True, use_beta_sigmoid_in_kernel=True,
              use_gate_in_kernel=True, A_log=a_log, dt_bias=dt_bias)

    def chunked(q, k, v, a, beta):
        return fa._gated_delta_rule(q, k, v, a, beta, **kw)[0]

    def recurrent(q, k, v, a, beta):
        return fa._gated_delta_rule(q, k, v, a, beta, output_final_state=True, **kw)[0]

    _agree(chunked, recurrent, [q, k, v, a, beta])


def test_retention_chunked_matches_fla_parallel_retention():
    """RetNet trains through simple GLA's chunked reference with fla's retention decays; fla's
    own `naive_retention` (the parallel form, its own decay formula) is the second form."""
    from fla.ops.retention.naive import naive_retention
    b, n, h, d = 2, 70, 3, 4
    q, k, v = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d))
    g_gamma = (1 - 2.0 ** (-5.0 - torch.arange(h, dtype=torch.float))).log()

    def chunked(q, k, v):
        return fa._chunk_simple_gla(q, k, v, g_gamma=g_gamma)[0]

    def recurrent(q, k, v):
        return fa._recurrent_simple_gla(q, k, v, g_gamma=g_gamma)[0]

    def parallel(q, k, v):
        return naive_retention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)

    _agree(chunked, parallel, [q, k, v])
    _agree(recurrent, parallel, [q, k, v])


def test_mamba2_torch_path_is_independent_of_its_chunking():
    """Mamba-2's CPU path is the layer's own chunked SSD; two chunk sizes of the same weights
    must agree, gradients included (the recurrent form is checked by the step test below)."""
    torch.manual_seed(0)
    cfg = dict(catalogue()["mamba2"])
    m16 = build_mixer({**cfg, "params": {**cfg["params"], "chunk_size": 16}}, 16, 2)
    m64 = build_mixer({**cfg, "params": {**cfg["params"], "chunk_size": 64}}, 16, 2)
    m64.load_state_dict(m16.state_dict())
    (x,) = _inputs((2, 50, 16))
    _agree(m16, m64, [x])


def test_log_linear_attention_with_equal_level_weights_is_mamba2_ssd():
    """Log-linear attention weights the Fenwick levels of the Mamba-2 mask; with every level
    weight 1 the levels tile the causal triangle and it is the SSD (simple GLA) again. fla's two
    references, materialised log-linear against chunked simple GLA, gradients included."""
    from fla.ops.simple_gla.naive import naive_chunk_simple_gla
    b, n, h, d = 1, 40, 2, 4
    q, k, v, a = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))
    ones = torch.ones(b, n, h, 8)

    def log_linear(q, k, v, a):
        return fa._log_linear_attn(q, k, v, torch.nn.functional.logsigmoid(a), ones)[0]

    def ssd(q, k, v, a):
        g = torch.nn.functional.logsigmoid(a)
        return naive_chunk_simple_gla(q, k, v, g, chunk_size=16, scale=1.0)[0]

    _agree(log_linear, ssd, [q, k, v, a])


def test_log_linear_attention_refuses_long_cpu_inputs_and_decoding():
    mixer = build_mixer(catalogue()["log_linear_attention"], d_model=16, num_heads=2)
    with pytest.raises(ValueError, match="refused above n = 1024"):
        mixer(torch.randn(1, 1025, 16))
    with pytest.raises(NotImplementedError, match="no decoding on CPU"):
        mixer.step(torch.randn(1, 16))


# -- each baseline as a layer -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(set(BASELINES) - NO_CPU_STEP))
def test_step_decodes_like_the_forward(name):
    """Forward at n = 66 (> 64: fla's layers run their chunk mode there) against n calls of
    `step`, which run fla's recurrent mode with its own cache (state and conv windows)."""
    torch.manual_seed(0)
    mixer = _built(name, d_model=16, num_heads=2).eval()
    x = torch.randn(1, 66, 16)
    with torch.no_grad():
        y = mixer(x)
        cache, steps = None, []
        for t in range(x.shape[1]):
            y_t, cache = mixer.step(x[:, t], cache)
            steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, **TOL)


@pytest.mark.parametrize("name", BASELINES)
def test_forward_is_causal_and_trains(name):
    torch.manual_seed(0)
    mixer = _built(name, d_model=16, num_heads=2)
    x = torch.randn(2, 40, 16, requires_grad=True)
    y = mixer(x)
    x2 = x.detach().clone()
    x2[:, 25:] += 1.0
    torch.testing.assert_close(mixer(x2)[:, :25], y[:, :25])
    y.square().mean().backward()
    grads = {n: p.grad for n, p in mixer.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), name
    assert x.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for fla's Triton kernels")
@pytest.mark.parametrize("name", BASELINES)
def test_cpu_path_matches_fla_kernels_on_a_gpu(name):
    """Where a GPU is present: the same weights through fla's kernels (CUDA) and through the
    CPU references, outputs and gradients. Tolerances allow for the kernels' TF32 matmuls."""
    torch.manual_seed(0)
    cpu = _built(name, d_model=64, num_heads=4)
    gpu = copy.deepcopy(cpu).cuda()
    x = torch.randn(2, 128, 64, requires_grad=True)
    xg = x.detach().cuda().requires_grad_()
    y, yg = cpu(x), gpu(xg)
    torch.testing.assert_close(yg.cpu(), y, atol=5e-3, rtol=5e-3)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (yg * w.cuda()).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad, atol=1e-2, rtol=1e-2)
    for (n, p), pg in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(pg.grad.cpu(), p.grad, atol=1e-2, rtol=1e-2, msg=n)


def test_theory_comes_from_the_config():
    # GLA at d_model 64, 2 heads, expand_k 0.5, expand_v 1: key dim 16, value dim 32 per head
    gla = build_mixer(catalogue()["gla"], d_model=64, num_heads=2)
    assert gla.state_size(100) == 2 * 16 * 32
    assert gla.flops_per_token(100) == 5 * 2 * 16 * 32
    # Mamba-2: heads x d_state x head_dim, head_dim = expand * d_model / heads
    mamba = build_mixer(catalogue()["mamba2"], d_model=64, num_heads=2)
    assert mamba.state_size(100) == 2 * 64 * 64
    for name in set(BASELINES) - {"log_linear_attention"}:
        m = build_mixer(catalogue()[name], d_model=16, num_heads=2)
        assert m.state_expanded and m.patterns is None and m.cache_size(1000) == 1
        assert m.state_size(10) == m.state_size(1000) > 0  # a constant-size state
    # log-linear attention: ceil(log2 n) + 1 Mamba-2 states
    loglin = build_mixer(catalogue()["log_linear_attention"], d_model=64, num_heads=2)
    assert [loglin.cache_size(n) for n in (1, 2, 3, 1024, 1025)] == [1, 2, 3, 11, 12]
    assert loglin.state_size(1024) == 11 * mamba.state_size(1024)


@pytest.mark.parametrize("params, match", [
    ({"layer": "nope"}, r"mixer.params.layer must be one of"),
    ({}, r"mixer.params.layer must be one of"),
    ({"layer": "gla", "expand_kk": 0.5}, r"mixer.params.expand_kk: not a knob"),
    ({"layer": "gla", "hidden_size": 8}, r"mixer.params.hidden_size: not a knob"),
    ({"layer": "gla", "expand_k": 0.3}, r"mixer.params: .*rejects"),
])
def test_params_are_validated(params, match):
    with pytest.raises(ValueError, match=match):
        build_mixer({"name": "x", "kind": "fla", "params": params}, 16, 2)


def test_fla_is_imported_only_when_a_fla_mixer_is_built():
    code = ("import sys, mixers, runners.model; "
            "from mixers import build_mixer; from runners.paths import catalogue; "
            "build_mixer(catalogue()['pow2'], 8, 2); "
            "assert 'fla' not in sys.modules, 'fla imported too early'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the baselines that can track state (negative eigenvalues) ----------------------------------
# deltanet_neg, gated_deltanet_neg, gated_deltaproduct, kda, rwkv7: their CPU stand-ins against a
# second form fla ships, outputs and gradients (decoding, causality, training, the GPU comparison
# and theory run above through BASELINES)

@pytest.mark.parametrize("householder,gated", [(2, True), (3, False), (1, True)])
def test_gated_delta_product_matches_fla_recurrent_reference(householder, gated):
    from fla.ops.gated_delta_product.naive import naive_recurrent_gated_delta_product
    b, n, h, d = 2, 23, 2, 8
    q, k, v, g, beta = _inputs((b, n, h, d), (b, n * householder, h, d),
                               (b, n * householder, h, d), (b, n, h), (b, n * householder, h))

    def split(rest):  # (decay or None, beta)
        return (-F.softplus(rest[0]), rest[1]) if gated else (None, rest[0])

    def ours(q, k, v, *rest):
        g, beta = split(rest)
        return fa._gated_delta_product(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, g,
                                       beta.sigmoid() * 2, num_householder=householder)[0]

    def fla_ref(q, k, v, *rest):
        g, beta = split(rest)
        return naive_recurrent_gated_delta_product(
            F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, g, beta.sigmoid() * 2,
            scale=d ** -0.5, num_householder=householder)[0]

    _agree(ours, fla_ref, [q, k, v, g, beta] if gated else [q, k, v, beta])


def test_kda_matches_fla_chunked_reference_where_it_is_finite():
    # mild decays, where fla's chunked reference does not overflow; n a multiple of its chunk
    from fla.ops.kda.naive import naive_chunk_kda
    b, n, h, d = 2, 64, 2, 8
    q, k, v, g, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))

    def ours(q, k, v, g, beta):
        return fa._kda(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v,
                       -0.1 * F.softplus(g), beta.sigmoid())[0]

    def fla_ref(q, k, v, g, beta):
        return naive_chunk_kda(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v,
                               -0.1 * F.softplus(g), beta.sigmoid())[0]

    _agree(ours, fla_ref, [q, k, v, g, beta])


@pytest.mark.parametrize("op", ["kda", "gated_delta_rule"])
def test_negative_eigenvalue_prologue_doubles_the_sigmoid(op):
    # allow_neg_eigval: beta = 2 sigmoid(b), in (0, 2), so I - beta k k^T can flip a direction
    b, n, h, d = 1, 9, 2, 4
    q, k, v, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))
    g = -torch.rand(b, n, h, d) if op == "kda" else -torch.rand(b, n, h)
    fn = fa._kda if op == "kda" else fa._gated_delta_rule
    fused = fn(q, k, v, g, beta, use_beta_sigmoid_in_kernel=True, allow_neg_eigval=True)[0]
    explicit = fn(q, k, v, g, 2 * beta.sigmoid())[0]
    positive = fn(q, k, v, g, beta, use_beta_sigmoid_in_kernel=True)[0]
    torch.testing.assert_close(fused, explicit)
    assert not torch.allclose(fused, positive)


@pytest.mark.parametrize("n", [1, 45])
def test_dplr_chunkwise_matches_its_recurrence(n):
    b, h, d = 2, 2, 8
    r, w, k, v, a = _inputs(*[(b, n, h, d)] * 5)

    def chunked(r, w, k, v, a):
        kk = F.normalize(k, dim=-1)
        return fa._rwkv7_chunk(r, -0.6 * w.sigmoid(), k, v, -kk, kk * a.sigmoid())[0]

    def recurrent(r, w, k, v, a):  # RWKV-7's decoding form, with a state out
        kk = F.normalize(k, dim=-1)
        return fa._rwkv7_recurrent(r, -0.6 * w.sigmoid(), k, v, kk, a.sigmoid(),
                                   output_final_state=True)[0]

    _agree(chunked, recurrent, [r, w, k, v, a])


def test_token_shift_carries_the_last_token():
    x = torch.randn(2, 7, 5)
    whole = fa._token_shift(x)
    first, cache = fa._token_shift(x[:, :4], output_cache=True)
    second = fa._token_shift(x[:, 4:], cache=cache)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    torch.testing.assert_close(whole[:, 1:], x[:, :-1] - x[:, 1:])


def test_configs_and_theory():
    cat = catalogue()
    assert cat["deltanet_neg"]["params"]["allow_neg_eigval"] is True
    assert cat["gated_deltanet_neg"]["params"]["allow_neg_eigval"] is True
    for name in ("deltanet_neg", "gated_deltanet_neg", "gated_deltaproduct", "kda", "rwkv7"):
        m = build_mixer(cat[name], d_model=32, num_heads=2)
        assert m.state_size(10) == m.state_size(5000) > 0
        # KDA as Kimi Linear ships it: beta in (0, 1) (allow_neg_eigval=true is one override away)
        assert getattr(m.layer, "allow_neg_eigval", True) is (name != "kda"), name
    product = build_mixer(cat["gated_deltaproduct"], d_model=32, num_heads=2)
    assert product.state_size(10) == 2 * 16 * 32  # head_dim 16, value dim 2 x 16
    assert product.flops_per_token(10) == (3 + 4 * 2) * product.state_size(10)
    rwkv = build_mixer(cat["rwkv7"], d_model=32, num_heads=2)
    assert rwkv.state_size(10) == 2 * 16 * 16
