"""Plots for shower evaluation, CaloChallenge style: average showers per layer, and each high-level
feature for reference vs generated with a ratio panel.

Figures are made with `matplotlib.figure.Figure` (no pyplot), so they work under any backend (Agg on a
server, inline in Jupyter) and leave no global state behind.
"""

import math
import os

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from caloedu.evaluation.features import compute_features, feature_distributions
from caloedu.evaluation.metrics import reference_bin_edges, separation_power

REFERENCE_STYLE = {"color": "0.6", "alpha": 0.6, "label": "reference"}
GENERATED_STYLE = {"color": "tab:red", "linewidth": 1.5, "label": "generated"}


def _grid(n_panels):
    n_cols = math.ceil(math.sqrt(n_panels))
    return math.ceil(n_panels / n_cols), n_cols


def plot_average_shower(showers, geometry, title="average shower"):
    """The mean energy per voxel (MeV), one polar ring-sector image per layer (layers without voxels left out).

    Args:
        showers: (N, n_voxels) MeV.
        geometry: their `CalorimeterGeometry`; any binning works, the rings follow each layer's r_edges.
    Returns:
        a matplotlib `Figure`.
    """
    geometry.check_showers(showers)
    mean = np.asarray(showers, dtype=np.float64).mean(axis=0)  # (n_voxels,) MeV
    layers = [layer for layer in range(geometry.n_layers) if geometry.voxels_per_layer[layer] > 0]
    positive = mean[mean > 0]
    # One colour scale for all layers so the longitudinal development reads across panels.
    norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-6), vmax=positive.max()) if positive.size else None
    n_rows, n_cols = _grid(len(layers))
    fig = Figure(figsize=(2.2 * n_cols + 1.0, 2.3 * n_rows + 0.6), layout="constrained")
    mesh = None
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(n_rows, n_cols, i + 1, projection="polar")
        image = mean[geometry.layer_slice(layer)].reshape(geometry.n_alpha[layer], -1)  # (n_alpha, n_r)
        image = np.ma.masked_less_equal(image, 0.0)
        mesh = ax.pcolormesh(geometry.alpha_edges(layer), geometry.r_edges[layer], image.T, norm=norm,
                             cmap="viridis", shading="flat")
        # Rings at the radial bin edges; their numbers would crowd a small panel, the title gives r_max.
        ax.set_yticks(geometry.r_edges[layer][1:], labels=[])
        ax.set_xticklabels([])
        ax.set_title(f"layer {layer} (r < {geometry.r_edges[layer][-1]:.0f} mm)", fontsize=8)
    if mesh is not None and norm is not None:
        fig.colorbar(mesh, ax=fig.axes, label="mean voxel energy [MeV]", shrink=0.8)
    fig.suptitle(f"{title} ({len(showers)} showers)")
    return fig


def _axis_label(dist):
    label = dist.label.split(",")[0] if dist.layer >= 0 else dist.label
    return f"{label} [{dist.unit}]" if dist.unit else label


def plot_feature_comparison(reference_dists, generated_dists, title=None, labels=("reference", "generated")):
    """Histograms of reference vs generated for one feature group (one panel per layer), each with a
    generated / reference ratio panel below it; the legend gives each panel's separation power.

    Args:
        reference_dists, generated_dists: lists of `FeatureDistribution` with matching names.
    Returns:
        a matplotlib `Figure`.
    """
    generated = {dist.name: dist for dist in generated_dists}
    n_rows, n_cols = _grid(len(reference_dists))
    fig = Figure(figsize=(3.2 * n_cols, 3.0 * n_rows + 0.5), layout="constrained")
    grid = fig.add_gridspec(2 * n_rows, n_cols, height_ratios=[3, 1] * n_rows)
    for i, ref in enumerate(reference_dists):
        gen = generated[ref.name]
        row, col = divmod(i, n_cols)
        ax = fig.add_subplot(grid[2 * row, col])
        ax_ratio = fig.add_subplot(grid[2 * row + 1, col], sharex=ax)
        edges = reference_bin_edges(ref.values, ref.n_bins, ref.scale)
        # density=False with weights gives fractions per bin, comparable across samples of any size
        h_ref, _, _ = ax.hist(ref.values, bins=edges, weights=np.full(len(ref.values), 1 / len(ref.values)),
                              histtype="stepfilled", **{**REFERENCE_STYLE, "label": labels[0]})
        h_gen, _, _ = ax.hist(gen.values, bins=edges, weights=np.full(len(gen.values), 1 / max(len(gen.values), 1)),
                              histtype="step", **{**GENERATED_STYLE, "label": labels[1]})
        power = separation_power(ref.values, gen.values, edges)
        ax.set_title(ref.label, fontsize=9)
        ax.legend(fontsize=6, title=f"S = {power:.3g}", title_fontsize=7, loc="best")
        ax.set_ylabel("fraction", fontsize=8)
        ax.tick_params(labelsize=7, labelbottom=False)
        centres = 0.5 * (edges[1:] + edges[:-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(h_ref > 0, h_gen / h_ref, np.nan)
        ax_ratio.step(centres, ratio, where="mid", color=GENERATED_STYLE["color"], linewidth=1)
        ax_ratio.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
        ax_ratio.set_ylim(0.5, 1.5)
        ax_ratio.set_ylabel("gen / ref", fontsize=7)
        ax_ratio.set_xlabel(_axis_label(ref), fontsize=8)
        ax_ratio.tick_params(labelsize=7)
        if ref.scale == "log":
            ax.set_xscale("log")
    if title:
        fig.suptitle(title)
    return fig


def write_plots(reference, generated, geometry, folder, reference_features=None, generated_features=None,
                labels=("reference", "generated"), dpi=90):
    """Write the average showers and every feature group comparison as PNG files into ``folder``.

    Args:
        reference, generated: (incident_energies (N, 1) MeV, showers (N, n_voxels) MeV) pairs.
        geometry: their `CalorimeterGeometry`.
        folder: created if missing; existing files of the same names are replaced.
        reference_features, generated_features: precomputed `HighLevelFeatures` to reuse (optional).
    Returns:
        list of the written paths.
    """
    os.makedirs(folder, exist_ok=True)
    if reference_features is None:
        reference_features = compute_features(*reference, geometry)
    if generated_features is None:
        generated_features = compute_features(*generated, geometry)
    paths = []

    def save(fig, name):
        path = os.path.join(folder, f"{name}.png")
        fig.savefig(path, dpi=dpi)
        paths.append(path)

    for label, (_, showers) in zip(labels, (reference, generated)):
        save(plot_average_shower(showers, geometry, title=f"average {label} shower"), f"average_shower_{label}")
    groups = {}
    for dist in feature_distributions(reference_features):
        groups.setdefault(dist.group, []).append(dist)
    generated_dists = feature_distributions(generated_features)
    for group, dists in groups.items():
        save(plot_feature_comparison(dists, generated_dists, title=group, labels=labels), group)
    return paths
