"""Signed recurrent coefficients for the glr and expanded kinds (docs/design.md 1.10).

`mixer.params.coefficients: signed` keeps the joint softmax of docs/design.md 1.2 and multiplies
the recurrent part of each row by a per-token, per-head sign gate in (-1, 1):

    [alpha_i | w_i] = softmax([s_i | r_i])         (as for `softmax`)
    sigma_i[h]      = tanh(x_i . u_h + c_h)          (its own projection of the layer input)
    beta[i, j]      = sigma_i[h] * w[i, j]

so `sum_j alpha[i,j] + sum_j |beta[i,j]| <= 1` on every row: the recurrence is a contraction in
the inf-norm and `|y_i| <= max_j |v_j|` at any length, the bound of the softmax rule. What the
sign buys is a transition with a negative eigenvalue: with `recurrent=first`,
`y_i = alpha_i v_i + sigma_i w_i y_{i-1}` flips the sign of the carried state where sigma_i < 0,
which is what parity needs (Grazzi et al. 2024) and what convex rows rule out.
"""

from __future__ import annotations

import torch
from torch import nn

#: the coefficient rules of the glr kind (the expanded kind adds `decay`, mixers/expanded.py)
GLR_RULES = ("softmax", "signed")


class SignGate(nn.Module):
    """sigma = tanh(x W^T + c): one sign per token and head, in (-1, 1)."""

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.proj = nn.Linear(d_model, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, n, d_model] -> [B, H, n]; x_t [B, d_model] -> [B, H]."""
        s = torch.tanh(self.proj(x))
        return s.transpose(1, 2) if s.dim() == 3 else s


def signed_rows(beta: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """beta [B, H, (n,) Kb] (a softmax share) times the sign gate sigma [B, H, (n)] of its row."""
    return beta * sigma.unsqueeze(-1)


def coefficient_rule(params: dict, kind: str, rules: tuple[str, ...], has_recurrence: bool
                     ) -> str:
    """`mixer.params.coefficients` checked for a kind whose only knob it is: the rule's name,
    `softmax` when unset. Every refusal is one ValueError naming the field."""
    params = dict(params)
    rule = params.pop("coefficients", "softmax")
    if params:
        raise ValueError(f"mixer.params: kind {kind!r} takes only 'coefficients' "
                         f"({' | '.join(rules)}), got {sorted(params)}")
    if rule not in rules:
        raise ValueError(f"mixer.params.coefficients must be one of {rules}, got {rule!r}")
    if rule == "signed" and not has_recurrence:
        raise ValueError("mixer.params.coefficients=signed signs the recurrent coefficients; "
                         "recurrent=none has none (use a recurrent pattern, or softmax)")
    return rule
