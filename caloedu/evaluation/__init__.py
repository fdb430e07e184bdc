"""Evaluation of generated showers, following the CaloChallenge protocol: high-level features,
separation powers, the classifier metric (AUC, JSD), plots and generation time.

Plots and the classifier import matplotlib and keras when first used, so importing this package stays light.
"""

from caloedu.evaluation.classifier import (
    CLASSIFIER_SIZES,
    PROTOCOLS,
    ClassifierResult,
    adapt_classifier,
    build_classifier,
    classifier_metric,
    classifier_metrics,
)
from caloedu.evaluation.features import (
    FeatureDistribution,
    HighLevelFeatures,
    centre_and_width,
    compute_features,
    feature_distributions,
    high_level_classifier_inputs,
    low_level_classifier_inputs,
    voxel_spectrum,
)
from caloedu.evaluation.metrics import (
    histogram_with_overflow,
    incident_energy_test,
    jensen_shannon_divergence,
    jsd_from_bce,
    reference_bin_edges,
    separation_power,
    separation_power_from_counts,
    separation_powers,
    summarise_by_group,
)
from caloedu.evaluation.timing import time_per_shower


def __getattr__(name):
    # matplotlib loads only when a plot is asked for.
    if name in ("plot_average_shower", "plot_feature_comparison", "write_plots", "plots"):
        import importlib

        plots = importlib.import_module("caloedu.evaluation.plots")
        return plots if name == "plots" else getattr(plots, name)
    raise AttributeError(f"module 'caloedu.evaluation' has no attribute {name!r}")


__all__ = [
    "compute_features", "HighLevelFeatures", "FeatureDistribution", "feature_distributions", "voxel_spectrum",
    "high_level_classifier_inputs", "low_level_classifier_inputs",
    "separation_power", "separation_power_from_counts", "separation_powers", "centre_and_width",
    "jensen_shannon_divergence", "jsd_from_bce",
    "reference_bin_edges", "histogram_with_overflow", "summarise_by_group",
    "classifier_metric", "classifier_metrics", "ClassifierResult", "CLASSIFIER_SIZES",
    "PROTOCOLS", "incident_energy_test",
    "build_classifier", "adapt_classifier",
    "time_per_shower",
    "plot_average_shower", "plot_feature_comparison", "write_plots",
]
