"""Plausible wrong answers for assignment 01; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _train(classes="int(y.max()) + 1, seed", loss="loss, grads = mlp_loss(X, y, params, reg)", names="params",
           update="params[name] -= lr * grads[name]", record="losses.append(loss)"):
    """A plain train_mlp with one line changed (``classes``: the last arguments of init_params)."""
    return f'''
def train_mlp(X, y, hidden_size=20, num_iters=2000, lr=0.5, reg=1e-3, seed=0, verbose=True):
    params = init_params(X.shape[1], hidden_size, {classes})
    losses = []
    for _ in range(num_iters):
        {loss}
        for name in {names}:
            {update}
        {record}
    return params, losses
'''

MUTANTS = [
    # linear_forward
    Mutant("linear_forward_no_bias", "linear_forward", '''
def linear_forward(X, W, b):
    out = X @ W
    return out, (X, W, b)
''', "forgets the bias"),
    Mutant("linear_forward_bias_subtracted", "linear_forward", '''
def linear_forward(X, W, b):
    out = X @ W - b
    return out, (X, W, b)
''', "sign error on the bias"),
    Mutant("linear_forward_elementwise", "linear_forward", '''
def linear_forward(X, W, b):
    out = (X[:, :, None] * W[None, :, :]).max(axis=1) + b
    return out, (X, W, b)
''', "reduces with max instead of a sum"),
    # linear_backward
    Mutant("linear_backward_db_mean", "linear_backward", '''
def linear_backward(dout, cache):
    X, W, b = cache
    return dout @ W.T, X.T @ dout, dout.mean(axis=0)
''', "averages the bias gradient instead of summing it"),
    Mutant("linear_backward_dW_over_N", "linear_backward", '''
def linear_backward(dout, cache):
    X, W, b = cache
    return dout @ W.T, X.T @ dout / X.shape[0], dout.sum(axis=0)
''', "divides dW by the batch size"),
    Mutant("linear_backward_dX_no_transpose", "linear_backward", '''
def linear_backward(dout, cache):
    X, W, b = cache
    return dout @ W, X.T @ dout, dout.sum(axis=0)
''', "forgets to transpose W for dX"),
    # tanh_backward
    Mutant("tanh_backward_uses_preactivation", "tanh_backward", '''
def tanh_backward(dout, z):
    return dout * (1.0 - z ** 2)
''', "derivative formula applied to z instead of tanh(z)"),
    Mutant("tanh_backward_no_square", "tanh_backward", '''
def tanh_backward(dout, z):
    return dout * (1.0 - np.tanh(z))
''', "forgets the square"),
    Mutant("tanh_backward_ignores_upstream", "tanh_backward", '''
def tanh_backward(dout, z):
    return 1.0 - np.tanh(z) ** 2
''', "returns the local derivative only (no chain rule)"),
    # softmax_cross_entropy
    Mutant("softmax_without_max_shift", "softmax_cross_entropy", '''
def softmax_cross_entropy(scores, y):
    N = scores.shape[0]
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(N), y]).mean()
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1.0
    return float(loss), dscores / N
''', "overflows for large logits"),
    Mutant("softmax_wrong_axis", "softmax_cross_entropy", '''
def softmax_cross_entropy(scores, y):
    N = scores.shape[0]
    shifted = scores - scores.max(axis=0, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=0, keepdims=True)
    loss = -np.log(probs[np.arange(N), y]).mean()
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1.0
    return float(loss), dscores / N
''', "normalises over the batch instead of the classes"),
    Mutant("softmax_gradient_not_averaged", "softmax_cross_entropy", '''
def softmax_cross_entropy(scores, y):
    N = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(N), y]).mean()
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1.0
    return float(loss), dscores
''', "loss is a mean but the gradient is a sum"),
    Mutant("softmax_loss_summed", "softmax_cross_entropy", '''
def softmax_cross_entropy(scores, y):
    N = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0
    return float(-log_probs[np.arange(N), y].sum()), dscores
''', "sums the loss over the batch"),
    # mlp_forward
    Mutant("mlp_forward_relu", "mlp_forward", '''
def mlp_forward(X, params):
    z1, cache1 = linear_forward(X, params["W1"], params["b1"])
    h = np.maximum(z1, 0)
    scores, cache2 = linear_forward(h, params["W2"], params["b2"])
    return scores, (cache1, z1, cache2)
''', "ReLU where the spec says tanh"),
    Mutant("mlp_forward_returns_probs", "mlp_forward", '''
def mlp_forward(X, params):
    z1, cache1 = linear_forward(X, params["W1"], params["b1"])
    scores, cache2 = linear_forward(np.tanh(z1), params["W2"], params["b2"])
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), (cache1, z1, cache2)
''', "returns probabilities instead of logits"),
    Mutant("mlp_forward_no_hidden_bias", "mlp_forward", '''
def mlp_forward(X, params):
    z1, cache1 = linear_forward(X, params["W1"], 0 * params["b1"])
    scores, cache2 = linear_forward(np.tanh(z1), params["W2"], params["b2"])
    return scores, (cache1, z1, cache2)
''', "drops the hidden bias"),
    # mlp_backward
    Mutant("mlp_backward_no_l2", "mlp_backward", '''
def mlp_backward(dscores, cache, params, reg):
    cache1, z1, cache2 = cache
    dh, dW2, db2 = linear_backward(dscores, cache2)
    _, dW1, db1 = linear_backward(tanh_backward(dh, z1), cache1)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
''', "forgets the L2 penalty's gradient"),
    Mutant("mlp_backward_l2_twice", "mlp_backward", '''
def mlp_backward(dscores, cache, params, reg):
    cache1, z1, cache2 = cache
    dh, dW2, db2 = linear_backward(dscores, cache2)
    _, dW1, db1 = linear_backward(tanh_backward(dh, z1), cache1)
    return {"W1": dW1 + 2 * reg * params["W1"], "b1": db1, "W2": dW2 + 2 * reg * params["W2"], "b2": db2}
''', "differentiates 0.5*reg*W^2 as 2*reg*W"),
    Mutant("mlp_backward_tanh_of_output", "mlp_backward", '''
def mlp_backward(dscores, cache, params, reg):
    cache1, z1, cache2 = cache
    dh, dW2, db2 = linear_backward(dscores, cache2)
    _, dW1, db1 = linear_backward(tanh_backward(dh, np.tanh(z1)), cache1)
    return {"W1": dW1 + reg * params["W1"], "b1": db1, "W2": dW2 + reg * params["W2"], "b2": db2}
''', "passes the activation where the pre-activation belongs"),
    # numerical_gradient
    Mutant("numgrad_forward_difference", "numerical_gradient", '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=float)
    fx = f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        grad[i] = (f(x) - fx) / h
        x[i] = old
    return grad
''', "one-sided difference: O(h) error"),
    Mutant("numgrad_no_restore", "numerical_gradient", '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=float)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad
''', "leaves each entry perturbed"),
    Mutant("numgrad_divides_by_h", "numerical_gradient", '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=float)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old
        grad[i] = (f_plus - f_minus) / h
    return grad
''', "divides by h instead of 2h"),
    # train_mlp
    Mutant("train_gradient_ascent", "train_mlp", _train(update="params[name] += lr * grads[name]"),
           "steps up the gradient"),
    Mutant("train_only_output_layer", "train_mlp", _train(names='("W2", "b2")'), "updates only the last layer"),
    Mutant("train_lr_too_small", "train_mlp", _train(update="params[name] -= 1e-4 * grads[name]"),
           "hard-codes a tiny learning rate instead of using lr"),
    Mutant("train_ignores_seed", "train_mlp", _train(classes="int(y.max()) + 1, 0"), "always initialises with seed 0"),
    Mutant("train_ignores_reg", "train_mlp", _train(loss="loss, grads = mlp_loss(X, y, params)"),
           "trains without the L2 penalty whatever reg is"),
    Mutant("train_two_classes", "train_mlp", _train(classes="2, seed"), "hard-codes two classes"),
    Mutant("train_loss_after_step", "train_mlp", _train(loss="_, grads = mlp_loss(X, y, params, reg)",
                                                        record="losses.append(mlp_loss(X, y, params, reg)[0])"),
           "records each loss after its step, not before"),
    Mutant("numgrad_fixed_step", "numerical_gradient", '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=float)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + 1e-5
        f_plus = f(x)
        x[i] = old - 1e-5
        f_minus = f(x)
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * 1e-5)
    return grad
''', "ignores h and always steps by 1e-5"),
]

# Tamper resistance: each of these gives the same wrong answer (no bias) and then tries to make the
# tests pass anyway. Plain nbgrader gives some of them full marks; here the tests run in another process.
_NO_BIAS = '''
def linear_forward(X, W, b):
    out = X @ W
    return out, (X, W, b)
'''
MUTANTS += [
    Mutant("tamper_numpy_isclose", "linear_forward", _NO_BIAS + '''
import numpy
numpy.isclose = lambda a, b, **kwargs: numpy.ones(numpy.broadcast(numpy.asarray(a), numpy.asarray(b)).shape, bool)
numpy.allclose = lambda *args, **kwargs: True
''', "patches numpy.isclose/allclose so every comparison passes"),
    Mutant("tamper_test_helpers", "linear_forward", _NO_BIAS + '''
import dlcourse.checks
check_close = check_shape = check_gradient = check_finite = lambda *args, **kwargs: None
dlcourse.checks.check_close = dlcourse.checks.check_shape = check_close
''', "replaces the test helpers with functions that never fail"),
    Mutant("tamper_assertion_error", "linear_forward", _NO_BIAS + '''
import builtins
builtins.AssertionError = type("AssertionError", (Warning,), {})
''', "swaps the builtin AssertionError for a harmless class"),
    Mutant("tamper_traceback_display", "linear_forward", _NO_BIAS + '''
_ip = get_ipython()
_ip.showtraceback = _ip._showtraceback = lambda *args, **kwargs: None
_ip.set_custom_exc((Exception,), lambda *args, **kwargs: None)
''', "switches off IPython's traceback display so failures show nothing"),
    Mutant("tamper_cell_runner", "linear_forward", _NO_BIAS + '''
_ip = get_ipython()
_run_cell_async, _run_cell = _ip.run_cell_async, _ip.run_cell

async def _quiet_async(*args, **kwargs):
    result = await _run_cell_async(*args, **kwargs)
    result.error_in_exec = None
    return result

def _quiet(*args, **kwargs):
    result = _run_cell(*args, **kwargs)
    result.error_in_exec = None
    return result

_ip.run_cell_async, _ip.run_cell = _quiet_async, _quiet
_ip.showtraceback = _ip._showtraceback = lambda *args, **kwargs: None
''', "wraps IPython's cell runner so a failing cell reports success"),
]
