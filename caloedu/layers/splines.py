"""Monotone rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows"), the element-wise map of
a spline coupling block, with identity tails outside [-bound, bound] (as CaloINN).

Inside the interval, K bins of widths w_k and heights h_k join the knots (x_k, y_k); the derivatives at the
inner knots are d_k > 0 and 1 at both ends, so the map joins the identity tails smoothly. In bin k, with
theta = (x - x_k) / w_k in [0, 1] and s_k = h_k / w_k,

    y = y_k + h_k (s_k theta^2 + d_k theta (1 - theta)) / (s_k + (d_{k+1} + d_k - 2 s_k) theta (1 - theta)),

monotone for any positive parameters, and its inverse is the root of a quadratic in theta (taken in the
numerically stable form 2c / (-b - sqrt(b^2 - 4ac))). Every value is computed on inputs clamped into the
interval and then chosen with ``where``, so points outside it (the tails) never send NaN or inf through the
gradients (the failures reported in nflows #23 / #87 and BayesFlow #227 / #721).

Shapes: x (..., D) and parameters (..., D, 3K - 1): K widths, K heights, K - 1 inner derivatives, unnormalised.
"""

import math

from keras import ops

from caloedu.layers.attention import stable_softmax

MIN_BIN_WIDTH = 1e-3  # of the interval's width, so no bin collapses
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
_SOFTPLUS_ONE = math.log(math.expm1(1.0))  # softplus(this) = 1: zero parameters give the identity map


def spline_parameter_count(n_bins):
    """Unnormalised parameters per feature: K widths, K heights, K - 1 inner derivatives."""
    return 3 * n_bins - 1


def _knots(unnormalised, bound, minimum):
    """(..., K) unnormalised -> bin sizes (..., K) and knot positions (..., K + 1) from -bound to bound."""
    n_bins = ops.shape(unnormalised)[-1]
    # the written-out softmax: torch's own kernel over so short an axis (K bins) is about 4x slower on a CPU
    sizes = minimum + (1.0 - minimum * n_bins) * stable_softmax(unnormalised)
    inner = 2.0 * bound * ops.cumsum(sizes[..., :-1], axis=-1) - bound
    edge = ops.full_like(inner[..., :1], bound)
    # the end knots are -bound and bound exactly, so rounding cannot leave a gap before a tail
    knots = ops.concatenate([-edge, inner, edge], axis=-1)
    return knots[..., 1:] - knots[..., :-1], knots


def _spline_pieces(parameters, n_bins, bound):
    # one split rather than three slices: the gradient of a slice fills a zero tensor of the parameters' size
    raw_widths, raw_heights, raw_derivatives = ops.split(parameters, [n_bins, 2 * n_bins], axis=-1)
    widths, x_knots = _knots(raw_widths, bound, MIN_BIN_WIDTH)
    heights, y_knots = _knots(raw_heights, bound, MIN_BIN_HEIGHT)
    inner = MIN_DERIVATIVE + (1.0 - MIN_DERIVATIVE) * ops.softplus(raw_derivatives + _SOFTPLUS_ONE)
    ones = ops.ones_like(inner[..., :1])
    derivatives = ops.concatenate([ones, inner, ones], axis=-1)  # (..., K + 1): 1 at both ends (identity tails)
    return widths, x_knots, heights, y_knots, derivatives


def _gather(values, index):
    return ops.squeeze(ops.take_along_axis(values, index[..., None], axis=-1), axis=-1)


def _bin_index(knots, values):
    """Index k of the bin [knots_k, knots_{k+1}) holding each value (clamped into [0, K - 1])."""
    n_bins = ops.shape(knots)[-1] - 1
    below = ops.sum(ops.cast(values[..., None] >= knots[..., 1:-1], "int32"), axis=-1)
    return ops.clip(below, 0, n_bins - 1)


def rational_quadratic_spline(x, parameters, bound=5.0, inverse=False):
    """The spline (or its inverse) applied element-wise, and log |dy/dx| (of the direction applied).

    Args:
        x: (..., D) inputs (outputs of the forward map when ``inverse``).
        parameters: (..., D, 3K - 1) unnormalised widths, heights and inner derivatives.
        bound: the spline acts on [-bound, bound]; outside it the map is the identity.
        inverse: apply the inverse map.
    Returns:
        (y (..., D), log_abs_det (..., D)): the log-derivative of the map applied, element-wise (0 in the tails).
    """
    n_bins = (ops.shape(parameters)[-1] + 1) // 3
    widths, x_knots, heights, y_knots, derivatives = _spline_pieces(parameters, n_bins, bound)
    inside = (x > -bound) & (x < bound)
    clamped = ops.clip(x, -bound, bound)
    k = _bin_index(y_knots if inverse else x_knots, clamped)
    x_k, w_k = _gather(x_knots, k), _gather(widths, k)
    y_k, h_k = _gather(y_knots, k), _gather(heights, k)
    d_k, d_k1 = _gather(derivatives, k), _gather(derivatives, k + 1)
    s_k = h_k / w_k
    curvature = d_k1 + d_k - 2.0 * s_k
    if inverse:
        dy = clamped - y_k
        a = h_k * (s_k - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -s_k * dy
        discriminant = ops.maximum(b * b - 4.0 * a * c, 0.0)
        theta = ops.clip(2.0 * c / (-b - ops.sqrt(discriminant)), 0.0, 1.0)
        out = theta * w_k + x_k
    else:
        theta = (clamped - x_k) / w_k
        out = y_k + h_k * (s_k * theta**2 + d_k * theta * (1.0 - theta)) / (s_k + curvature * theta * (1.0 - theta))
    between = theta * (1.0 - theta)
    denominator = s_k + curvature * between
    derivative = s_k**2 * (d_k1 * theta**2 + 2.0 * s_k * between + d_k * (1.0 - theta) ** 2) / denominator**2
    log_derivative = ops.log(derivative)
    if inverse:
        log_derivative = -log_derivative
    return ops.where(inside, out, x), ops.where(inside, log_derivative, ops.zeros_like(x))
