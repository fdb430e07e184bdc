"""``caloedu bench flow-matching``: train a FlowMatchingGenerator for a time budget on simulated showers,
then print its training throughput, sampling time per shower (batch 1 and batch 10,000) and quality
(classifier AUC, low and high level, and separation powers) against held-out simulated showers.

    caloedu bench flow-matching --geometry teaching --minutes 10
"""

import time

from caloedu.cli.train import PREPROCESSINGS  # a plain tuple there: `caloedu --help` imports no keras


def register(subparsers):
    parser = subparsers.add_parser("flow-matching", help="train, time and score a flow-matching generator")
    parser.add_argument("--geometry", default="teaching", help="preset or binning .xml (default: teaching)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (default: 10)")
    parser.add_argument("--n-train", type=int, default=100_000, help="simulated training showers (default: 100000)")
    parser.add_argument("--n-test", type=int, default=20_000,
                        help="held-out simulated showers, as many generated (default: 20000)")
    parser.add_argument("--architecture", choices=("mlp", "transformer", "mean-field"), default="mean-field")
    parser.add_argument("--ring-units", type=int, default=64, help="mean-field ring token width")
    parser.add_argument("--global-units", type=int, default=256, help="mean-field global state width")
    parser.add_argument("--preprocessing", default="energy-gap", choices=PREPROCESSINGS)
    parser.add_argument("--logit-alpha", type=float, default=1e-6, help="alpha of the logit preprocessing")
    parser.add_argument("--energy-loss-weight", type=float, default=30.0,
                        help="weight of the u-variables in the CFM loss (energy-* preprocessings)")
    parser.add_argument("--prediction", choices=("velocity", "data"), default="data")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden-units", type=int, default=512, help="MLP width")
    parser.add_argument("--n-blocks", type=int, default=3, help="MLP residual blocks")
    parser.add_argument("--d-model", type=int, default=128, help="transformer width")
    parser.add_argument("--num-blocks", type=int, default=3, help="transformer blocks")
    parser.add_argument("--ema", type=float, default=0.999, help="EMA momentum of the weights (0: off)")
    parser.add_argument("--solver", choices=("euler", "midpoint", "rk4"), default=None,
                        help="ODE solver for sampling (default: the generator's, Euler for --prediction data)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps for sampling (default: the generator's)")
    parser.add_argument("--classifier-size", choices=("small", "calochallenge"), default="small")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, metavar="MODEL.keras", help="also save the trained generator")
    parser.set_defaults(func=run)


def run(args):
    import numpy as np
    import torch

    import caloedu
    from caloedu.data import CalorimeterGeometry, simulate_showers
    from caloedu.evaluation.classifier import classifier_metrics
    from caloedu.evaluation.features import compute_features, feature_distributions
    from caloedu.evaluation.metrics import separation_powers, summarise_by_group
    from caloedu.evaluation.timing import time_per_shower
    from caloedu.generators import FlowMatchingGenerator, TimeBudget

    if args.threads:
        torch.set_num_threads(args.threads)
    caloedu.runtime.set_seed(args.seed)
    geometry = CalorimeterGeometry.from_name_or_path(args.geometry)
    print(caloedu.runtime.device_report())
    start = time.perf_counter()
    train = simulate_showers(geometry, args.n_train, seed=args.seed)
    test = simulate_showers(geometry, args.n_test, seed=args.seed + 1_000_003)
    print(f"simulated {args.n_train} training and {args.n_test} held-out showers ({geometry!r}) "
          f"in {time.perf_counter() - start:.1f} s")

    generator = FlowMatchingGenerator(
        geometry, architecture=args.architecture, preprocessing=args.preprocessing,
        hidden_units=args.hidden_units, n_blocks=args.n_blocks, d_model=args.d_model, num_blocks=args.num_blocks,
        ring_units=args.ring_units, global_units=args.global_units,
        logit_alpha=args.logit_alpha, learning_rate=args.learning_rate, ema_momentum=args.ema or None,
        solver=args.solver, steps=args.steps, energy_loss_weight=args.energy_loss_weight, prediction=args.prediction,
        seed=args.seed,
    )
    budget = TimeBudget(args.minutes)
    start = time.perf_counter()
    history = generator.fit(*train, epochs=100_000, batch_size=args.batch_size, callbacks=[budget], verbose=2)
    seconds = time.perf_counter() - start
    seen = int(generator.optimizer.iterations) * args.batch_size
    print(f"training: {args.architecture}, {args.preprocessing}, {generator.count_params():,} parameters, "
          f"{len(history.history['loss'])} epochs ({seen:,} showers) in {seconds / 60:.1f} min: "
          f"{seen / seconds:,.0f} showers/s, final CFM loss {history.history['loss'][-1]:.4f}")
    if args.save:
        generator.save(args.save)

    options = {"solver": generator.solver, "steps": generator.steps}
    batch = min(10_000, args.n_test)
    start = time.perf_counter()
    generated = generator.sample(test[0], batch_size=batch, seed=args.seed, **options)
    t_batch = (time.perf_counter() - start) / args.n_test  # this run is the batch-10,000 timing itself
    t_one = time_per_shower(lambda e: generator.sample(e, batch_size=1, **options), test[0][:10],
                            batch_size=1, repeats=3) / 1e3
    print(f"sampled {args.n_test} showers ({generator.solver}, {generator.steps} steps); time per shower "
          f"({caloedu.runtime.device().type}): batch 1 {t_one * 1e3:.2f} ms, batch {batch} {t_batch * 1e3:.3f} ms")

    reference_features = compute_features(*test, geometry)
    generated_features = compute_features(test[0], generated, geometry)
    results = classifier_metrics(test, (test[0], generated), geometry, size=args.classifier_size, seed=args.seed,
                                 reference_features=reference_features, generated_features=generated_features)
    for kind, result in results.items():
        print(f"classifier AUC ({kind}-level): {result.auc:.3f}  (JSD {result.jsd:.3f}, best epoch "
              f"{result.best_epoch}/{result.epochs}, {result.n_validation} validation showers)")
    powers = separation_powers(reference_features, generated_features)
    summary = summarise_by_group(powers, feature_distributions(reference_features))
    print("separation powers (mean / max over layers):")
    for group, values in summary.items():
        print(f"  {group:12s} {values['mean']:.4f} / {values['max']:.4f} ({values['worst']})")
    sparsity_ref = float(np.mean(test[1] > 0))
    sparsity_gen = float(np.mean(generated > 0))
    print(f"fraction of voxels hit: simulated {sparsity_ref:.3f}, generated {sparsity_gen:.3f}")
    return 0
