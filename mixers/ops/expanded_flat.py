"""The state-expanded op as `glr` over the flattened outer products k_j v_j^T, then the readout
o_i = S_i^T q_i: n * dk * dv floats held for the states and again for their gradient
(mixers/ops/expanded.py).

    expanded_flat(..., glr_backend="chunked")   the CPU form (mixers/ops/chunked.py)
    expanded_flat(..., glr_backend="triton")    the GPU form: the glr Triton kernels
                                                (mixers/ops/triton_glr.py) over dk * dv columns

Either way the recurrence (the only sequential part) runs in the glr op's chunked algorithm with
its explicit backward; the outer products and the readout are batched torch products whose
gradients autograd gives.
"""

from __future__ import annotations

from .chunked import glr_chunked


def _glr_triton(x, alpha, a_idx, beta, b_idx, chunk_size):
    from .triton_glr import glr_triton  # imported lazily: Triton is optional on the CPU

    return glr_triton(x, alpha, a_idx, beta, b_idx, chunk_size)


_GLR = {"chunked": glr_chunked, "triton": _glr_triton}


def expanded_flat(q, k, v, alpha, a_idx, beta, b_idx, chunk_size: int = 64,
                  glr_backend: str = "chunked"):
    b, h, n, dk = q.shape
    dv = v.shape[-1]
    x = (k.unsqueeze(-1) * v.unsqueeze(-2)).reshape(b, h, n, dk * dv)
    S = _GLR[glr_backend](x, alpha, a_idx, beta, b_idx, chunk_size).view(b, h, n, dk, dv)
    return (q.unsqueeze(-2) @ S).squeeze(-2)
