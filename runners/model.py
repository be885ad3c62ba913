"""A small language model around a token mixer (nanoGPT style).

    tokens -> embedding (+ positions) -> L x Block -> final norm -> head -> logits
    Block:  x = x + mixer(norm(x));  x = x + mlp(norm(x))    (pre-norm; the MLP is optional)

The mixer is whatever `mixers.build_mixer` makes of the `conf/mixer/*.yaml` config; the rest of
the model is the same for every mixer, so a table compares mixers and nothing else.

Positions (`pos_emb`, mixers/positions.py): `learned` and `sinusoidal` are added to the
embeddings here; `rope` and `alibi` go to every mixer, which applies them to its own scores;
`none` adds nothing. Only `learned` has a table, so only it limits the length a model runs at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixers import build_mixer
from mixers.positions import SINUSOIDAL_STD, sinusoidal


class MLP(nn.Module):
    def __init__(self, d_model: int, hidden: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d_model, hidden)
        self.down = nn.Linear(hidden, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, mixer_cfg, mlp_ratio: int, dropout: float,
                 pos_emb: str = "none"):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.mixer = build_mixer(mixer_cfg, d_model, num_heads, pos_emb=pos_emb)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model) if mlp_ratio > 0 else None
        self.mlp = MLP(d_model, mlp_ratio * d_model, dropout) if mlp_ratio > 0 else None

    def forward(self, x):
        x = x + self.drop(self.mixer(self.norm1(x)))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x

    def step(self, x_t, cache):
        """One token [B, d_model] through the block, the mixer decoding with its cache."""
        y, cache = self.mixer.step(self.norm1(x_t), cache)
        x_t = x_t + self.drop(y)
        if self.mlp is not None:
            x_t = x_t + self.mlp(self.norm2(x_t))
        return x_t, cache


class LanguageModel(nn.Module):
    """`forward(tokens [B, n]) -> logits [B, n, vocab_size]`."""

    def __init__(self, vocab_size: int, seq_len: int, mixer_cfg, d_model: int = 64,
                 n_layers: int = 2, num_heads: int = 2, mlp_ratio: int = 4,
                 pos_emb: str = "learned", tie_embeddings: bool = True, dropout: float = 0.0):
        super().__init__()
        self.seq_len, self.pos_emb = seq_len, pos_emb
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model) if pos_emb == "learned" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, num_heads, mixer_cfg, mlp_ratio, dropout, pos_emb)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights()
        if tie_embeddings:
            self.head.weight = self.embed.weight

    def _init_weights(self):
        # GPT-2 initialisation for the parts that are ours; the mixers keep their own.
        for module in [self.embed, self.pos, self.head, *(b.mlp for b in self.blocks)]:
            if module is None:
                continue
            for m in module.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        if self.pos is not None:
            if int(positions.max()) >= self.seq_len:
                raise ValueError(f"model.pos_emb=learned has a table of {self.seq_len} positions; "
                                 f"got position {int(positions.max())} (use sinusoidal, rope, "
                                 "alibi or none to run past it)")
            x = x + self.pos(positions)
        elif self.pos_emb == "sinusoidal":
            x = x + sinusoidal(positions, x.shape[-1], x.dtype, std=SINUSOIDAL_STD)
        return self.drop(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self._embed(tokens, torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    @torch.no_grad()
    def step(self, token: torch.Tensor, cache: dict | None = None):
        """Decode one token [B] -> (logits [B, vocab_size], cache): every layer's mixer decodes
        with its own cache, and the position index is carried in `cache["t"]`."""
        cache = cache if cache is not None else {"t": 0, "layers": [None] * len(self.blocks)}
        x = self._embed(token, torch.tensor(cache["t"], device=token.device))
        for i, block in enumerate(self.blocks):
            x, cache["layers"][i] = block.step(x, cache["layers"][i])
        cache["t"] += 1
        return self.head(self.norm(x)), cache

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix counts once

    def theory(self, n: int) -> dict:
        """The mixer's own figures at length n (per layer, as `mixers` defines them)."""
        mixer = self.blocks[0].mixer
        out = {"seq_len": int(n)}
        for key in ("state_size", "flops_per_token", "cache_size"):
            fn = getattr(mixer, key, None)
            out[key] = int(fn(n)) if callable(fn) else None
        return out


def build_model(cfg, vocab_size: int, seq_len: int) -> LanguageModel:
    """The model of a composed config (`cfg.model`, `cfg.mixer`)."""
    from omegaconf import OmegaConf

    m = cfg.model
    mixer_cfg = OmegaConf.to_container(cfg.mixer, resolve=True)
    return LanguageModel(vocab_size, seq_len, mixer_cfg, d_model=m.d_model, n_layers=m.n_layers,
                         num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, pos_emb=m.pos_emb,
                         tie_embeddings=m.tie_embeddings, dropout=m.dropout)
