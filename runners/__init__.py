"""Training entry points: the model, the Lightning module, `glmix-train` and the demo.

See docs/runners.md. `runners.train:main` is the `glmix-train` command; `runners.train.run(cfg)`
runs one composed config in-process.
"""
