"""``caloedu bench encoder``: forward + backward time of a caloedu TransformerEncoderBlock against the
same block written in plain torch (same weights, same device), and their ratio (target <= 1.15)."""

import statistics
import time


def register(subparsers):
    parser = subparsers.add_parser("encoder", help="time a caloedu encoder block against plain torch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--norm-first", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.set_defaults(func=run)


def plain_torch_block(d_model, heads, d_ff, norm_first):
    """The encoder block in plain torch: the same operations caloedu's block performs."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
            self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
            self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

        def attention(self, x):
            b, t, _ = x.shape
            split = lambda y: y.view(b, t, heads, d_model // heads).transpose(1, 2)  # noqa: E731
            out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
            return self.o(out.transpose(1, 2).reshape(b, t, d_model))

        def ffn(self, x):
            return self.linear2(F.relu(self.linear1(x)))

        def forward(self, x):
            if norm_first:
                x = x + self.attention(self.norm1(x))
                return x + self.ffn(self.norm2(x))
            x = self.norm1(x + self.attention(x))
            return self.norm2(x + self.ffn(x))

    return Block()


def time_forward_backward(step, sync, repeats, warmup):
    """Median seconds of ``step()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args):
    import torch

    import caloedu
    from caloedu.layers import TransformerEncoderBlock

    device = caloedu.runtime.device()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    shape = (args.batch, args.length, args.d_model)
    x = torch.randn(*shape, device=device, requires_grad=True)

    block = TransformerEncoderBlock(args.heads, args.d_ff, norm_first=args.norm_first)
    block(x)
    reference = plain_torch_block(args.d_model, args.heads, args.d_ff, args.norm_first).to(device)

    def keras_step():
        block(x).sum().backward()

    def torch_step():
        reference(x).sum().backward()

    # Interleave the two so drifting machine load hits both alike.
    keras_times, torch_times = [], []
    for _ in range(3):
        keras_times.append(time_forward_backward(keras_step, sync, args.repeats, args.warmup))
        torch_times.append(time_forward_backward(torch_step, sync, args.repeats, args.warmup))
    t_keras, t_torch = min(keras_times), min(torch_times)
    print(caloedu.runtime.device_report())
    print(f"encoder block: batch {args.batch}, length {args.length}, d_model {args.d_model}, heads {args.heads}, "
          f"d_ff {args.d_ff}, {'pre' if args.norm_first else 'post'}-norm; forward + backward")
    print(f"  caloedu (Keras 3, torch backend): {t_keras * 1e3:8.2f} ms")
    print(f"  plain torch:                      {t_torch * 1e3:8.2f} ms")
    print(f"  ratio caloedu / torch:            {t_keras / t_torch:8.3f}  (target <= 1.15)")
    return 0
