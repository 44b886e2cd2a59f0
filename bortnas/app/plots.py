"""Figures of a study: its Pareto front and its search history, as PNG (matplotlib) and HTML (plotly).

Presentation layer over `bortnas.search.records`: the front and the argmax-W trial are the ones
`front_and_best` gives (and `bortnas trials` marks); this module only draws and writes files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from bortnas.core.errors import BortnasError, MissingDependencyError, ParameterError, UserInputError
from bortnas.search.records import TrialRecord, front_and_best, load_records, p_bits, w_of
from bortnas.search.selection import Selection, check_latencies

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

_logger = logging.getLogger(__name__)

_BITS_PER_MIB = 8 * 2**20
_INSTALL = "pip install 'bortnas[dashboard]'"
_ERROR_LABEL = "error (1 - the dev score of the task's metric)"
_P_LABEL = "p: non-embedding size (MiB)"
_I_LABEL = "i: MFLOP-equivalents per example"
_SIMULATED = "simulated: no low-bit kernel, fp32 arithmetic"


@dataclasses.dataclass(frozen=True)
class _Point:
    """One scored trial in plotting units."""

    number: int
    key: str
    p_mib: float  # W's p, the stored bits of the non-embedding weights, in MiB
    mflops: float  # W's i, millions of FLOP-equivalents at the study's sequence length
    latency_ms: float
    error: float
    w: float
    on_front: bool
    simulated: bool  # latency_ms times an fp32 simulation: the mode has no low-bit kernel

    def hover(self) -> str:
        return (
            f"trial {self.number}<br>{self.key}<br>W = {self.w:.4f}<br>error = {self.error:.4f}<br>"
            f"p = {self.p_mib:.3f} MiB<br>i = {self.mflops:.1f} MFLOPs<br>latency = {self.latency_ms:.2f} ms"
            + (f" ({_SIMULATED})" if self.simulated else "")
        )


@dataclasses.dataclass(frozen=True)
class PlotReport:
    """What `write_plots` drew: the files, and the trials it marked, so callers can check them."""

    files: tuple[Path, ...]
    scored: int  # trials plotted: COMPLETE with a W
    front: tuple[int, ...]  # trial numbers ringed as the Pareto front of (p, i, error), ascending
    best: int  # the argmax-W trial, highlighted and labelled
    best_w: float
    simulated: tuple[int, ...] = ()  # trial numbers whose latency is crossed out as simulated, ascending


def write_plots(study: optuna.Study, out: Path, overwrite: bool = False, cost: str | None = None) -> PlotReport:
    """Write the Pareto front and the search history of `study` into `out`.

    ``pareto.png``: p against measured latency and against i, coloured by error, the
    (p, i, error) Pareto front ringed and the argmax-W trial starred and labelled (the front is
    over W's analytic costs, not latency, so the i panel shows why a ringed trial is there).
    Trials of modes with no low-bit kernel are crossed in the latency panel and labelled
    simulated: their latency times an fp32 simulation of the low-bit arithmetic.
    ``history.png``: W of every scored trial by trial number, with the running best. With plotly
    installed, ``pareto.html`` and ``history.html`` are interactive versions (plotly.js embedded,
    so they open offline); without it a warning says so. `out` is created if needed.

    Args:
        study: a study written by `bortnas search`.
        out: directory of the files.
        overwrite: replace plot files that exist; otherwise refuse before writing anything.
        cost: which W to draw and star: "flops", "latency" (W with i = the latency table's value), or
            None for the study's own objective.

    Returns:
        The files written, and the front and best trial drawn.

    Raises:
        MissingDependencyError: matplotlib is not installed.
        ParameterError: `out` is a file.
        UserInputError: a file to write exists and `overwrite` is False.
        BortnasError: the study has no scored trial.

    Example:
        >>> write_plots(optuna.load_study(study_name="minilm_quick", storage="sqlite:///bortnas.db"), Path("plots"))  # doctest: +SKIP
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as e:
        raise MissingDependencyError(f"bortnas plot needs matplotlib, which is not installed ({e}): {_INSTALL}.") from e
    html = importlib.util.find_spec("plotly") is not None
    if not html:
        _logger.warning("plotly is not installed: writing PNG files only; %s adds the HTML versions.", _INSTALL)
    if out.exists() and not out.is_dir():
        raise ParameterError("out", f" {out} is a file: pass a directory (it is created if missing).")
    names = ("pareto.png", "history.png") + (("pareto.html", "history.html") if html else ())
    files = tuple(out / name for name in names)
    existing = [f for f in files if f.exists()]
    if existing and not overwrite:
        raise UserInputError(
            f"{existing[0]} exists and overwrite is off: pass overwrite=True to replace the plots in {out}, or another directory as out."
        )
    records = load_records(study)
    check_latencies(records, Selection(), cost, study.study_name)
    front, best = front_and_best(records, cost)
    if best is None:
        raise BortnasError(
            f"study {study.study_name!r} has no finished trial to plot: see `bortnas trials --study {study.study_name} --all` "
            "for the reasons."
        )
    points = [_point(r, r.number in front, cost) for r in records if r.scored and w_of(r.attrs, cost) is not None]
    top = next(p for p in points if p.number == best)
    which = {"flops": " (i = FLOPs)", "latency": " (i = table latency)"}.get(cost or "", "")
    title = f"{study.study_name}: {len(points)} scored trials; argmax W{which} = {top.w:.3f}, trial {top.number} ({top.key})"
    _logger.info("%s; Pareto front of (p, i, error): trials %s", title, sorted(front))

    out.mkdir(parents=True, exist_ok=True)
    for figure, path in ((_pareto_figure(points, top, title), files[0]), (_history_figure(points, top, title), files[1])):
        FigureCanvasAgg(figure)  # draws with Agg without switching pyplot's global backend
        figure.savefig(path, dpi=120)
    if html:
        _pareto_html(points, top, title).write_html(files[2], include_plotlyjs=True)
        history = optuna.visualization.plot_optimization_history(study, target_name="W")
        history.update_layout(title=title)
        history.write_html(files[3], include_plotlyjs=True)
    return PlotReport(
        files=files,
        scored=len(points),
        front=tuple(p.number for p in points if p.on_front),
        best=best,
        best_w=top.w,
        simulated=tuple(p.number for p in points if p.simulated),
    )


def _point(record: TrialRecord, on_front: bool, cost: str | None) -> _Point:
    a = record.attrs
    return _Point(
        number=record.number,
        key=a["key"],
        p_mib=p_bits(a) / _BITS_PER_MIB,
        mflops=a["flops"] / 1e6,
        latency_ms=a["latency_ms"],
        error=a["error"],
        w=w_of(a, cost) or 0.0,
        on_front=on_front,
        simulated=record.latency_simulated,
    )


# --- matplotlib -------------------------------------------------------------------------------


def _pareto_figure(points: list[_Point], top: _Point, title: str) -> Figure:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    axes = figure.subplots(1, 2)
    errors = [p.error for p in points]
    colour = ScalarMappable(Normalize(min(errors), max(errors)), "viridis")  # one scale for both panels
    front = [p for p in points if p.on_front]
    panels: tuple[tuple[Callable[[_Point], float], str], ...] = (
        (lambda p: p.latency_ms, "measured latency (ms, batch 1)"),
        (lambda p: p.mflops, _I_LABEL),
    )
    for axis, (y_of, y_label) in zip(axes, panels, strict=True):
        axis.scatter([p.p_mib for p in points], [y_of(p) for p in points], c=errors, cmap=colour.cmap, norm=colour.norm, s=36, zorder=2)
        axis.scatter(
            [p.p_mib for p in front],
            [y_of(p) for p in front],
            s=150,
            facecolors="none",
            edgecolors="black",
            linewidths=1.5,
            label="Pareto front of (p, i, error)",
            zorder=3,
        )
        axis.scatter([top.p_mib], [y_of(top)], marker="*", s=320, color="red", edgecolors="black", label="argmax W", zorder=4)
        axis.annotate(
            f"trial {top.number} {top.key}\nW = {top.w:.3f}",
            (top.p_mib, y_of(top)),
            xytext=(10, 10),
            textcoords="offset points",
            fontsize=8,
            zorder=5,
        )
        axis.set_xscale("log")  # quantized candidates are up to 32x smaller than fp32 ones
        _log_ticks(axis.xaxis)
        axis.set_xlabel(_P_LABEL)
        axis.set_ylabel(y_label)
        axis.grid(True, alpha=0.3)
    simulated = [p for p in points if p.simulated]
    if simulated:
        axes[0].scatter(
            [p.p_mib for p in simulated],
            [p.latency_ms for p in simulated],
            marker="x",
            s=60,
            color="grey",
            label=f"latency {_SIMULATED}",
            zorder=3,
        )
    axes[1].set_yscale("log")
    _log_ticks(axes[1].yaxis)
    axes[0].legend(loc="best", fontsize=8)
    figure.colorbar(colour, ax=list(axes), label=_ERROR_LABEL)
    figure.suptitle(title, fontsize=10)
    return figure


def _log_ticks(ticks: Axis) -> None:
    """Label a log axis 0.05, 0.1, 0.2, ...: a front often spans less than a decade, where the default leaves one label."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ticks.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ticks.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ticks.set_minor_formatter(NullFormatter())


def _history_figure(points: list[_Point], top: _Point, title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    numbers = [p.number for p in points]
    axis.scatter(numbers, [p.w for p in points], s=24, label="W of a trial", zorder=2)
    axis.step(numbers, list(itertools.accumulate((p.w for p in points), max)), where="post", color="black", label="best so far", zorder=1)
    axis.scatter([top.number], [top.w], marker="*", s=260, color="red", edgecolors="black", label="argmax W", zorder=3)
    axis.annotate(
        f"trial {top.number} {top.key}", (top.number, top.w), xytext=(-10, -18), textcoords="offset points", fontsize=8, ha="right"
    )
    axis.set_xlabel("trial number")
    axis.set_ylabel("W")
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


# --- plotly -----------------------------------------------------------------------------------


def _pareto_html(points: list[_Point], top: _Point, title: str) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("p against measured latency", "p against i (W's inference cost)"))
    front = [p for p in points if p.on_front]
    columns: tuple[tuple[int, Callable[[_Point], float]], ...] = ((1, lambda p: p.latency_ms), (2, lambda p: p.mflops))
    for col, y_of in columns:
        legend = col == 1
        figure.add_trace(
            go.Scatter(
                x=[p.p_mib for p in points],
                y=[y_of(p) for p in points],
                mode="markers",
                name="trials",
                marker={"color": [p.error for p in points], "coloraxis": "coloraxis", "size": 9},
                text=[p.hover() for p in points],
                hoverinfo="text",
                showlegend=legend,
            ),
            row=1,
            col=col,
        )
        figure.add_trace(
            go.Scatter(
                x=[p.p_mib for p in front],
                y=[y_of(p) for p in front],
                mode="markers",
                name="Pareto front of (p, i, error)",
                hoverinfo="skip",
                showlegend=legend,
                marker={"symbol": "circle-open", "size": 17, "color": "black", "line": {"width": 2}},
            ),
            row=1,
            col=col,
        )
        figure.add_trace(
            go.Scatter(
                x=[top.p_mib],
                y=[y_of(top)],
                mode="markers+text",
                name="argmax W",
                text=[f"trial {top.number}"],
                textposition="top right",
                hovertext=[top.hover()],
                hoverinfo="text",
                showlegend=legend,
                marker={"symbol": "star", "size": 18, "color": "red", "line": {"width": 1, "color": "black"}},
            ),
            row=1,
            col=col,
        )
    simulated = [p for p in points if p.simulated]
    if simulated:
        figure.add_trace(
            go.Scatter(
                x=[p.p_mib for p in simulated],
                y=[p.latency_ms for p in simulated],
                mode="markers",
                name=f"latency {_SIMULATED}",
                hoverinfo="skip",
                marker={"symbol": "x-thin-open", "size": 12, "color": "grey", "line": {"width": 2}},
            ),
            row=1,
            col=1,
        )
    figure.update_xaxes(type="log", title_text=_P_LABEL)
    figure.update_yaxes(title_text="measured latency (ms, batch 1)", row=1, col=1)
    figure.update_yaxes(type="log", title_text=_I_LABEL, row=1, col=2)
    figure.update_layout(title=title, coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": "error"}}})
    return figure
