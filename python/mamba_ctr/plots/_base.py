"""A new Figure and its atomic save: every figure of the package is drawn on a `matplotlib.figure.Figure` of
its own, never through pyplot, so the user's backend and open figures are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(**kwargs: Any) -> Figure:
    """A Figure (kwargs: figsize, layout, ...) not registered with pyplot; needs matplotlib (the plot extra)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save(fig: Figure, path: str | Path | None, dpi: int = 110) -> Figure:
    """Write `fig` to `path` (format by suffix) atomically, creating its folder; no-op when path is None."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            fig.savefig(temporary, dpi=dpi)
    return fig
