"""``caloedu bench generator --model NAME``: train any registered generator family on simulated showers for a
budget, then print its training throughput, sampling time per shower (batch 1 and batch 10,000), quality
(classifier AUC, low and high level, separation powers) against held-out simulated showers and the family's
``quality_report``: the log-likelihood of the held-out showers for a family with one, a VAE's ELBO and IWAE
bounds and its KL per latent dimension.

    caloedu bench generator --model flow-matching --geometry teaching --minutes 10
    caloedu bench generator --model flow-matching --geometry teaching --showers 1.6e6 --threads 2
    caloedu bench flow-matching --minutes 10          # the same as --model flow-matching

A budget in showers (``--showers``) trains on the same showers with the same schedule on any machine, so its
quality figure reproduces where a wall-clock budget would not. The family's own options (``--model NAME
--help``) default to the library's.
"""

import time


def register(subparsers):
    from caloedu.generators.registry import family_names

    for name, model in (("generator", None), ("flow-matching", "flow-matching")):
        parser = subparsers.add_parser(
            name, add_help=False,
            help="train, time and score a generator family" if model is None
            else "the same as: bench generator --model flow-matching")
        parser.add_argument("-h", "--help", action="store_true", help="show this help (with the family's options)")
        if model is None:
            parser.add_argument("--model", choices=family_names(), default="flow-matching",
                                help="generator family (default: flow-matching)")
        parser.add_argument("--geometry", default="teaching", help="preset or binning .xml (default: teaching)")
        parser.add_argument("--minutes", type=float, default=None,
                            help="training time budget (default: 10, or none when --showers is given)")
        parser.add_argument("--showers", type=float, default=None,
                            help="training budget in showers seen, e.g. 1.6e6 (reproducible on any machine)")
        parser.add_argument("--n-train", type=int, default=100_000, help="simulated training showers (default: 100000)")
        parser.add_argument("--n-test", type=int, default=20_000,
                            help="held-out simulated showers, as many generated (default: 20000)")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="showers per training batch (default: the family's, 256 for most)")
        parser.add_argument("--classifier-protocol", choices=("caloedu", "calochallenge"), default="caloedu",
                            help="caloedu (default; stricter, not comparable with published AUCs) or calochallenge "
                                 "(evaluate.py exactly; comparable with published AUCs, slow on a CPU)")
        parser.add_argument("--classifier-size", choices=("small", "large"), default="small",
                            help="network of the caloedu protocol (default: small)")
        parser.add_argument("--threads", type=int, default=None,
                            help="torch CPU threads (default: the cores not busy with other work, at least 1)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--compare-sampling", choices=("flow-matching", "none"), default="flow-matching",
                            help="also time flow matching's default sampler on this machine, in this run, beside "
                                 "another family's (default: flow-matching; its network's speed does not depend "
                                 "on training, so an untrained one is timed)")
        parser.add_argument("--save", default=None, metavar="MODEL.keras", help="also save the trained generator")
        parser.set_defaults(func=run, family_options=True, parser=parser)
        if model is not None:
            parser.set_defaults(model=model)


def run(args):
    from caloedu.cli.family_options import family_arguments
    from caloedu.cli.paths import save_atomically
    from caloedu.cli.train import epochs_run
    from caloedu.generators.registry import get_family

    family = get_family(args.model)
    options = family_arguments(args, family.options_class, f"{args.model} options",
                               f"{args.parser.prog} --model {args.model}")
    if options is None:  # --help
        return 0
    if args.save:
        from caloedu.cli.paths import check_output

        if not args.save.endswith(".keras"):
            raise ValueError(f"--save must name a .keras file, got {args.save}.")
        check_output(args.save, "--save")

    import caloedu
    from caloedu.data import CalorimeterGeometry, simulate_showers
    from caloedu.generators import TrainingBudget

    threads = caloedu.runtime.set_threads(args.threads)
    caloedu.runtime.set_seed(args.seed)
    minutes = args.minutes if args.minutes is not None or args.showers is not None else 10.0
    budget = TrainingBudget(minutes=minutes, showers=args.showers)
    geometry = CalorimeterGeometry.from_name_or_path(args.geometry)
    generator = family(geometry, **{"seed": args.seed, **options})
    print(caloedu.runtime.device_report())
    print(caloedu.runtime.describe_threads(threads))
    start = time.perf_counter()
    train = simulate_showers(geometry, args.n_train, seed=args.seed)
    test = simulate_showers(geometry, args.n_test, seed=args.seed + 1_000_003)
    print(f"simulated {args.n_train} training and {args.n_test} held-out showers ({geometry!r}) "
          f"in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    history = generator.fit(*train, epochs=100_000, batch_size=args.batch_size or generator.default_batch_size,
                            callbacks=[budget], verbose=2)
    seconds = time.perf_counter() - start
    seen = int(generator.showers_seen)
    final = ", ".join(f"{name} {values[-1]:.4f}" for name, values in history.history.items())
    limits = []
    if minutes is not None:
        limits.append(f"{minutes:g} min")
    if args.showers is not None:
        limits.append(f"{args.showers:.3g} showers")
    print(f"training ({args.model}, budget {' and '.join(limits)}): {generator.count_trainable_params():,} parameters, "
          f"{epochs_run(seen, args.n_train)} epochs ({seen:,} showers) in {seconds / 60:.1f} min: "
          f"{seen / seconds:,.0f} showers/s; final {final}")
    if args.save:
        save_atomically(generator.save, args.save)
    report_sampling_and_quality(generator, test, args)
    return 0


def report_sampling_and_quality(generator, test, args):
    """Sampling time at batch 1 and at min(10,000, N), classifier AUCs, separation powers, log-likelihood."""
    import numpy as np

    import caloedu
    from caloedu.cli.progress import ProgressBar
    from caloedu.evaluation.classifier import classifier_metrics
    from caloedu.evaluation.features import compute_features, feature_distributions
    from caloedu.evaluation.metrics import separation_powers, summarise_by_group
    from caloedu.evaluation.timing import time_per_shower

    geometry, n_test = generator.geometry, len(test[0])
    batch = min(10_000, n_test)
    start = time.perf_counter()
    generated = generator.sample(test[0], batch_size=batch, seed=args.seed, progress=ProgressBar("sampling"))
    t_batch = (time.perf_counter() - start) / n_test  # this run is the batch-10,000 timing itself
    t_one = time_per_shower(lambda e: generator.sample(e, batch_size=1), test[0][:10], batch_size=1, repeats=3) / 1e3
    print(f"sampled {n_test} showers; time per shower ({caloedu.runtime.device().type}): "
          f"batch 1 {t_one * 1e3:.2f} ms, batch {batch} {t_batch * 1e3:.3f} ms")
    # the network's share: the same sampling without undoing the representation (for point clouds: without
    # binning the hits into voxels)
    f_one = time_per_shower(lambda e: generator.sample_features(e, batch_size=1), test[0][:10], batch_size=1,
                            repeats=3)
    f_batch = time_per_shower(lambda e: generator.sample_features(e, batch_size=batch), test[0][:batch],
                              batch_size=batch, repeats=1, warmup=0)
    print(f"without undoing the {generator.representation.name} representation"
          f"{' (voxelisation)' if generator.representation.kind == 'point-cloud' else ''}: batch 1 {f_one:.2f} ms, "
          f"batch {batch} {f_batch:.3f} ms per shower")
    if args.compare_sampling != "none" and generator.family != args.compare_sampling:
        report_reference_sampling(args.compare_sampling, geometry, test, batch, t_one, t_batch)

    reference_features = compute_features(*test, geometry)
    generated_features = compute_features(test[0], generated, geometry)
    for kind in ("low", "high"):
        bar = ProgressBar(f"classifier, {kind}-level", unit="epochs")
        result = classifier_metrics(test, (test[0], generated), geometry, inputs=(kind,), size=args.classifier_size,
                                    seed=args.seed, protocol=args.classifier_protocol, progress=bar,
                                    reference_features=reference_features,
                                    generated_features=generated_features)[kind]
        bar.finish()
        print(f"classifier AUC ({kind}-level, {result.protocol} protocol): {result.auc:.3f}  (JSD {result.jsd:.3f}, "
              f"best epoch {result.best_epoch}/{result.epochs}, {result.n_validation} validation showers)")
    powers = separation_powers(reference_features, generated_features)
    summary = summarise_by_group(powers, feature_distributions(reference_features))
    print("separation powers (mean / max over layers):")
    for group, values in summary.items():
        print(f"  {group:12s} {values['mean']:.4f} / {values['max']:.4f} ({values['worst']})")
    print(f"fraction of voxels hit: simulated {np.mean(test[1] > 0):.3f}, generated {np.mean(generated > 0):.3f}")
    for line in generator.quality_report(*test):
        print(line)


def report_reference_sampling(family_name, geometry, test, batch, t_one, t_batch):
    """Time another family's default sampler (untrained: its speed does not depend on its weights) at batch 1
    and ``batch`` on the same machine, and print how many times slower per shower it is than this one."""
    from caloedu.evaluation.timing import time_per_shower
    from caloedu.generators.registry import get_family

    reference = get_family(family_name)(geometry, seed=0)
    reference.preprocess(*test)  # fits its representation, what sampling needs
    energies = test[0][:batch]
    ref_one = time_per_shower(lambda e: reference.sample(e, batch_size=1), test[0][:10], batch_size=1, repeats=3)
    ref_batch = time_per_shower(lambda e: reference.sample(e, batch_size=batch), energies, batch_size=batch,
                                repeats=1, warmup=0)
    print(f"{family_name}'s default sampler on this machine (untrained network, same speed): batch 1 "
          f"{ref_one:.2f} ms, batch {batch} {ref_batch:.3f} ms per shower; this family is "
          f"{ref_one / (t_one * 1e3):.1f}x and {ref_batch / (t_batch * 1e3):.1f}x faster")
