"""Theory figures, result loading, the leaderboard and the plots (docs/analysis.md).

    from analysis.theory import pattern_stats, layer_theory, state_size, capacity_bound
    from analysis.results import load_results, summarize
    from analysis.leaderboard import build_leaderboard
    from analysis.plots import make_plots

The submodules are imported on first use (`analysis.build_leaderboard` works too), so importing
the package stays cheap.
"""

from importlib import import_module

_EXPORTS = {
    "pattern_stats": "theory", "state_size": "theory", "capacity_bound": "theory",
    "accuracy_ceiling": "theory", "layer_theory": "theory", "resolve_mixer": "theory",
    "t_interval": "stats", "fit_exponent": "stats",
    "load_results": "results", "summarize": "results",
    "build_leaderboard": "leaderboard", "make_plots": "plots", "colors_for": "plots",
    "to_markdown": "render", "to_html": "render", "print_table": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
