"""The evaluation plots: ratio panels with off-scale arrows and statistical bands, visible under/overflow,
outlier-proof x ranges, axis labels that define the feature, readable sizes and one page per feature group.

Kept fast: small simulated samples, figures built without rendering where the check allows it, and the
one `write_plots` call (which renders every page) runs on a one-layer geometry.
"""

import os
import struct

import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, ShowerSimulator
from caloedu.data.geometry import TEACHING_R_EDGES
from caloedu.evaluation import compute_features, feature_distributions
from caloedu.evaluation.features import FeatureDistribution
from caloedu.evaluation.histograms import (
    SampleHistogram,
    display_bin_edges,
    display_range,
    off_scale,
    ratio_with_errors,
)
from caloedu.evaluation.plots import (
    FEATURE_AXES,
    GENERATED_COLOR,
    _Panel,
    feature_pages,
    plot_feature_comparison,
    write_plots,
)

MIN_WIDTH_PX, MIN_HEIGHT_PX = 600, 400


def simulate(geometry, n, seed):
    return ShowerSimulator(geometry).simulate(n=n, seed=seed)


@pytest.fixture(scope="module")
def teaching():
    return CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def teaching_features(teaching):
    reference = simulate(teaching, 300, seed=11)
    generated = simulate(teaching, 300, seed=12)
    return compute_features(*reference, teaching), compute_features(*generated, teaching)


@pytest.fixture(scope="module")
def e_ratio(teaching_features):
    """The simulated E_tot / E_inc of the reference sample, as a `FeatureDistribution`."""
    return next(d for d in feature_distributions(teaching_features[0]) if d.name == "E_ratio")


def with_values(dist, values):
    return FeatureDistribution(dist.name, np.asarray(values, dtype=np.float64), dist.unit, dist.scale, dist.n_bins,
                               dist.label, dist.group, dist.layer)


def panel_axes(fig):
    """[(histogram axes, ratio axes)] of a comparison page: plot_feature_comparison adds them in pairs."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    return list(zip(axes[0::2], axes[1::2]))


def png_size(path):
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


# --- the numbers behind the plots -----------------------------------------------------------------

def test_poisson_errors_and_ratio():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    reference = SampleHistogram.of([0.5] * 16 + [1.5] * 4 + [-1.0] * 4, edges)  # 4 in the underflow
    generated = SampleHistogram.of([0.5] * 9 + [2.5] * 1 + [7.0] * 2, edges)  # 2 in the overflow
    assert (reference.underflow, reference.overflow, reference.total) == (4, 0, 24)
    np.testing.assert_allclose(reference.errors, np.sqrt([16, 4, 0]) / 24)
    ratio = ratio_with_errors(reference, generated)  # bins: underflow, 3 inner, overflow
    np.testing.assert_allclose(ratio["ratio"][1], (9 / 12) / (16 / 24))
    np.testing.assert_allclose(ratio["ratio_error"][1], ratio["ratio"][1] / 3)  # r / sqrt(N_gen)
    np.testing.assert_allclose(ratio["reference_band"][1], 1 / 4)  # 1 / sqrt(N_ref)
    assert ratio["ratio"][3] == np.inf and ratio["ratio"][4] == np.inf  # generated only: off the top
    assert ratio["ratio"][0] == 0 and ratio["ratio"][2] == 0  # reference only
    above, below = off_scale(ratio["ratio"], (0.5, 1.5))
    np.testing.assert_array_equal(above, [False, False, False, True, True])
    np.testing.assert_array_equal(below, [True, False, True, False, False])


def test_x_range_ignores_a_single_huge_outlier(e_ratio):
    generated = np.append(e_ratio.values[:-1], 1e9)
    low, high = display_range(e_ratio.values, generated)
    assert high < 2.0 and low > 0.3, (low, high)
    fig = plot_feature_comparison([e_ratio], [with_values(e_ratio, generated)])
    ax, _ = panel_axes(fig)[0]
    assert ax.get_xlim()[1] < 2.0


def test_lattice_feature_gets_aligned_bins():
    rng = np.random.default_rng(0)
    values = rng.integers(20, 70, size=500) / 80  # a sparsity: multiples of 1/80
    edges = display_bin_edges(values, values, n_bins=20)
    counts, _ = np.histogram(values, edges)
    steps = np.round(np.diff(edges) * 80, 6)
    assert len(set(steps)) == 1 and steps[0] == int(steps[0])  # every bin holds the same number of steps
    np.testing.assert_allclose((edges * 80) % 1, 0.5)  # edges halfway between lattice points
    assert counts.sum() == values.size


# --- the figures --------------------------------------------------------------------------------

def test_off_scale_ratio_gets_an_arrow(e_ratio):
    generated = with_values(e_ratio, e_ratio.values * 1.08)  # an 8 % energy scale: ratios far off in the tails
    fig = plot_feature_comparison([e_ratio], [generated])
    _, ax_ratio = panel_axes(fig)[0]
    low, high = ax_ratio.get_ylim()
    arrows = {line.get_gid(): line for line in ax_ratio.get_lines() if line.get_gid() in ("ratio_above", "ratio_below")}
    assert "ratio_above" in arrows and arrows["ratio_above"].get_marker() == "^"
    # one arrow for every bin whose ratio is off the scale, drawn inside the panel at its edge
    panel = _Panel(e_ratio, generated)  # the panel's numbers, to compare with what is drawn
    above, below = off_scale(panel.ratio["ratio"][panel.keep], (low, high))
    assert len(arrows["ratio_above"].get_xdata()) == above.sum() > 0
    assert (len(arrows["ratio_below"].get_xdata()) if "ratio_below" in arrows else 0) == below.sum()
    assert all(0 < y < 1 for line in arrows.values() for y in line.get_ydata())  # axes fractions: visible


def test_generated_sample_entirely_above_the_range_shows_as_overflow(e_ratio):
    n = len(e_ratio.values)
    far = with_values(e_ratio, e_ratio.values + 50.0)  # nowhere near the reference
    fig = plot_feature_comparison([e_ratio], [far])
    ax, _ = panel_axes(fig)[0]
    assert ax.get_xlim()[1] < 5.0  # the range stays on the reference ...
    notes = [text.get_text() for text in ax.texts if text.get_gid() == "overflow_note"]
    assert notes and "generated 100%" in notes[0] and f"({n})" in notes[0]  # ... the count is written
    # ... and the generated histogram is a full-height bar in the overflow bin at the right edge
    steps = [line for line in ax.get_lines() if line.get_color() == GENERATED_COLOR]
    x, y = steps[0].get_xdata(), steps[0].get_ydata()
    assert y[-2] == pytest.approx(1.0) and x[-1] == pytest.approx(ax.get_xlim()[1])
    assert np.all(y[:-2] <= ax.get_ylim()[0])  # nothing inside the range


def test_sparsity_page_axes_state_the_definition(teaching_features):
    reference, generated = teaching_features
    pages = feature_pages(reference)
    fig = plot_feature_comparison(pages["sparsity"], feature_distributions(generated))
    definition = FEATURE_AXES["sparsity"]["definition"]
    labels = [" ".join(ax.get_xlabel().split()) for ax in fig.axes if ax.get_xlabel()]
    assert len(labels) == len(pages["sparsity"]) == 12
    assert all(definition in label for label in labels), labels[0]
    width, height = fig.get_size_inches() * 100
    assert width >= MIN_WIDTH_PX and height >= MIN_HEIGHT_PX


def test_sparsity_label_matches_what_compute_features_computes(teaching):
    """The axis says what the feature is: 20 of the 80 voxels of layer 0 hit gives 0.75 when sparsity is
    the empty fraction (CaloChallenge), 0.25 when it is the occupied one."""
    showers = np.zeros((1, teaching.n_voxels), dtype=np.float32)
    showers[0, teaching.layer_slice(0)][:20] = 1.0
    sparsity = compute_features(np.array([[1e4]]), showers, teaching).sparsity[0, 0]
    definition = FEATURE_AXES["sparsity"]["definition"]
    assert sparsity == pytest.approx(0.75 if "empty" in definition else 0.25), definition


def test_write_plots_one_readable_page_per_feature_group(tmp_path):
    # one layer instead of twelve keeps the rendering of every page short (the twelve-panel pages are
    # rendered by tests/test_evaluation_cli.py; their layout is checked above without rendering)
    geometry = CalorimeterGeometry([TEACHING_R_EDGES], 10, name="one layer", layer_thickness_x0=28.8)
    reference, generated = simulate(geometry, 200, seed=1), simulate(geometry, 200, seed=2)
    paths = write_plots(reference, generated, geometry, tmp_path / "plots")
    groups = list(feature_pages(compute_features(*reference, geometry)))
    expected = [f"{group}.png" for group in groups] + ["average_shower.png"]
    assert [os.path.basename(path) for path in paths] == expected
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(expected)
    for path in paths:
        width, height = png_size(path)
        assert width >= MIN_WIDTH_PX and height >= MIN_HEIGHT_PX, (path, width, height)
