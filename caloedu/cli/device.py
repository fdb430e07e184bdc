"""``caloedu device``: what this machine computes on."""


def register(subparsers):
    parser = subparsers.add_parser("device", help="print the device report (CPU or CUDA, with names)")
    parser.set_defaults(func=run)


def run(args):
    from caloedu import runtime

    print(runtime.device_report())
