"""Fixed-step ODE solvers for sampling flows: dx/dt = v(x, t), integrated from ``t_start`` to ``t_end``.

Flow matching samples by integrating the learned velocity from noise (t = 1) to data (t = 0). Each
step works on the whole batch at once, with a handful of tensor operations, because on the torch
backend every Keras call costs microseconds and a per-shower loop would cost seconds.

Global error after ``steps`` steps of size h = |t_end - t_start| / steps:
  Euler O(h) (1 velocity evaluation per step), midpoint O(h^2) (2), RK4 O(h^4) (4).
The functions only add and scale ``x``, so they work on numpy arrays and on torch tensors alike.
"""

import numpy as np

SOLVERS = ("euler", "midpoint", "rk4")
EVALUATIONS_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}


def euler_step(velocity, x, t, dt):
    return x + dt * velocity(x, t)


def midpoint_step(velocity, x, t, dt):
    half = x + 0.5 * dt * velocity(x, t)
    return x + dt * velocity(half, t + 0.5 * dt)


def rk4_step(velocity, x, t, dt):
    k1 = velocity(x, t)
    k2 = velocity(x + 0.5 * dt * k1, t + 0.5 * dt)
    k3 = velocity(x + 0.5 * dt * k2, t + 0.5 * dt)
    k4 = velocity(x + dt * k3, t + dt)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


_STEPS = {"euler": euler_step, "midpoint": midpoint_step, "rk4": rk4_step}


def check_solver(solver, steps):
    if solver not in _STEPS:
        raise ValueError(f"Unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")


def integrate(velocity, x, steps, solver="midpoint", t_start=1.0, t_end=0.0, return_path=False):
    """Integrate dx/dt = velocity(x, t) from ``t_start`` to ``t_end`` in ``steps`` equal steps (a negative
    step dt = (t_end - t_start) / steps when time runs down, as when sampling from noise at t = 1 to data).

    Args:
        velocity: ``velocity(x, t) -> dx/dt`` with ``x`` (B, D) and ``t`` a Python float.
        x: the state at ``t_start``, (B, D) array or tensor.
        steps: number of steps; solver: 'euler', 'midpoint' or 'rk4'.
        return_path: also return every intermediate state.
    Returns:
        the state at ``t_end``, like ``x``; with ``return_path``, all states stacked, (steps + 1, B, D).
    """
    check_solver(solver, steps)
    step = _STEPS[solver]
    dt = (float(t_end) - float(t_start)) / int(steps)
    path = [x]
    for i in range(int(steps)):
        x = step(velocity, x, float(t_start) + i * dt, dt)
        if return_path:
            path.append(x)
    if not return_path:
        return x
    if isinstance(x, np.ndarray):
        return np.stack(path)
    import torch

    return torch.stack(path)
