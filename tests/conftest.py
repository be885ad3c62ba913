"""Shared pytest setup."""

import os

import torch

# Without a GPU, the Triton kernels (mixers/ops/triton_kernels.py) run in Triton's CPU
# interpreter. Triton reads TRITON_INTERPRET when a kernel is defined (at import of the kernel
# module), so it has to be set here, before any test module imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
