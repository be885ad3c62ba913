"""Benchmarks of glmix's ops and tasks: scripts run from the repository root
(`python -m bench.ops`), not part of the installed packages. bench.harness holds what they share."""
