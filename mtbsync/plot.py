"""The alignment plot (alignment.png): pairs, fitted warp, confidence, markers and residuals.

Drawn with matplotlib's object API on an Agg canvas, never pyplot, so that it neither picks a GUI
backend nor keeps figures alive in a global registry (it runs inside `serve` workers too).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import is_color_like
from matplotlib.figure import Figure

from mtbsync.align.pairs import AlignmentPair
from mtbsync.align.warp import Warp
from mtbsync.io.files import atomic_write_bytes
from mtbsync.markers.model import TransferredMarker

_CMAP = "viridis"
_SOURCE_SHAPES = {"path": "o", "refined": "o", "marker": "D", "anchor": "*"}
# Most markers drawn one by one with a line and a label; more are drawn as one cloud of dots.
_MAX_LABELLED_MARKERS = 60


def plot_alignment(
    path_png: str | Path,
    *,
    pairs: Sequence[AlignmentPair],
    warp: Warp,
    markers: Sequence[TransferredMarker] | None = None,
    truth: np.ndarray | None = None,
    title: str = "",
    low_confidence: float = 0.6,
    dpi: int = 110,
) -> Path:
    """Draw the alignment of a new run to the reference run and write it as a PNG, atomically.

    Top panel: reference time against new time: the pairs coloured by confidence (unverified ones
    hollow grey), the fitted warp over its covered part, shaded stretches where its confidence is
    under ``low_confidence``, the markers (a line and label at their reference time, a dot where they
    were placed) and the truth when given. Bottom panel: the pairs' residuals from the warp (ms) and
    the warp's speed ratio. A warp that is not aligned is said so in large letters.

    Args:
        path_png: The PNG file to write.
        pairs: The matched moments (pairs.csv).
        warp: The fitted warp (may be empty or not ok).
        markers: Transferred markers to draw.
        truth: (k, 2) known ``t_new, t_ref`` to draw as a dashed line (synthetic runs).
        title: First line of the title (e.g. the two videos' names).
        low_confidence: Confidence under which a stretch of the warp is shaded.
        dpi: Resolution of the PNG (the figure is 11 x 8 inches).

    Returns:
        The path written.
    """
    path_png = Path(path_png)
    fig = Figure(figsize=(11, 8), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))

    grid = _warp_grid(warp)
    _draw_top(top, fig, pairs, warp, grid, markers or [], truth, low_confidence)
    _draw_bottom(bottom, pairs, warp, grid)

    verdict = "aligned" if warp.ok and not warp.is_empty else "NOT ALIGNED"
    detail = _coverage_text(warp) if verdict == "aligned" else warp.reason or "no covered part"
    heading = f"{verdict}: {detail}" if detail else verdict
    fig.suptitle(
        f"{title}\n{heading}" if title else heading, color="black" if verdict == "aligned" else "firebrick"
    )
    if verdict != "aligned":
        top.text(
            0.5,
            0.5,
            f"not aligned: {warp.reason or 'no covered part'}",
            transform=top.transAxes,
            ha="center",
            va="center",
            fontsize=18,
            color="firebrick",
            wrap=True,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "firebrick"},
        )

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    atomic_write_bytes(path_png, lambda fh: fh.write(data))
    return path_png


def _warp_grid(warp: Warp) -> np.ndarray:
    """New-run times to draw the warp at: dense over the covered part, plus the knots themselves."""
    if warp.is_empty:
        return np.zeros(0)
    lo, hi = warp.new_range
    return np.union1d(np.linspace(lo, hi, 800), warp.t_new)


def _draw_top(
    ax: Axes,
    fig: Figure,
    pairs: Sequence[AlignmentPair],
    warp: Warp,
    grid: np.ndarray,
    markers: Sequence[TransferredMarker],
    truth: np.ndarray | None,
    low_confidence: float,
) -> None:
    if grid.size:
        low = warp.confidence_at(grid) < low_confidence
        for k, (a, b) in enumerate(_runs(grid, low)):
            ax.axvspan(
                a,
                b,
                color="orange",
                alpha=0.15,
                lw=0,
                label=f"confidence < {low_confidence:g}" if k == 0 else None,
            )
        ax.plot(
            grid,
            warp.to_ref(grid),
            color="tab:blue",
            lw=1.6,
            label="warp",
            ls="-" if warp.ok else "--",
            zorder=3,
        )
    if truth is not None and np.size(truth):
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        ax.plot(truth[:, 0], truth[:, 1], color="black", lw=0.8, ls="--", label="truth", zorder=2)

    scatter = None
    for source, shape in _SOURCE_SHAPES.items():
        chosen = [p for p in pairs if p.source == source]
        verified = [p for p in chosen if p.verified]
        unverified = [p for p in chosen if not p.verified]
        if verified:
            scatter = ax.scatter(
                [p.t_new for p in verified],
                [p.t_ref for p in verified],
                c=[p.confidence for p in verified],
                cmap=_CMAP,
                vmin=0.0,
                vmax=1.0,
                s=40 if shape == "*" else 14,
                marker=shape,
                zorder=4,
                label=f"pairs ({source})",
            )
        if unverified:
            ax.scatter(
                [p.t_new for p in unverified],
                [p.t_ref for p in unverified],
                facecolors="none",
                edgecolors="0.6",
                s=14,
                marker=shape,
                zorder=4,
                label=f"unverified ({source})",
            )
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="pair confidence", fraction=0.04, pad=0.01)

    if len(markers) > _MAX_LABELLED_MARKERS:
        _draw_many_markers(ax, markers)
        markers = []
    label_x = ax.get_yaxis_transform()  # x in axes fraction, y in data: labels hug the left edge
    for m in markers:
        colour = m.colour if is_color_like(m.colour) else "crimson"
        ax.axhline(m.t_ref, color=colour, lw=0.6, ls=":", alpha=0.7, zorder=1)
        text = m.name if len(m.name) <= 24 else m.name[:23] + "…"
        if m.t_new is None:
            text += " (not placed)"
        ax.text(0.005, m.t_ref, text, transform=label_x, fontsize=7, va="bottom", color=colour, clip_on=True)
        if m.t_new is not None:
            ax.scatter(
                [m.t_new],
                [m.t_ref],
                s=45,
                marker="o",
                facecolors="white" if m.needs_review else colour,
                edgecolors=colour,
                linewidths=1.5,
                zorder=5,
            )

    ax.set_ylabel("reference time (s)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=7, framealpha=0.8)


def _draw_many_markers(ax: Axes, markers: Sequence[TransferredMarker]) -> None:
    """More markers than labels fit (thousands): the placed ones as one cloud of dots, unlabelled."""
    placed = [m for m in markers if m.t_new is not None]
    ax.scatter(
        [m.t_new for m in placed],
        [m.t_ref for m in placed],
        s=4,
        marker=".",
        color="crimson",
        linewidths=0,
        zorder=5,
        label=f"markers ({len(placed):,} of {len(markers):,} placed)",
    )


def _draw_bottom(ax: Axes, pairs: Sequence[AlignmentPair], warp: Warp, grid: np.ndarray) -> None:
    ax.axhline(0.0, color="0.5", lw=0.8)
    if pairs and not warp.is_empty:
        t_new = np.array([p.t_new for p in pairs])
        residual_ms = (np.array([p.t_ref for p in pairs]) - warp.to_ref(t_new)) * 1000.0
        inside = np.isfinite(residual_ms)
        verified = np.array([p.verified for p in pairs]) & inside
        ax.scatter(
            t_new[verified],
            residual_ms[verified],
            c=np.array([p.confidence for p in pairs])[verified],
            cmap=_CMAP,
            vmin=0.0,
            vmax=1.0,
            s=10,
        )
        unverified = ~np.array([p.verified for p in pairs]) & inside
        ax.scatter(t_new[unverified], residual_ms[unverified], facecolors="none", edgecolors="0.6", s=10)
    # At least +-5 ms, so that rounding noise of an exact fit does not fill the panel.
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, -5.0), max(high, 5.0))
    ax.set_xlabel("new run time (s)")
    ax.set_ylabel("residual (ms)")
    ax.grid(True, alpha=0.3)
    if grid.size:
        speed = ax.twinx()
        speed.plot(grid, warp.speed_ratio(grid), color="tab:red", lw=1.0, alpha=0.8)
        speed.axhline(1.0, color="tab:red", lw=0.6, ls=":", alpha=0.6)
        speed.set_ylabel("speed ratio (ref s / new s)", color="tab:red")
        speed.tick_params(axis="y", colors="tab:red")


def _runs(x: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """The [start, end] spans of ``x`` where ``mask`` holds."""
    spans = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        spans.append((float(x[start]), float(x[stop - 1])))
    return spans


def _coverage_text(warp: Warp) -> str:
    if warp.is_empty:
        return ""
    (a, b), (c, d) = warp.new_range, warp.ref_range
    return f"covered new {a:.1f}–{b:.1f} s, reference {c:.1f}–{d:.1f} s"
