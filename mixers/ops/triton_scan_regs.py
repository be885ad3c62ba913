"""Registers per thread of the glr Triton scans on sm_90. GENERATED: do not edit.

Regenerate: `python -m bench.triton_aot --usage --write` (compiles every kernel
variant with Triton's own ptxas; no GPU needed). The larger of _glr_fwd_scan and
_glr_bwd_scan, keyed by (input dtype kind: fp32, or fp16 for bf16 / fp16; BLOCK_C;
BLOCK_D; num_warps). The occupancy model of mixers/ops/triton_glr.py reads it; 255
usually means spills (docs/triton.md).
"""

SCAN_REGS_TRITON = '3.9.0'  # the Triton whose ptxas measured the table
SCAN_REGS: dict[tuple[str, int, int, int], int] = {
    ('fp16', 16, 16, 4): 122,
    ('fp16', 16, 16, 8): 101,
    ('fp16', 16, 32, 4): 182,
    ('fp16', 16, 32, 8): 127,
    ('fp16', 16, 64, 4): 182,
    ('fp16', 16, 64, 8): 136,
    ('fp16', 16, 128, 4): 223,
    ('fp16', 16, 128, 8): 136,
    ('fp16', 32, 16, 4): 168,
    ('fp16', 32, 16, 8): 128,
    ('fp16', 32, 32, 4): 168,
    ('fp16', 32, 32, 8): 177,
    ('fp16', 32, 64, 4): 229,
    ('fp16', 32, 64, 8): 169,
    ('fp16', 32, 128, 4): 255,
    ('fp16', 32, 128, 8): 180,
    ('fp16', 64, 16, 4): 190,
    ('fp16', 64, 16, 8): 168,
    ('fp16', 64, 32, 4): 237,
    ('fp16', 64, 32, 8): 163,
    ('fp16', 64, 64, 4): 244,
    ('fp16', 64, 64, 8): 227,
    ('fp16', 64, 128, 4): 255,
    ('fp16', 64, 128, 8): 255,
    ('fp32', 16, 16, 4): 128,
    ('fp32', 16, 16, 8): 99,
    ('fp32', 16, 32, 4): 219,
    ('fp32', 16, 32, 8): 127,
    ('fp32', 16, 64, 4): 235,
    ('fp32', 16, 64, 8): 128,
    ('fp32', 16, 128, 4): 205,
    ('fp32', 16, 128, 8): 171,
    ('fp32', 32, 16, 4): 243,
    ('fp32', 32, 16, 8): 161,
    ('fp32', 32, 32, 4): 247,
    ('fp32', 32, 32, 8): 183,
    ('fp32', 32, 64, 4): 247,
    ('fp32', 32, 64, 8): 199,
    ('fp32', 32, 128, 4): 255,
    ('fp32', 32, 128, 8): 222,
    ('fp32', 64, 16, 4): 233,
    ('fp32', 64, 16, 8): 166,
    ('fp32', 64, 32, 4): 235,
    ('fp32', 64, 32, 8): 167,
    ('fp32', 64, 64, 4): 255,
    ('fp32', 64, 64, 8): 224,
    ('fp32', 64, 128, 4): 255,
    ('fp32', 64, 128, 8): 255,
}
