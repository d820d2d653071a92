"""The report's plots, as PNG bytes: the report writes them beside report.md and inlines them in
report.html, so one rendering serves both.

Every plot names its metric and unit on the axis, and grouped bars carry their values where they
fit: a reader should not need a ruler. A missing value (a tool one run never saw, a token class
the target never examined) is left out and marked "n/a", never drawn as a zero.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

DPI = 110
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
FLOOR = "#b8b8b8"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: the report is written on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # keeps an outside legend
    plt.close(figure)
    return buffer.getvalue()


def _group_ticks(axis: Any, groups: Sequence[str]) -> bool:
    """One x tick per group, tilted when there are many; returns whether they are tilted."""
    tilt = len(groups) > 8
    axis.set_xticks(
        range(len(groups)),
        list(groups),
        fontsize=8,
        rotation=25 if tilt else 0,
        ha="right" if tilt else "center",
    )
    return tilt


def _finish_bars(figure: Any, axis: Any, title: str, ylabel: str, series: int, tilt: bool) -> bytes:
    """The labels, the grid and the legend below the axis (clear of tilted ticks), as PNG bytes."""
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(
        fontsize=7,
        ncol=min(3, series),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2 if tilt else -0.08),
        frameon=False,
    )
    return _png(figure)


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    ylabel: str,
    percent: bool,
    muted: frozenset[str] = frozenset(),
) -> bytes:
    """One group of bars per x label, one bar per series; `muted` series (the floor) are grey and
    hatched. Values are fractions; `percent` shows them as 0-100."""
    plt = _pyplot()
    scale = 100.0 if percent else 1.0
    width = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(
        figsize=(min(11.0, max(6.5, 0.3 * len(groups) * max(2, len(series)) + 2)), 4.2)
    )
    label_bars = len(groups) * len(series) <= 48
    colours = iter(PALETTE * 4)
    for j, (name, values) in enumerate(series):
        floor = name in muted
        colour = FLOOR if floor else next(colours)
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        present = [(x, v * scale) for x, v in zip(xs, values, strict=True) if v is not None]
        bars = axis.bar(
            [x for x, _ in present],
            [v for _, v in present],
            width * 0.92,
            label=name,
            color=colour,
            hatch="//" if floor else None,
            edgecolor="#666666" if floor else colour,
        )
        if label_bars:
            for bar, (_, value) in zip(bars, present, strict=True):
                axis.annotate(
                    f"{value:.0f}" if percent else f"{value:.2f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                    rotation=90 if len(series) > 2 else 0,
                )
        for x, v in zip(xs, values, strict=True):
            if v is None:
                axis.text(x, 0.01 * scale, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
    tilt = _group_ticks(axis, groups)
    axis.set_ylim(0, 1.18 * scale)
    axis.set_yticks([t * scale for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0)])
    return _finish_bars(figure, axis, title, ylabel, len(series), tilt)


def position_lines(
    series: Sequence[tuple[str, Sequence[int], Sequence[float | None]]], *, title: str
) -> bytes:
    """Acceptance rate at draft position i, one line per speculative run."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    colours = iter(PALETTE * 4)
    longest: list[int] = []
    for name, positions, rates in series:
        points = [(p, r) for p, r in zip(positions, rates, strict=True) if r is not None]
        axis.plot([p for p, _ in points], [r for _, r in points], marker="o", label=name, color=next(colours))
        for p, r in points:
            axis.annotate(
                f"{r:.2f}", (p, r), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=7
            )
        longest = max(longest, list(positions), key=len)
    axis.set_xticks(longest)
    axis.set_xlabel("draft position i (1 = first proposed token of a round)")
    axis.set_ylabel("acceptance rate at position i")
    axis.set_ylim(-0.05, 1.12)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, frameon=False, loc="best")
    return _png(figure)


def _log_tick(value: float, _: int) -> str:
    """Plain numbers on a log axis, only at 1, 2, 3 and 5 times a power of ten (no 6×10⁰)."""
    return f"{value:g}" if f"{value:e}"[0] in "1235" else ""


def loss_curves(curves: Sequence[tuple[str, Sequence[int], Sequence[float]]], *, title: str) -> bytes:
    """Every logged training loss on one plot; log-y when the losses span more than 5x."""
    return step_curves(curves, title=title, ylabel="training loss per valid token")


def step_curves(
    curves: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    *,
    title: str,
    ylabel: str,
    share: bool = False,
    mark_at: float | None = None,
) -> bytes:
    """Figures logged by optimizer step, one line each. A `share` (0..1) is drawn in percent on a
    0-100% axis, with a dotted line at `mark_at` if given; other figures go on a log axis when
    they span more than 5x."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    colours = iter(PALETTE * 4)
    values = [v for _, _, ys in curves for v in ys]
    for name, steps, ys in curves:
        axis.plot(steps, ys, lw=1.5, label=name, color=next(colours), marker="." if len(steps) < 15 else None)
    if share:
        axis.set_ylim(0, 1)
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        if mark_at is not None:
            axis.axhline(mark_at, color="grey", lw=1, ls=":")
        axis.set_ylabel(ylabel)
    elif values and min(values) > 0 and max(values) / min(values) > 5:
        axis.set_yscale("log")
        for axis_ticks in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
            axis_ticks(FuncFormatter(_log_tick))
        axis.set_ylabel(f"{ylabel} (log scale)")
    else:
        axis.set_ylabel(ylabel)
    axis.set_xlabel("optimizer step (each model/stage counts from 0)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, frameon=False)
    return _png(figure)


def interval_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], Sequence[tuple[float, float] | None]]],
    *,
    title: str,
    ylabel: str,
    muted: frozenset[str] = frozenset(),
    separate_last: bool = False,
) -> bytes:
    """Success rates with their 95% intervals as error bars: one group per x label, one bar per
    series (name, rates, (low, high) per rate), all fractions shown as 0-100. A reader sees at
    once which gaps are wider than the intervals. A missing rate is marked "n/a", not drawn.
    `separate_last` draws a dashed line before the last group (an aggregate such as "overall")."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(
        figsize=(min(11.0, max(6.5, 0.3 * len(groups) * max(2, len(series)) + 2)), 4.4)
    )
    colours = iter(PALETTE * 4)
    for j, (name, values, intervals) in enumerate(series):
        floor = name in muted
        colour = FLOOR if floor else next(colours)
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        present = [(x, 100 * v, ci) for x, v, ci in zip(xs, values, intervals, strict=True) if v is not None]
        low = [max(0.0, v - 100 * ci[0]) if ci else 0.0 for _, v, ci in present]  # rounding: never < 0
        high = [max(0.0, 100 * ci[1] - v) if ci else 0.0 for _, v, ci in present]
        axis.bar(
            [x for x, _, _ in present],
            [v for _, v, _ in present],
            width * 0.92,
            yerr=[low, high],
            capsize=2.5,
            error_kw={"elinewidth": 0.9, "ecolor": "#333333"},
            label=name,
            color=colour,
            hatch="//" if floor else None,
            edgecolor="#666666" if floor else colour,
        )
        if len(groups) * len(series) <= 48:  # the value above its error bar, where it fits
            for x, v, ci in present:
                top = 100 * ci[1] if ci else v
                axis.text(x, top + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=6.5)
        for x, v in zip(xs, values, strict=True):
            if v is None:
                axis.text(x, 1, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
    tilt = _group_ticks(axis, groups)
    if separate_last and len(groups) > 1:
        axis.axvline(len(groups) - 1.5, color="#999999", lw=0.8, ls="--")
    axis.set_ylim(0, 112)
    axis.set_yticks([0, 20, 40, 60, 80, 100])
    return _finish_bars(figure, axis, title, ylabel, len(series), tilt)
