"""Position schemes (docs/design.md 1.7): `model.pos_emb`.

    learned     a table of seq_len rows added to the token embeddings (runners/model.py); the
                only scheme that ties a model to a maximum length
    sinusoidal  the fixed sin/cos code of Vaswani et al. added to the embeddings, computed for
                whatever positions the input has, scaled to the embeddings' initial size
                (SINUSOIDAL_STD per coordinate, as the token and learned tables are initialised):
                at unit amplitude it would swamp tokens initialised at std 0.02
    rope        rotary positions: the query and key vectors of every q . k score a layer computes
                are rotated by an angle proportional to their position, so a score depends on
                the positions only through i - j (Su et al.)
    alibi       a per-head linear bias -m_h (i - j) added to every score before its softmax, with
                the slopes of Press et al. (a geometric sequence starting at 2^(-8/H))
    none        no position signal (NoPE): a causal mixer still knows order from its mask

`rope` and `alibi` live inside the layers that compute scores (the kinds registered with
`positions=True`, mixers.registry); `learned` and `sinusoidal` at the embedding; `none` nowhere.
The functions here take positions as tensors, so the parallel form (positions 0..n-1, index
tensors of the patterns) and decoding (the one position carried in the cache) share them.
"""

from __future__ import annotations

import math

import torch

POS_EMB = ("learned", "sinusoidal", "rope", "alibi", "none")
#: the schemes a layer applies to its own scores (the rest act on the embeddings)
SCORE_SCHEMES = ("rope", "alibi")
ROPE_BASE = 10_000.0
#: the per-coordinate std of the sinusoidal code: the models' embedding init (runners/model.py)
SINUSOIDAL_STD = 0.02


def check_scheme(scheme: str, head_dim: int) -> str:
    """The scheme, or ValueError naming model.pos_emb and the constraint."""
    if scheme not in POS_EMB:
        raise ValueError(f"model.pos_emb must be one of {' | '.join(POS_EMB)}, got {scheme!r}")
    if scheme == "rope" and head_dim % 2:
        raise ValueError(f"model.pos_emb=rope rotates pairs of coordinates: the head size "
                         f"(d_model / num_heads = {head_dim}) must be even")
    return scheme


def rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x [..., n, d] rotated at positions pos [n] (or a 0-dim tensor for one token, x [..., d]).

    Coordinates (m, m + d/2) form pair m, turned by pos * ROPE_BASE^(-2m/d): the rotation of
    q at i and k at j leaves q . k a function of i - j alone (tests/mixers/test_positions.py).
    """
    half = x.shape[-1] // 2
    freq = ROPE_BASE ** (-torch.arange(half, device=x.device, dtype=torch.float64) / half)
    angle = pos.to(torch.float64).unsqueeze(-1) * freq  # [n, half] or [half]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The per-head slopes m_h of Press et al. (float64 [H]): for H a power of two,
    2^(-8h/H), h = 1..H; otherwise those of the power of two below H, then every other slope of
    the power of two above, as in the paper's reference code."""

    def powers(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (h + 1) for h in range(n)]

    low = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = powers(low)
    if low != num_heads:
        slopes += powers(2 * low)[0::2][: num_heads - low]
    return torch.tensor(slopes, dtype=torch.float64)


def alibi_bias(slopes: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor,
               dtype: torch.dtype) -> torch.Tensor:
    """-m_h (i - j): slopes [H], query positions [n] and key positions [n, K] (an index tensor of
    a pattern, -1 entries are masked by the caller) -> [H, n, K]; or, for one decoded token, a
    0-dim query position and keys [K] -> [H, K]."""
    dist = (query_pos.unsqueeze(-1) - key_pos).to(torch.float64)
    return (-slopes.reshape(-1, *([1] * dist.dim())).to(dist.device) * dist).to(dtype)


def sinusoidal(positions: torch.Tensor, d_model: int, dtype: torch.dtype,
               std: float = math.sqrt(0.5)) -> torch.Tensor:
    """The sin/cos code of positions [n] -> [n, d_model] with per-coordinate RMS `std` (the
    default: unit amplitude); an odd d_model leaves its last coordinate at 0."""
    half = d_model // 2
    freq = ROPE_BASE ** (-torch.arange(half, device=positions.device, dtype=torch.float64) / half)
    angle = positions.to(torch.float64).unsqueeze(-1) * freq
    out = torch.zeros(*positions.shape, d_model, dtype=torch.float64, device=positions.device)
    out[..., 0 : 2 * half : 2] = angle.sin()
    out[..., 1 : 2 * half : 2] = angle.cos()
    return (out * (std * math.sqrt(2.0))).to(dtype)


class ScorePositions:
    """What a scoring layer does with `model.pos_emb`: rotate q / k vectors (rope) and add the
    distance bias to scores (alibi); both no-ops for the embedding-level schemes."""

    def __init__(self, scheme: str, num_heads: int, head_dim: int):
        self.scheme = check_scheme(scheme, head_dim)
        self.slopes = alibi_slopes(num_heads) if scheme == "alibi" else None

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return rope(x, pos) if self.scheme == "rope" else x

    def bias(self, scores: torch.Tensor, query_pos: torch.Tensor,
             key_pos: torch.Tensor) -> torch.Tensor:
        """scores [B, H, n, K] (or [B, H, K] for one token) + the alibi bias, else as given."""
        if self.slopes is None:
            return scores
        return scores + alibi_bias(self.slopes, query_pos, key_pos, scores.dtype)
