"""``caloedu evaluate REFERENCE.h5 GENERATED.h5``: the CaloChallenge evaluation of generated showers.

Prints the separation power of every high-level feature (a summary per feature group, or every layer
with ``--per-layer``) and the classifier metric (AUC, JSD) on low- and high-level inputs, by caloedu's
protocol or, with ``--protocol calochallenge``, the CaloChallenge's (the one published AUCs use); ``--json``
prints all of it as one JSON object instead. Plots go to ``<generated>_plots/`` unless told otherwise.
"""

import json
import os
import sys
import warnings

# Below this p-value the two files' incident energies are taken to differ (a warning, not an error).
ENERGY_TEST_P_VALUE = 1e-3


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="compare generated showers with reference showers (CaloChallenge metrics)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("reference", help="CaloChallenge HDF5 file of reference showers (e.g. from `caloedu simulate`)")
    parser.add_argument("generated", help="CaloChallenge HDF5 file of generated showers, same geometry")
    parser.add_argument("--geometry", help="preset (ds1-photons, ds1-pions, ds2, ds3, teaching) or binning .xml; "
                        "default: the preset whose voxel count fits the files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plots", metavar="DIR", help="folder for the plots (default: <generated>_plots next to it)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--classifier", choices=("low", "high", "both", "none"), default="both",
                        help="classifier metric on low-level (voxels), high-level (features) inputs, both, or none")
    parser.add_argument("--protocol", choices=("caloedu", "calochallenge"), default="caloedu",
                        help="caloedu (default): standardised inputs, stricter, NOT comparable with published AUCs; "
                             "calochallenge: CaloChallenge's evaluate.py exactly (3 x 2048 units, 50 epochs: slow "
                             "on a CPU), comparable with published AUCs")
    parser.add_argument("--size", choices=("small", "large"), default="small",
                        help="network of the caloedu protocol: small (CPU, minutes) or large (3 x 2048 units, "
                             "50 epochs)")
    parser.add_argument("--epochs", type=int, help="maximum classifier epochs (default: from --size and fast mode)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the classifier's splits and weights")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the cores not busy with other "
                        "work, at least 1)")
    parser.add_argument("--trust-units", action="store_true",
                        help="accept energies that look like GeV (incident energies below 100 MeV, or an unusual "
                             "E_dep/E_inc); caloedu works in MeV")
    parser.add_argument("--per-layer", action="store_true", help="print the separation power of every layer")
    parser.set_defaults(func=run)


def _progress(message):
    # Progress goes to stderr so that --json output on stdout stays parseable.
    print(f"caloedu evaluate: {message}", file=sys.stderr, flush=True)


def _geometry_for(args, n_voxels):
    from caloedu.data import PRESETS, CalorimeterGeometry

    if args.geometry:
        geometry = CalorimeterGeometry.from_name_or_path(args.geometry)
        if geometry.n_voxels != n_voxels:
            raise ValueError(
                f"the files hold {n_voxels} voxels per shower, but geometry '{geometry.name}' has "
                f"{geometry.n_voxels}; pass the --geometry the showers were made in."
            )
        return geometry
    for name in PRESETS:
        geometry = CalorimeterGeometry.preset(name)
        if geometry.n_voxels == n_voxels:
            return geometry
    raise ValueError(f"no geometry preset has {n_voxels} voxels per shower; pass --geometry FILE.xml.")


def _default_plot_folder(generated_path):
    stem, _ = os.path.splitext(os.path.abspath(generated_path))
    return f"{stem}_plots"


def check_paths(args):
    """Inputs readable, the plot folder writable (or creatable) and not an input: before any work."""
    from caloedu.cli.paths import check_input_file, check_output_folder

    check_input_file(args.reference, "REFERENCE")
    check_input_file(args.generated, "GENERATED")
    if not args.no_plots:
        check_output_folder(args.plots or _default_plot_folder(args.generated), "--plots",
                            inputs=[("REFERENCE", args.reference), ("GENERATED", args.generated)])


def evaluate_files(args):
    """Run the evaluation described by the parsed ``args`` (whose paths `check_paths` has checked); returns the
    results as a JSON-ready dict."""
    from caloedu.cli.progress import ProgressBar
    from caloedu.data import load_showers
    from caloedu.evaluation import (
        PROTOCOLS,
        classifier_metrics,
        compute_features,
        feature_distributions,
        incident_energy_test,
        separation_powers,
        summarise_by_group,
    )

    reference = load_showers(args.reference, check_units=not args.trust_units)
    generated = load_showers(args.generated, check_units=not args.trust_units)
    n_ref, n_gen = reference[1].shape[1], generated[1].shape[1]
    if n_ref != n_gen:
        raise ValueError(
            f"{args.reference} has {n_ref} voxels per shower but {args.generated} has {n_gen}: "
            "the files come from different geometries."
        )
    geometry = _geometry_for(args, n_ref)
    _progress(f"{len(reference[1])} reference and {len(generated[1])} generated showers, geometry '{geometry.name}'")
    energy_test = incident_energy_test(reference[0], generated[0])
    if energy_test["p_value"] < ENERGY_TEST_P_VALUE:
        warnings.warn(
            f"the incident energies of {args.generated} and {args.reference} are not distributed alike (two-sample "
            f"Kolmogorov-Smirnov test: D = {energy_test['statistic']:.3f}, p = {energy_test['p_value']:.2g}); every "
            "feature depends on E_inc, so generate with `caloedu sample --energies-from REFERENCE.h5`.")

    ref_features = compute_features(*reference, geometry)
    gen_features = compute_features(*generated, geometry)
    powers = separation_powers(ref_features, gen_features)
    results = {
        "reference": os.path.abspath(args.reference),
        "generated": os.path.abspath(args.generated),
        "geometry": geometry.name,
        "n_reference": len(reference[1]),
        "n_generated": len(generated[1]),
        "incident_energy_test": {"test": "two-sample Kolmogorov-Smirnov", **energy_test},
        "separation_power": powers,
        "separation_power_by_group": summarise_by_group(powers, feature_distributions(ref_features)),
        "classifier_protocol": {"name": args.protocol, "description": PROTOCOLS[args.protocol]},
        "classifier": {},
        "plots": [],
    }
    inputs = {"both": ("low", "high"), "none": ()}.get(args.classifier, (args.classifier,))
    network = "CaloChallenge" if args.protocol == "calochallenge" else args.size
    for kind in inputs:
        _progress(f"training the {network} classifier on {kind}-level inputs ({args.protocol} protocol)")
        bar = ProgressBar(f"classifier, {kind}-level", unit="epochs")
        result = classifier_metrics(reference, generated, geometry, inputs=(kind,), reference_features=ref_features,
                                    generated_features=gen_features, size=args.size, epochs=args.epochs,
                                    seed=args.seed, protocol=args.protocol, progress=bar)[kind]
        bar.finish()
        results["classifier"][kind] = result.to_dict()
    if not args.no_plots:
        from caloedu.evaluation.plots import write_plots

        folder = args.plots or _default_plot_folder(args.generated)
        _progress(f"writing plots to {folder}")
        results["plots"] = write_plots(reference, generated, geometry, folder, ref_features, gen_features)
    return results


def format_report(results, per_layer=False):
    """The results as a readable text table."""
    lines = [
        f"reference: {results['reference']} ({results['n_reference']} showers)",
        f"generated: {results['generated']} ({results['n_generated']} showers)",
        f"geometry:  {results['geometry']}",
        "",
        "separation power (0 = identical, 1 = disjoint)",
    ]
    if per_layer:
        lines.append(f"  {'feature':<16} {'S':>8}")
        lines += [f"  {name:<16} {value:8.4f}" for name, value in results["separation_power"].items()]
    else:
        lines.append(f"  {'feature':<14} {'layers':>6} {'mean S':>8} {'max S':>8}  worst")
        for group, summary in results["separation_power_by_group"].items():
            worst = summary["worst"] if summary["n"] > 1 else ""
            lines.append(f"  {group:<14} {summary['n']:>6} {summary['mean']:8.4f} {summary['max']:8.4f}  {worst}")
    test = results["incident_energy_test"]
    lines.insert(3, f"E_inc:     same distribution? Kolmogorov-Smirnov D = {test['statistic']:.3f}, "
                    f"p = {test['p_value']:.2g}")
    if results["classifier"]:
        protocol = results["classifier_protocol"]
        lines += ["", "classifier metric (AUC 0.5 = indistinguishable; JSD = (ln 2 - BCE) / ln 2)",
                  f"protocol {protocol['name']}: {protocol['description']}",
                  f"  {'inputs':<10} {'AUC':>6} {'JSD':>7} {'epochs':>7} {'best':>5} {'train':>7} {'time':>7}"]
        for kind, result in results["classifier"].items():
            lines.append(
                f"  {kind + '-level':<10} {result['auc']:6.3f} {result['jsd']:7.3f} {result['epochs']:7d} "
                f"{result['best_epoch']:5d} {result['n_train']:7d} {result['seconds']:6.1f}s"
            )
    if results["plots"]:
        lines += ["", f"{len(results['plots'])} plots in {os.path.dirname(results['plots'][0])}"]
    return "\n".join(lines)


def run(args):
    from caloedu import runtime

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}.")
    if args.no_plots and args.plots:
        raise ValueError("Give --plots DIR or --no-plots, not both.")
    check_paths(args)
    threads = runtime.set_threads(args.threads)
    if args.classifier != "none":
        _progress(runtime.describe_threads(threads))
    results = evaluate_files(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_report(results, per_layer=args.per_layer))
    return 0
