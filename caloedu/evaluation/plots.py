"""Plots for shower evaluation, CaloChallenge style: one page per feature group (every layer a panel with
the same styling), reference vs generated with statistical uncertainties and a ratio panel, and one page
of average showers.

Every comparison panel shows

- the fraction of the sample per bin, reference filled grey, generated as a red line, each with its
  Poisson uncertainty sqrt(N) / N_total as a band (hatched for the reference);
- under- and overflow as an extra, shaded bin on each side of the drawn range (present when any value
  falls there; on log axes zeros count as underflow), with the fraction written next to it when a sample
  has 1 % or more there, so a generated sample off the range is visibly off it;
- a ratio panel generated / reference with the generated uncertainty as a band, the reference uncertainty
  as a grey band around 1, and a triangle at the panel edge for every bin whose ratio is off the scale
  (pointing up or down; a bin empty in the reference but filled in the generated sample points up);
- the separation power S in the panel title, with the value statistics alone would give it ("stat.",
  `caloedu.evaluation.histograms.statistical_power_floor`). S is the number `caloedu evaluate` reports, computed on the
  binning of `caloedu.evaluation.metrics` (``n_bins`` bins over the reference's full range plus under-
  and overflow), *not* on the drawn bins: the drawn range and bins are chosen for the eye
  (`caloedu.evaluation.histograms`: quantiles of both samples, lattice-aware), so that one outlier
  does not squeeze the bulk into one bin.

The x axis states each feature with its unit and definition (`FEATURE_AXES`); legends sit above the
panels, never on the data. Figures are made with `matplotlib.figure.Figure` (no pyplot, no global state)
and laid out by hand (no constrained layout, which costs seconds per page), so all pages of the teaching
geometry take a few seconds.
"""

import math
import os
import re

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import PolyCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from caloedu.evaluation.features import compute_features, feature_distributions
from caloedu.evaluation.histograms import (
    SampleHistogram,
    choose_ratio_range,
    display_bin_edges,
    display_n_bins,
    off_scale,
    ratio_with_errors,
    statistical_power_floor,
)
from caloedu.evaluation.metrics import histogram_with_overflow, reference_bin_edges, separation_power

# What each feature group is, for its axis: symbol, unit ('' when dimensionless), definition (plain words,
# as the docstring of `caloedu.evaluation.features` defines it), what a histogram counts, a page title and
# whether the fractions need a log y axis. Change a definition here and in features.py together
# (tests/test_evaluation_plots.py checks the sparsity one against what compute_features computes).
FEATURE_AXES = {
    "E_ratio": {
        "symbol": "$E_\\mathrm{tot}\\,/\\,E_\\mathrm{inc}$", "unit": "",
        "definition": "energy deposited in all layers divided by the incident energy",
        "per": "showers", "title": "Deposited over incident energy",
    },
    "E_layer": {
        "symbol": "$E_\\mathrm{layer}$", "unit": "MeV",
        "definition": "sum of the energies of the layer's voxels",
        "per": "showers", "title": "Energy per layer",
    },
    "centre_eta": {
        "symbol": "$\\langle\\eta\\rangle$", "unit": "mm",
        "definition": "energy-weighted centre in $\\eta=r\\cos\\alpha$: sum(E $\\eta$) / sum(E)",
        "per": "showers", "title": "Centre of energy in eta per layer",
    },
    "centre_phi": {
        "symbol": "$\\langle\\phi\\rangle$", "unit": "mm",
        "definition": "energy-weighted centre in $\\phi=r\\sin\\alpha$: sum(E $\\phi$) / sum(E)",
        "per": "showers", "title": "Centre of energy in phi per layer",
    },
    "width_eta": {
        "symbol": "$\\sigma_\\eta$", "unit": "mm",
        "definition": "energy-weighted width in $\\eta$: "
                      "$\\sqrt{\\langle\\eta^2\\rangle-\\langle\\eta\\rangle^2}$",
        "per": "showers", "title": "Shower width in eta per layer",
    },
    "width_phi": {
        "symbol": "$\\sigma_\\phi$", "unit": "mm",
        "definition": "energy-weighted width in $\\phi$: "
                      "$\\sqrt{\\langle\\phi^2\\rangle-\\langle\\phi\\rangle^2}$",
        "per": "showers", "title": "Shower width in phi per layer",
    },
    "sparsity": {
        "symbol": "sparsity", "unit": "",
        "definition": "fraction of the layer's voxels that are empty (energy at or below the threshold)",
        "per": "showers", "title": "Sparsity per layer (1 = empty layer)",
    },
    "voxel_energy": {
        "symbol": "$E_\\mathrm{voxel}$", "unit": "MeV",
        "definition": "energy of each voxel above the threshold, all layers",
        "per": "voxels", "title": "Voxel energy spectrum", "ylog": True,
    },
}

REFERENCE_COLOR = "0.72"
REFERENCE_BAND_COLOR = "0.35"
GENERATED_COLOR = "#d62728"
FLOW_COLOR = "0.93"
# Font sizes (points); at 100 dpi 8 pt is 11 px.
TICK_SIZE, LABEL_SIZE, TITLE_SIZE, PAGE_TITLE_SIZE, NOTE_SIZE = 8, 9, 9.5, 13, 7.5
# A sample with at least this fraction in the under- or overflow gets it written on the panel.
FLOW_NOTE_FRACTION = 0.01
# A panel is "peaked" (wants a log y axis) when its highest reference bin is this many times its median one.
PEAKED = 25
# The under- and overflow bins are drawn this wide, as a fraction of the drawn range.
FLOW_BIN_WIDTH = 0.07


def axis_label(group, unit="", fallback="", width=48):
    """The x-axis label of a feature group: '<symbol> [<unit>]' and its definition (wrapped at ``width``)."""
    axes = FEATURE_AXES.get(group)
    if axes is None:
        return f"{fallback or group} [{unit}]" if unit else (fallback or group)
    head = f"{axes['symbol']} [{axes['unit']}]" if axes["unit"] else axes["symbol"]
    return head + "\n" + "\n".join(_wrap_chars(axes["definition"], width))


class _Layout:
    """Fixed page geometry in inches: a header (page title, legend), a grid of panels (title, histogram,
    ratio, x label) and a footer (notes). Positions are fractions of the figure, as add_axes wants."""

    def __init__(self, n_panels, n_cols, axes_w, main_h, ratio_h, xlabel_h=0.95, header_h=1.0, left=0.8,
                 right=0.25, title_h=0.3):
        self.n_cols = n_cols
        self.n_rows = math.ceil(n_panels / n_cols)
        self.axes_w, self.main_h, self.ratio_h = axes_w, main_h, ratio_h
        self.left, self.title_h, self.header_h = left, title_h, header_h
        self.cell_w = left + axes_w + right
        self.cell_h = title_h + main_h + ratio_h + xlabel_h
        self.width = max(6.0, n_cols * self.cell_w)
        self.x0 = (self.width - n_cols * self.cell_w) / 2  # centre the grid on a page made wider
        self.set_footer(0.0)

    def set_footer(self, footer_h):
        """Reserve ``footer_h`` inches at the bottom (for notes); the page grows by it."""
        self.height = max(4.0, self.header_h + self.n_rows * self.cell_h + footer_h)

    def rects(self, index):
        """(histogram rect, ratio rect) of panel ``index``, in figure fractions."""
        row, col = divmod(index, self.n_cols)
        x = self.x0 + col * self.cell_w + self.left
        top = self.height - self.header_h - row * self.cell_h - self.title_h
        main = (x, top - self.main_h, self.axes_w, self.main_h)
        ratio = (x, top - self.main_h - self.ratio_h, self.axes_w, self.ratio_h)
        return tuple(self._fraction(r) for r in (main, ratio))

    def _fraction(self, rect):
        x, y, w, h = rect
        return (x / self.width, y / self.height, w / self.width, h / self.height)


def _flow_edges(edges, scale, underflow, overflow):
    """Edges with an under- and/or overflow bin added, FLOW_BIN_WIDTH of the range wide (in log10 on log axes)."""
    if scale == "log":
        log_edges = np.log10(edges)
        return 10.0 ** _flow_edges(log_edges, "linear", underflow, overflow)
    width = FLOW_BIN_WIDTH * (edges[-1] - edges[0])
    return np.concatenate([[edges[0] - width] if underflow else [], edges, [edges[-1] + width] if overflow else []])


def _centres(edges, scale):
    return np.sqrt(edges[1:] * edges[:-1]) if scale == "log" else 0.5 * (edges[1:] + edges[:-1])


def _percent(fraction):
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1f}%"


class _Panel:
    """One reference vs generated comparison: the histograms in display bins, their ratio and the S."""

    def __init__(self, ref, gen):
        self.ref, self.gen = ref, gen
        n_bins = display_n_bins(ref.n_bins, len(ref.values), len(gen.values))
        edges = display_bin_edges(ref.values, gen.values, n_bins, ref.scale)
        self.ref_hist = SampleHistogram.of(ref.values, edges)
        self.gen_hist = SampleHistogram.of(gen.values, edges)
        self.ratio = ratio_with_errors(self.ref_hist, self.gen_hist)
        self.underflow = self.ref_hist.underflow + self.gen_hist.underflow > 0
        self.overflow = self.ref_hist.overflow + self.gen_hist.overflow > 0
        self.edges = _flow_edges(edges, ref.scale, self.underflow, self.overflow)
        # The inner bins plus the under/overflow bins that are drawn.
        self.keep = np.r_[self.underflow, np.ones(len(edges) - 1, bool), self.overflow]
        filled = self.ref_hist.fractions[self.ref_hist.fractions > 0]
        self.peaked = bool(filled.size and filled.max() > PEAKED * np.median(filled))
        # The number `caloedu evaluate` reports (its own binning, see the module docstring), and the value
        # statistics alone give it for two samples of these sizes from one distribution.
        power_edges = reference_bin_edges(ref.values, ref.n_bins, ref.scale)
        try:
            self.power = separation_power(ref.values, gen.values, power_edges)
        except ValueError:  # an empty sample
            self.power = float("nan")
        self.power_noise = statistical_power_floor(histogram_with_overflow(ref.values, power_edges),
                                                   len(ref.values), len(gen.values))

    def drawn(self, hist):
        """(fractions, errors) of the drawn bins of one `SampleHistogram`."""
        _, fractions, errors = hist.with_flow()
        return fractions[self.keep], errors[self.keep]


def _rectangles(edges, low, high):
    """(n, 4, 2) vertices of the bins' rectangles from ``low`` to ``high``; bins with non-finite ends left out."""
    keep = np.isfinite(low) & np.isfinite(high)
    x0, x1, y0, y1 = edges[:-1][keep], edges[1:][keep], low[keep], high[keep]
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1),
                     np.stack([x0, y1], -1)], axis=1)


def _fill(ax, edges, low, high, **style):
    """Fill each bin between ``low`` and ``high``. A collection added without autoscaling: much faster
    than ``stairs``/``fill_between``, whose patches' limits matplotlib computes curve by curve."""
    ax.add_collection(PolyCollection(_rectangles(edges, np.asarray(low, float), np.asarray(high, float)),
                                     **style), autolim=False)


def _steps(ax, edges, values, **style):
    """A histogram outline (a gap where a value is NaN)."""
    values = np.asarray(values, dtype=np.float64)
    return ax.plot(edges, np.r_[values, values[-1]], drawstyle="steps-post", scalex=False, scaley=False, **style)


def _draw_panel(panel, ax, ax_ratio, ratio_limits, labels, ylog, ylabel, xlabel):
    scale = panel.ref.scale
    edges = panel.edges
    f_ref, e_ref = panel.drawn(panel.ref_hist)
    f_gen, e_gen = panel.drawn(panel.gen_hist)
    for axis in (ax, ax_ratio):
        if scale == "log":
            axis.set_xscale("log")
        for flow, (lo, hi) in ((panel.underflow, edges[:2]), (panel.overflow, edges[-2:])):
            if flow:
                axis.axvspan(lo, hi, color=FLOW_COLOR, zorder=0, linewidth=0)
                axis.axvline(lo if hi == edges[-1] else hi, color="0.55", linewidth=0.6, linestyle=":", zorder=0.5)
    if ylog:
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # decades suffice; minor ticks here cost ~0.5 s a page
    floor = 0.0
    top = np.max(np.r_[f_ref + e_ref, f_gen + e_gen, 1e-12])
    if ylog:
        positive = np.r_[f_ref, f_gen]
        positive = positive[positive > 0]
        floor = 0.5 * positive.min() if positive.size else top * 1e-3
        ax.set_ylim(floor, top * (top / floor) ** 0.3)  # headroom for the under/overflow notes
    else:
        ax.set_ylim(0, 1.3 * top)
        ax.yaxis.set_major_locator(MaxNLocator(5, prune="lower"))
    _fill(ax, edges, np.full(len(f_ref), floor), np.where(f_ref > 0, f_ref, floor), facecolor=REFERENCE_COLOR,
          linewidth=0, zorder=1)
    _fill(ax, edges, np.maximum(f_ref - e_ref, floor), f_ref + e_ref, facecolor="none",
          edgecolor=REFERENCE_BAND_COLOR, hatch="////", linewidth=0, zorder=2)
    _fill(ax, edges, np.maximum(f_gen - e_gen, floor), f_gen + e_gen, facecolor=GENERATED_COLOR, alpha=0.25,
          linewidth=0, zorder=3)
    _steps(ax, edges, np.where(f_gen > 0, f_gen, floor), color=GENERATED_COLOR, linewidth=1.4, zorder=4)
    ax.set_xlim(edges[0], edges[-1])
    _note_flow(ax, panel, labels)

    # ratio panel
    ratio = panel.ratio
    r, r_err, band = (ratio[key][panel.keep] for key in ("ratio", "ratio_error", "reference_band"))
    _fill(ax_ratio, edges, 1 - band, 1 + band, facecolor=REFERENCE_COLOR, linewidth=0, zorder=1)
    ax_ratio.axhline(1.0, color="0.25", linewidth=0.8, zorder=2)
    finite = np.where(np.isfinite(r), r, np.nan)
    _fill(ax_ratio, edges, finite - r_err, finite + r_err, facecolor=GENERATED_COLOR, alpha=0.25, linewidth=0,
          zorder=3)
    _steps(ax_ratio, edges, finite, color=GENERATED_COLOR, linewidth=1.2, zorder=4)
    above, below = off_scale(r, ratio_limits)
    centres = _centres(edges, scale)
    transform = ax_ratio.get_xaxis_transform()  # x in data, y in axes fractions
    for mask, marker, y, gid in ((above, "^", 0.84, "ratio_above"), (below, "v", 0.16, "ratio_below")):
        if mask.any():
            ax_ratio.plot(centres[mask], np.full(mask.sum(), y), linestyle="none", marker=marker, markersize=5,
                          color=GENERATED_COLOR, transform=transform, gid=gid, zorder=5, scalex=False, scaley=False)
    ax_ratio.set_ylim(*ratio_limits)
    quarter = 0.25 * (ratio_limits[1] - ratio_limits[0])  # ticks clear of the edges, where the panels meet
    ax_ratio.set_yticks([ratio_limits[0] + quarter, 1.0, ratio_limits[1] - quarter])
    ax_ratio.set_xlim(edges[0], edges[-1])
    ax_ratio.set_ylabel("ratio", fontsize=LABEL_SIZE)

    for axis in (ax, ax_ratio):
        axis.tick_params(labelsize=TICK_SIZE, direction="in", top=True, right=True)
        axis.tick_params(which="minor", direction="in", top=True, right=True)
    ax.tick_params(labelbottom=False)
    if not ylog:  # plain numbers: an offset text (x 10^-2) would sit on the panel title
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    if scale == "log":  # fewer minor ticks: each one costs time to draw, 2 and 5 are enough to read
        ax_ratio.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    else:
        ax_ratio.xaxis.set_major_locator(MaxNLocator(6))
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax_ratio.set_xlabel(xlabel, fontsize=LABEL_SIZE)


def _note_flow(ax, panel, labels):
    """Write under/overflow fractions of 1 % or more next to their bin, in the headroom of the panel."""
    for side, x, align in (("under", 0.02, "left"), ("over", 0.98, "right")):
        parts = []
        for label, hist in zip(labels, (panel.ref_hist, panel.gen_hist)):
            fraction = getattr(hist, f"{side}flow_fraction")
            if fraction >= FLOW_NOTE_FRACTION:
                parts.append(f"{label} {_percent(fraction)} ({getattr(hist, f'{side}flow')})")
        if parts:
            head = f"{side}flow" + (" (incl. zeros)" if side == "under" and panel.ref.scale == "log" else "")
            ax.text(x, 0.96, f"{head}:\n" + "\n".join(parts), transform=ax.transAxes, ha=align, va="top",
                    fontsize=TICK_SIZE - 1, color="0.2", gid=f"{side}flow_note", zorder=6,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    nonfinite = [f"{label} {hist.nonfinite}" for label, hist in zip(labels, (panel.ref_hist, panel.gen_hist))
                 if hist.nonfinite]
    if nonfinite:
        ax.text(0.5, 0.96, "non-finite: " + ", ".join(nonfinite), transform=ax.transAxes, ha="center", va="top",
                fontsize=TICK_SIZE - 1, color="0.2", gid="nonfinite_note", zorder=6)


def _legend_handles(labels):
    return [
        Patch(facecolor=REFERENCE_COLOR, edgecolor=REFERENCE_BAND_COLOR, hatch="////", linewidth=0,
              label=f"{labels[0]} $\\pm$ stat. unc."),
        (Patch(facecolor=GENERATED_COLOR, alpha=0.25, linewidth=0, label=f"{labels[1]} $\\pm$ stat. unc."),
         Line2D([], [], color=GENERATED_COLOR, linewidth=1.4)),
        Patch(facecolor=FLOW_COLOR, edgecolor="0.6", linewidth=0.5, label="under-/overflow bin"),
        Line2D([], [], color=GENERATED_COLOR, marker="^", linestyle="none", markersize=5,
               label="ratio off scale"),
    ]


def _header(fig, height, title, subtitle, labels=None, legend_y=0.55, n_cols=4):
    """Page title, a subtitle line and (for comparison pages) the legend, in the top inches of the page."""
    top = 1 - 0.12 / height
    fig.text(0.5, top, title, ha="center", va="top", fontsize=PAGE_TITLE_SIZE, weight="bold")
    fig.text(0.5, top - 0.3 / height, subtitle, ha="center", va="top", fontsize=LABEL_SIZE)
    if labels is not None:
        handles = _legend_handles(labels)
        names = [(h[0] if isinstance(h, tuple) else h).get_label() for h in handles]
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, top - legend_y / height), ncol=n_cols,
                   fontsize=LABEL_SIZE, frameon=False, handlelength=2.2, columnspacing=1.5, borderaxespad=0)


# The notes at the foot of every comparison page (<ref> and <gen> stand for the sample names).
NOTES = (
    "Lower panels: ratio <gen> / <ref>, band: <gen> stat. unc.; grey band around 1: <ref> stat. unc. "
    "Stat. unc.: Poisson $\\sqrt{N}$ per bin of each sample.",
    "Drawn range: quantiles of each sample (0.5-99.5 %, or leaving out 5 entries per side of large samples) "
    "within one central-90 % range of the 5 % and 95 % quantiles, at most one <ref> range beyond the <ref>'s; "
    "entries outside it are in the shaded under-/overflow bins (on log axes zeros too). Fractions are of all "
    "entries.",
    "S: separation power $S=\\sum_i\\,(r_i-g_i)^2/(2(r_i+g_i))$ of the <ref> and <gen> fractions r, g, "
    "as in the evaluation report: its bins span the <ref>'s full range (plus under-/overflow); they are "
    "not the drawn bins. (stat. ...): the S two samples of these sizes drawn from one distribution have on "
    "average, (B/4)(1/N_ref + 1/N_gen) for B filled bins; an S near it is consistent with statistics alone.",
)


def plot_feature_comparison(reference_dists, generated_dists, title=None, labels=("reference", "generated"),
                            n_cols=None):
    """One page comparing reference and generated for one feature group, one panel per distribution
    (layer), each with a generated / reference ratio panel; see the module docstring for what is drawn.

    Args:
        reference_dists, generated_dists: lists of `FeatureDistribution`; each reference one is compared
            with the generated one of the same name.
        title: the page title (default: the group's title in `FEATURE_AXES`).
        labels: names of the two samples.
        n_cols: panels per row (default: up to 4).
    Returns:
        a matplotlib `Figure` (at least 6 x 4 inches).
    """
    generated = {dist.name: dist for dist in generated_dists}
    missing = [dist.name for dist in reference_dists if dist.name not in generated]
    if missing:
        raise ValueError(f"The generated distributions lack {', '.join(missing[:5])}.")
    if not reference_dists:
        raise ValueError("plot_feature_comparison needs at least one distribution.")
    panels = [_Panel(ref, generated[ref.name]) for ref in reference_dists]
    group = reference_dists[0].group or reference_dists[0].name
    axes_info = FEATURE_AXES.get(group, {})
    single = len(panels) == 1
    if single:
        layout = _Layout(1, 1, axes_w=5.2, main_h=3.2, ratio_h=1.1, left=1.0, right=0.4, xlabel_h=1.0, header_h=1.3)
    else:
        n_cols = n_cols or min(4, len(panels))
        layout = _Layout(len(panels), n_cols, axes_w=2.6, main_h=1.9, ratio_h=0.75, right=0.35)
    if layout.width < 9:
        layout.header_h = 1.3  # room for a legend in two rows
    notes = [line for note in NOTES for line in
             _wrap(note.replace("<ref>", labels[0]).replace("<gen>", labels[1]), layout.width)]
    layout.set_footer(0.2 + 0.15 * len(notes))
    fig = Figure(figsize=(layout.width, layout.height))
    limits = choose_ratio_range([panel.ratio for panel in panels])
    # Log y for the whole page when most panels are a narrow peak over wide tails (the centre of energy
    # of deep layers, where empty layers sit at 0): a linear axis would show only the peak.
    ylog = bool(axes_info.get("ylog", False)) or 2 * sum(panel.peaked for panel in panels) > len(panels)
    per = axes_info.get("per", "entries")
    for i, panel in enumerate(panels):
        ref = panel.ref
        main_rect, ratio_rect = layout.rects(i)
        ax = fig.add_axes(main_rect)
        ax_ratio = fig.add_axes(ratio_rect, sharex=ax)
        xlabel = axis_label(ref.group or ref.name, ref.unit, ref.label, width=80 if single else 44)
        ylabel = f"fraction of {per}" if i % layout.n_cols == 0 else None
        _draw_panel(panel, ax, ax_ratio, limits, labels, ylog, ylabel, xlabel)
        # y given: matplotlib then skips placing titles around the tick labels (costly, not needed here)
        name = f"layer {ref.layer}" if ref.layer >= 0 else FEATURE_AXES.get(ref.group, {}).get("symbol", ref.label)
        ax.set_title(name, loc="left", fontsize=TITLE_SIZE, y=1.0, pad=4)
        ax.set_title(f"S = {_format_power(panel.power)}  (stat. {_format_power(panel.power_noise)})", loc="right",
                     fontsize=TITLE_SIZE, color="0.15", y=1.0, pad=4)
    n_ref, n_gen = len(reference_dists[0].values), len(generated[reference_dists[0].name].values)
    _header(fig, layout.height, title or axes_info.get("title", group),
            f"{labels[0]}: {n_ref:,} {per}, {labels[1]}: {n_gen:,} {per}", labels, n_cols=2 if layout.width < 9 else 4)
    fig.text(0.012, 0.1 / layout.height, "\n".join(notes), ha="left", va="bottom", fontsize=NOTE_SIZE,
             color="0.3", linespacing=1.5)
    return fig


def _format_power(power):
    if not np.isfinite(power):
        return "n/a"
    return f"{power:.3f}" if power >= 0.01 else f"{power:.2g}"


def _shown_length(word):
    """About how many characters ``word`` shows: in a $math$ run a command (\\sqrt) shows as one glyph and
    braces, ^ and _ as none."""
    if "$" not in word:
        return len(word)
    return len(re.sub(r"[{}^_$]|\\,", "", re.sub(r"\\[A-Za-z]+", "x", word)))


def _wrap(text, width_inches, font_size=None):
    """Lines of ``text`` that fit ``width_inches`` at ``font_size`` (an average glyph is ~0.5 em wide)."""
    font_size = font_size or NOTE_SIZE
    return _wrap_chars(text, int((width_inches - 0.2) * 72 / (0.5 * font_size)))


def _wrap_chars(text, n_chars):
    """Lines of at most ~``n_chars`` shown characters, broken at spaces only (math runs hold none)."""
    lines, line, length = [], [], 0
    for word in text.split(" "):
        size = _shown_length(word)
        if line and length + 1 + size > n_chars:
            lines.append(" ".join(line))
            line, length = [], 0
        line.append(word)
        length += size + (1 if length else 0)
    if line:
        lines.append(" ".join(line))
    return lines


def _ring_sectors(alpha_edges, r_edges):
    """Polygons (eta, phi) = (r cos alpha, r sin alpha) of the voxels of one layer, in voxel order
    (alpha-major, r-minor), each (2 n + 2, 2) with n points per arc."""
    polygons = []
    for a0, a1 in zip(alpha_edges[:-1], alpha_edges[1:]):
        n = max(3, int(math.ceil(48 * (a1 - a0) / (2 * math.pi))) + 1)
        arc = np.linspace(a0, a1, n)
        for r0, r1 in zip(r_edges[:-1], r_edges[1:]):
            outer = np.stack([r1 * np.cos(arc), r1 * np.sin(arc)], -1)
            inner = np.stack([r0 * np.cos(arc[::-1]), r0 * np.sin(arc[::-1])], -1)
            polygons.append(np.concatenate([outer, inner]))
    return polygons


def _layer_image(ax, geometry, layer, values, norm, cmap):
    """One layer's voxel values as ring sectors on a plain (fast) axes; masked where not finite or, on a log
    scale, not positive."""
    values = np.ma.masked_invalid(values)
    if isinstance(norm, LogNorm):
        values = np.ma.masked_less_equal(values, 0.0)
    r_edges = np.asarray(geometry.r_edges[layer], dtype=np.float64)
    collection = PolyCollection(_ring_sectors(geometry.alpha_edges(layer), r_edges), array=values,
                                cmap=colormaps[cmap].with_extremes(bad="white"), norm=norm, edgecolors="face",
                                linewidths=0.2)
    ax.add_collection(collection, autolim=False)
    circle = np.linspace(0, 2 * math.pi, 97)
    ax.plot(r_edges[-1] * np.cos(circle), r_edges[-1] * np.sin(circle), color="0.5", linewidth=0.5)
    r_max = r_edges[-1] * 1.02
    ax.set_xlim(-r_max, r_max)
    ax.set_ylim(-r_max, r_max)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return collection


def plot_average_shower(showers, geometry, title="average shower", compare_with=None,
                        labels=("reference", "generated")):
    """The mean energy per voxel (MeV), one ring-sector image per layer in the (eta, phi) = (r cos alpha,
    r sin alpha) plane (layers without voxels left out).

    Args:
        showers: (N, n_voxels) MeV.
        geometry: their `CalorimeterGeometry`; any binning works, the rings follow each layer's r_edges.
        title: the page title.
        compare_with: optional second (M, n_voxels) sample: then each layer shows ``showers`` (labels[0]),
            ``compare_with`` (labels[1]) and the ratio compare_with / showers, one row each; the two
            samples share one colour scale.
        labels: names of ``showers`` and ``compare_with``.
    Returns:
        a matplotlib `Figure` (at least 6 x 4 inches).
    """
    samples = [showers] if compare_with is None else [showers, compare_with]
    means = []
    for sample in samples:
        geometry.check_showers(sample)
        means.append(np.asarray(sample, dtype=np.float64).mean(axis=0))  # (n_voxels,) MeV
    layers = [layer for layer in range(geometry.n_layers) if geometry.voxels_per_layer[layer] > 0]
    positive = np.concatenate([m[m > 0] for m in means])
    # One colour scale for all layers and samples so the longitudinal development reads across panels.
    norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-5), vmax=positive.max()) if positive.size else None
    rows = [(label, mean, norm, "viridis") for label, mean in zip(labels, means)] if compare_with is not None \
        else [("", means[0], norm, "viridis")]
    ratio_norm = Normalize(0.5, 1.5)
    if compare_with is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(means[0] > 0, means[1] / means[0], np.nan)
        rows.append((f"{labels[1]} / {labels[0]}", ratio, ratio_norm, "RdBu_r"))
    n_cols = min(len(layers), 6)
    n_bands = math.ceil(len(layers) / n_cols)
    size, gap, title_h, band_gap, header, footer, left, bar_space = 1.6, 0.12, 0.3, 0.1, 0.85, 0.45, 0.5, 1.4
    row_h = size + 0.08
    width = max(6.0, left + n_cols * (size + gap) + bar_space)
    height = max(4.0, header + n_bands * (len(rows) * row_h + title_h + band_gap) + footer)
    fig = Figure(figsize=(width, height))
    images = {}
    for i, layer in enumerate(layers):
        band, col = divmod(i, n_cols)
        for row, (name, values, row_norm, cmap) in enumerate(rows):
            y_top = height - header - band * (len(rows) * row_h + title_h + band_gap) - row * row_h - title_h
            ax = fig.add_axes(((left + col * (size + gap)) / width, (y_top - size) / height, size / width,
                               size / height))
            if row_norm is None:  # all voxels empty
                ax.set_axis_off()
                continue
            images[cmap] = _layer_image(ax, geometry, layer, values[geometry.layer_slice(layer)], row_norm, cmap)
            if row == 0:
                ax.text(0.5, 1.02, f"layer {layer}", transform=ax.transAxes, ha="center", va="bottom",
                        fontsize=TITLE_SIZE)
            if col == 0 and name:
                fig.text((left - 0.1) / width, (y_top - size / 2) / height, name, rotation=90, ha="right",
                         va="center", fontsize=LABEL_SIZE + 0.5)
    x_bar, bar_w = (left + n_cols * (size + gap) + 0.2) / width, 0.14 / width
    grid_top, grid_bottom = (height - header - title_h) / height, (footer + 0.1) / height
    span = grid_top - grid_bottom
    if "viridis" in images:
        share = 0.6 if "RdBu_r" in images else 1.0
        cax = fig.add_axes((x_bar, grid_top - share * span, bar_w, share * span))
        fig.colorbar(images["viridis"], cax=cax).set_label("mean voxel energy [MeV]", fontsize=LABEL_SIZE)
        cax.tick_params(labelsize=TICK_SIZE)
    if "RdBu_r" in images:
        cax = fig.add_axes((x_bar, grid_bottom, bar_w, 0.3 * span))
        fig.colorbar(images["RdBu_r"], cax=cax, extend="both").set_label("ratio", fontsize=LABEL_SIZE)
        cax.tick_params(labelsize=TICK_SIZE)
    counts = ", ".join(f"{label}: {len(sample):,} showers" for label, sample in zip(labels, samples)) \
        if compare_with is not None else f"{len(showers):,} showers"
    _header(fig, height, title, counts)
    r_max = max(float(geometry.r_edges[layer][-1]) for layer in layers)
    note = ("Mean energy per voxel in the plane transverse to the shower axis, (eta, phi) = (r cos alpha, "
            f"r sin alpha), to scale (outer ring: r = {r_max:.1f} mm); rings: radial bins, sectors: angular bins; "
            "white: no energy.")
    if compare_with is not None:
        note += f" Ratio: {labels[1]} / {labels[0]} of the mean voxel energies."
    fig.text(0.012, 0.1 / height, "\n".join(_wrap(note, width)), ha="left", va="bottom", fontsize=NOTE_SIZE,
             color="0.3", linespacing=1.5)
    return fig


def feature_pages(features):
    """The feature groups to plot, one page each, in report order: {group: [`FeatureDistribution`, ...]}
    of the given `HighLevelFeatures` (the reference's)."""
    groups = {}
    for dist in feature_distributions(features):
        groups.setdefault(dist.group or dist.name, []).append(dist)
    return groups


def write_plots(reference, generated, geometry, folder, reference_features=None, generated_features=None,
                labels=("reference", "generated"), dpi=100, formats=("png",)):
    """Write one page per feature group and one page of average showers into ``folder``.

    Pages: ``<group>.<format>`` for every group of `feature_distributions` (E_ratio, E_layer, centre_eta,
    centre_phi, width_eta, width_phi, sparsity, voxel_energy), each layer a panel, and
    ``average_shower.<format>`` (reference, generated and their ratio per layer).

    Args:
        reference, generated: (incident_energies (N, 1) MeV, showers (N, n_voxels) MeV) pairs.
        geometry: their `CalorimeterGeometry`.
        folder: created if missing; existing files of the same names are replaced.
        reference_features, generated_features: precomputed `HighLevelFeatures` to reuse (optional).
        labels: names of the two samples.
        dpi: resolution of the PNG files.
        formats: file formats to write each page in ('png', 'pdf', 'svg').
    Returns:
        list of the written paths, pages in the order above, formats in the order given.
    """
    os.makedirs(folder, exist_ok=True)
    if reference_features is None:
        reference_features = compute_features(*reference, geometry)
    if generated_features is None:
        generated_features = compute_features(*generated, geometry)
    paths = []

    def save(fig, name):
        for fmt in formats:
            path = os.path.join(folder, f"{name}.{fmt}")
            fig.savefig(path, dpi=dpi, facecolor="white")
            paths.append(path)

    generated_dists = feature_distributions(generated_features)
    for group, dists in feature_pages(reference_features).items():
        save(plot_feature_comparison(dists, generated_dists, labels=labels), group)
    save(plot_average_shower(reference[1], geometry, title="Average shower", compare_with=generated[1],
                             labels=labels), "average_shower")
    return paths
