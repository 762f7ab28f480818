"""Plausible wrong answers for assignment 02; `make test` proves each one loses points."""
from autograder.mutants import Mutant

MUTANTS = [
    # sigmoid
    Mutant("sigmoid_exp_ratio", "sigmoid", '''
def sigmoid(x):
    return torch.exp(x) / (1.0 + torch.exp(x))
''', "e^x / (1 + e^x) is inf/inf = nan for large x"),
    Mutant("sigmoid_sign_flipped", "sigmoid", '''
def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(x))
''', "drops the minus sign in the exponent"),
    Mutant("sigmoid_denominator_minus", "sigmoid", '''
def sigmoid(x):
    return 1.0 / (1.0 - torch.exp(-x))
''', "1 - e^-x in the denominator: wrong everywhere, infinite at 0"),
    Mutant("sigmoid_builtin", "sigmoid", '''
def sigmoid(x):
    return torch.sigmoid(x)
''', "calls the built-in instead of writing the formula"),
    # sigmoid_grad
    Mutant("sigmoid_grad_of_preactivation", "sigmoid_grad", '''
def sigmoid_grad(x):
    return x * (1.0 - x)
''', "applies s(1 - s) to the pre-activation x instead of s = sigmoid(x)"),
    Mutant("sigmoid_grad_tanh_formula", "sigmoid_grad", '''
def sigmoid_grad(x):
    s = sigmoid(x)
    return 1.0 - s * s
''', "uses tanh's 1 - f^2"),
    Mutant("sigmoid_grad_quotient_overflow", "sigmoid_grad", '''
def sigmoid_grad(x):
    e = torch.exp(-x)
    return e / (1.0 + e) ** 2
''', "quotient form: inf/inf = nan for very negative x"),
    Mutant("sigmoid_grad_autograd", "sigmoid_grad", '''
def sigmoid_grad(x):
    x = x.detach().clone().requires_grad_(True)
    sigmoid(x).sum().backward()
    return x.grad
''', "asks autograd instead of deriving the formula"),
    # tanh
    Mutant("tanh_exp_ratio", "tanh", '''
def tanh(x):
    return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
''', "textbook formula: inf/inf = nan at both ends"),
    Mutant("tanh_missing_2x", "tanh", '''
def tanh(x):
    return 2.0 * sigmoid(x) - 1.0
''', "2 sigma(x) - 1 instead of 2 sigma(2x) - 1"),
    Mutant("tanh_missing_minus_one", "tanh", '''
def tanh(x):
    return 2.0 * sigmoid(2.0 * x)
''', "forgets to shift the range to (-1, 1)"),
    Mutant("tanh_builtin", "tanh", '''
def tanh(x):
    return torch.tanh(x)
''', "calls the built-in instead of writing the formula"),
    # tanh_grad
    Mutant("tanh_grad_of_preactivation", "tanh_grad", '''
def tanh_grad(x):
    return 1.0 - x ** 2
''', "applies 1 - t^2 to x instead of t = tanh(x)"),
    Mutant("tanh_grad_no_square", "tanh_grad", '''
def tanh_grad(x):
    return 1.0 - tanh(x)
''', "forgets the square"),
    Mutant("tanh_grad_sigmoid_formula", "tanh_grad", '''
def tanh_grad(x):
    t = tanh(x)
    return t * (1.0 - t)
''', "uses sigmoid's f(1 - f)"),
    # relu
    Mutant("relu_clamp_wrong_side", "relu", '''
def relu(x):
    return torch.clamp(x, max=0)
''', "keeps the negative part"),
    Mutant("relu_missing_half", "relu", '''
def relu(x):
    return x + x.abs()
''', "(x + |x|) without the / 2"),
    Mutant("relu_in_place", "relu", '''
def relu(x):
    return x.clamp_(min=0)
''', "modifies the caller's tensor in place"),
    Mutant("relu_builtin", "relu", '''
def relu(x):
    return torch.relu(x)
''', "calls the built-in instead of writing the formula"),
    # relu_grad
    Mutant("relu_grad_one_at_zero", "relu_grad", '''
def relu_grad(x):
    return (x >= 0).to(x.dtype)
''', "derivative 1 at x = 0 (PyTorch uses 0)"),
    Mutant("relu_grad_float32", "relu_grad", '''
def relu_grad(x):
    return (x > 0).float()
''', "always returns float32"),
    Mutant("relu_grad_returns_relu", "relu_grad", '''
def relu_grad(x):
    return relu(x)
''', "returns f instead of f'"),
    Mutant("relu_grad_bool", "relu_grad", '''
def relu_grad(x):
    return x > 0
''', "returns a boolean mask"),
    # leaky_relu
    Mutant("leaky_relu_slope_on_positive_side", "leaky_relu", '''
def leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, negative_slope * x, x)
''', "scales the positive side instead of the negative side"),
    Mutant("leaky_relu_hardcoded_slope", "leaky_relu", '''
def leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, x, 0.01 * x)
''', "ignores the negative_slope argument"),
    Mutant("leaky_relu_constant_negative", "leaky_relu", '''
def leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, x, negative_slope * torch.ones_like(x))
''', "returns the slope itself, not slope * x, for x <= 0"),
    # leaky_relu_grad
    Mutant("leaky_relu_grad_relu_derivative", "leaky_relu_grad", '''
def leaky_relu_grad(x, negative_slope=0.01):
    return (x > 0).to(x.dtype)
''', "uses ReLU's derivative (0 for x <= 0)"),
    Mutant("leaky_relu_grad_slope_times_x", "leaky_relu_grad", '''
def leaky_relu_grad(x, negative_slope=0.01):
    return torch.where(x > 0, torch.ones_like(x), negative_slope * x)
''', "returns slope * x (the function) for x <= 0"),
    Mutant("leaky_relu_grad_hardcoded_slope", "leaky_relu_grad", '''
def leaky_relu_grad(x, negative_slope=0.01):
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.01))
''', "ignores the negative_slope argument"),
    Mutant("leaky_relu_grad_scalar_where", "leaky_relu_grad", '''
def leaky_relu_grad(x, negative_slope=0.01):
    return torch.where(x > 0, 1.0, negative_slope)
''', "torch.where on two Python floats returns float32, whatever x's dtype"),
    # elu
    Mutant("elu_missing_minus_one", "elu", '''
def elu(x, alpha=1.0):
    return torch.where(x > 0, x, alpha * torch.exp(torch.clamp(x, max=0)))
''', "alpha * e^x instead of alpha * (e^x - 1)"),
    Mutant("elu_ignores_alpha", "elu", '''
def elu(x, alpha=1.0):
    return torch.where(x > 0, x, torch.expm1(torch.clamp(x, max=0)))
''', "forgets alpha"),
    Mutant("elu_alpha_misplaced", "elu", '''
def elu(x, alpha=1.0):
    return torch.where(x > 0, x, alpha * torch.exp(torch.clamp(x, max=0)) - 1)
''', "alpha * e^x - 1 instead of alpha * (e^x - 1): right only for alpha = 1"),
    Mutant("elu_exp_everywhere", "elu", '''
def elu(x, alpha=1.0):
    return alpha * torch.expm1(torch.clamp(x, max=50.0))
''', "applies the negative branch to every input"),
    # elu_grad
    Mutant("elu_grad_copies_function", "elu_grad", '''
def elu_grad(x, alpha=1.0):
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.expm1(torch.clamp(x, max=0)))
''', "uses alpha (e^x - 1) (the function) for x <= 0"),
    Mutant("elu_grad_ignores_alpha", "elu_grad", '''
def elu_grad(x, alpha=1.0):
    return torch.where(x > 0, torch.ones_like(x), torch.exp(torch.clamp(x, max=0)))
''', "forgets alpha"),
    Mutant("elu_grad_x_for_positive", "elu_grad", '''
def elu_grad(x, alpha=1.0):
    return torch.where(x > 0, x, alpha * torch.exp(torch.clamp(x, max=0)))
''', "returns x instead of 1 for x > 0"),
    # gelu
    Mutant("gelu_tanh_approximation", "gelu", '''
def gelu(x):
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
    return 0.5 * x * (1.0 + tanh(inner))
''', "tanh approximation where the exact form is asked"),
    Mutant("gelu_sigmoid_approximation", "gelu", '''
def gelu(x):
    return x * sigmoid(1.702 * x)
''', "sigmoid approximation where the exact form is asked"),
    Mutant("gelu_missing_x", "gelu", '''
def gelu(x):
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
''', "returns Phi(x) instead of x Phi(x)"),
    Mutant("gelu_erf_without_sqrt2", "gelu", '''
def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x))
''', "erf(x) instead of erf(x / sqrt(2))"),
    # gelu_grad
    Mutant("gelu_grad_cdf_only", "gelu_grad", '''
def gelu_grad(x):
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
''', "product rule: forgets the x phi(x) term"),
    Mutant("gelu_grad_unnormalised_pdf", "gelu_grad", '''
def gelu_grad(x):
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf + x * torch.exp(-0.5 * x * x)
''', "forgets the 1/sqrt(2 pi) of the normal density"),
    Mutant("gelu_grad_pdf_term_only", "gelu_grad", '''
def gelu_grad(x):
    return x * torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
''', "product rule: forgets the Phi(x) term"),
    # silu
    Mutant("silu_missing_x", "silu", '''
def silu(x):
    return sigmoid(x)
''', "returns sigmoid(x), forgetting the factor x"),
    Mutant("silu_sign_flipped", "silu", '''
def silu(x):
    return x * sigmoid(-x)
''', "x * sigmoid(-x)"),
    Mutant("silu_exp_ratio", "silu", '''
def silu(x):
    return x * torch.exp(x) / (1.0 + torch.exp(x))
''', "x e^x / (1 + e^x) is inf/inf = nan for large x"),
    # silu_grad
    Mutant("silu_grad_missing_x", "silu_grad", '''
def silu_grad(x):
    s = sigmoid(x)
    return s + s * (1.0 - s)
''', "product rule with the factor x dropped"),
    Mutant("silu_grad_sigmoid_only", "silu_grad", '''
def silu_grad(x):
    return sigmoid(x)
''', "treats sigmoid(x) as a constant"),
    Mutant("silu_grad_quotient_overflow", "silu_grad", '''
def silu_grad(x):
    e = torch.exp(-x)
    return (1.0 + e + x * e) / (1.0 + e) ** 2
''', "unsimplified quotient: inf/inf = nan for very negative x"),
    # softmax
    Mutant("softmax_without_max_shift", "softmax", '''
def softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)
''', "overflows for large logits"),
    Mutant("softmax_ignores_dim", "softmax", '''
def softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)
''', "always normalises over the last dimension"),
    Mutant("softmax_global_max_shift", "softmax", '''
def softmax(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)
''', "shifts by the global max: rows far below it underflow to 0/0"),
    Mutant("softmax_normalises_everything", "softmax", '''
def softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum()
''', "divides by the sum over the whole tensor"),
    # softmax_grad
    Mutant("softmax_grad_diagonal_only", "softmax_grad", '''
def softmax_grad(x, dout, dim=-1):
    y = softmax(x, dim)
    return dout * y * (1.0 - y)
''', "keeps only the Jacobian's diagonal"),
    Mutant("softmax_grad_no_sum_term", "softmax_grad", '''
def softmax_grad(x, dout, dim=-1):
    y = softmax(x, dim)
    return dout * y
''', "forgets the -y y^T part of the Jacobian"),
    Mutant("softmax_grad_sum_over_everything", "softmax_grad", '''
def softmax_grad(x, dout, dim=-1):
    y = softmax(x, dim)
    return y * (dout - (dout * y).sum())
''', "sums over the whole tensor instead of along dim"),
    Mutant("softmax_grad_forgets_y", "softmax_grad", '''
def softmax_grad(x, dout, dim=-1):
    y = softmax(x, dim)
    return dout - (dout * y).sum(dim=dim, keepdim=True)
''', "drops the outer factor y"),
    # layer_gradient_norms
    Mutant("norms_last_layer_first", "layer_gradient_norms", '''
def layer_gradient_norms(activation, depth=10, width=64, batch_size=256, seed=0):
    X, layers = init_deep_net(depth, width, batch_size, seed)
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < depth - 1:
            h = activation(h)
    (h ** 2).mean().backward()
    return [W.grad.norm().item() for W, _ in reversed(layers)]
''', "lists the layers in backward order"),
    Mutant("norms_activation_on_output", "layer_gradient_norms", '''
def layer_gradient_norms(activation, depth=10, width=64, batch_size=256, seed=0):
    X, layers = init_deep_net(depth, width, batch_size, seed)
    h = X
    for W, b in layers:
        h = activation(h @ W + b)
    (h ** 2).mean().backward()
    return [W.grad.norm().item() for W, _ in layers]
''', "applies the activation after the output layer too"),
    Mutant("norms_of_weights", "layer_gradient_norms", '''
def layer_gradient_norms(activation, depth=10, width=64, batch_size=256, seed=0):
    X, layers = init_deep_net(depth, width, batch_size, seed)
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < depth - 1:
            h = activation(h)
    (h ** 2).mean().backward()
    return [W.norm().item() for W, _ in layers]
''', "measures the weights instead of their gradients"),
    Mutant("norms_summed_loss", "layer_gradient_norms", '''
def layer_gradient_norms(activation, depth=10, width=64, batch_size=256, seed=0):
    X, layers = init_deep_net(depth, width, batch_size, seed)
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < depth - 1:
            h = activation(h)
    (h ** 2).sum().backward()
    return [W.grad.norm().item() for W, _ in layers]
''', "sums the loss instead of averaging it"),
    Mutant("norms_no_activation", "layer_gradient_norms", '''
def layer_gradient_norms(activation, depth=10, width=64, batch_size=256, seed=0):
    X, layers = init_deep_net(depth, width, batch_size, seed)
    h = X
    for W, b in layers:
        h = h @ W + b
    (h ** 2).mean().backward()
    return [W.grad.norm().item() for W, _ in layers]
''', "never calls the activation: a deep linear network"),
]
