"""Plausible wrong answers for assignment 03; `make test` proves each one loses points."""
from autograder.mutants import Mutant

MUTANTS = [
    # reduce_loss
    Mutant("reduce_mean_as_sum", "reduce_loss", '''
def reduce_loss(loss, reduction="mean"):
    if reduction in ("mean", "sum"):
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(reduction)
''', "'mean' implemented as a sum"),
    Mutant("reduce_unknown_is_none", "reduce_loss", '''
def reduce_loss(loss, reduction="mean"):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
''', "an unknown reduction silently falls through to 'none'"),
    Mutant("reduce_via_item", "reduce_loss", '''
def reduce_loss(loss, reduction="mean"):
    if reduction == "mean":
        return loss.sum().item() / loss.numel()
    if reduction == "sum":
        return loss.sum().item()
    if reduction == "none":
        return loss
    raise ValueError(reduction)
''', "reduces to Python floats, cutting the autograd graph"),
    Mutant("reduce_mean_over_first_dim", "reduce_loss", '''
def reduce_loss(loss, reduction="mean"):
    if reduction == "mean":
        return loss.mean(dim=0)
    if reduction == "sum":
        return loss.sum(dim=0)
    if reduction == "none":
        return loss
    raise ValueError(reduction)
''', "reduces over the first dimension only"),
    # mse_loss
    Mutant("mse_root_mean_square", "mse_loss", '''
def mse_loss(pred, target, reduction="mean"):
    return torch.sqrt(reduce_loss((pred - target) ** 2, reduction))
''', "returns the RMSE (square root of the MSE)"),
    Mutant("mse_halved", "mse_loss", '''
def mse_loss(pred, target, reduction="mean"):
    return reduce_loss(0.5 * (pred - target) ** 2, reduction)
''', "textbook 1/2 factor that torch does not use"),
    Mutant("mse_ignores_reduction", "mse_loss", '''
def mse_loss(pred, target, reduction="mean"):
    return ((pred - target) ** 2).mean()
''', "always returns the mean"),
    # l1_loss
    Mutant("l1_no_abs", "l1_loss", '''
def l1_loss(pred, target, reduction="mean"):
    return reduce_loss(pred - target, reduction)
''', "signed errors, which cancel"),
    Mutant("l1_abs_after_reduction", "l1_loss", '''
def l1_loss(pred, target, reduction="mean"):
    return reduce_loss(pred - target, reduction).abs()
''', "absolute value of the mean error instead of the mean absolute error"),
    Mutant("l1_sqrt_of_square", "l1_loss", '''
def l1_loss(pred, target, reduction="mean"):
    return reduce_loss(torch.sqrt((pred - target) ** 2), reduction)
''', "|r| as sqrt(r^2): the gradient is NaN where pred equals target"),
    # huber_loss
    Mutant("huber_quadratic_missing_half", "huber_loss", '''
def huber_loss(pred, target, reduction="mean", delta=1.0):
    r = (pred - target).abs()
    return reduce_loss(torch.where(r < delta, r ** 2, delta * (r - 0.5 * delta)), reduction)
''', "quadratic branch without the 0.5"),
    Mutant("huber_linear_no_offset", "huber_loss", '''
def huber_loss(pred, target, reduction="mean", delta=1.0):
    r = (pred - target).abs()
    return reduce_loss(torch.where(r < delta, 0.5 * r ** 2, delta * r), reduction)
''', "linear branch without the -delta/2 offset (discontinuous)"),
    Mutant("huber_as_smooth_l1", "huber_loss", '''
def huber_loss(pred, target, reduction="mean", delta=1.0):
    r = (pred - target).abs()
    return reduce_loss(torch.where(r < delta, 0.5 * r ** 2 / delta, r - 0.5 * delta), reduction)
''', "SmoothL1 with beta = delta, which is Huber divided by delta"),
    Mutant("huber_ignores_delta", "huber_loss", '''
def huber_loss(pred, target, reduction="mean", delta=1.0):
    r = (pred - target).abs()
    return reduce_loss(torch.where(r < 1.0, 0.5 * r ** 2, r - 0.5), reduction)
''', "threshold hard-coded to 1"),
    # bce_loss
    Mutant("bce_no_clamp", "bce_loss", '''
def bce_loss(pred, target, reduction="mean"):
    loss = -(target * torch.log(pred) + (1 - target) * torch.log(1 - pred))
    return reduce_loss(loss, reduction)
''', "no clamping: 0 * log(0) gives NaN, log(0) gives inf"),
    Mutant("bce_clamps_probabilities", "bce_loss", '''
def bce_loss(pred, target, reduction="mean"):
    p = pred.clamp(1e-7, 1 - 1e-7)
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return reduce_loss(loss, reduction)
''', "clamps p to [eps, 1-eps] instead of clamping the logs at -100"),
    Mutant("bce_missing_negative_term", "bce_loss", '''
def bce_loss(pred, target, reduction="mean"):
    loss = -target * torch.log(pred).clamp(min=-100)
    return reduce_loss(loss, reduction)
''', "forgets the (1 - y) log(1 - p) term"),
    Mutant("bce_sign_flipped", "bce_loss", '''
def bce_loss(pred, target, reduction="mean"):
    loss = target * torch.log(pred).clamp(min=-100) + (1 - target) * torch.log1p(-pred).clamp(min=-100)
    return reduce_loss(loss, reduction)
''', "forgets the minus sign (a log-likelihood, not a loss)"),
    # bce_with_logits
    Mutant("bcewl_log_of_sigmoid", "bce_with_logits", '''
def bce_with_logits(logits, target, reduction="mean"):
    p = torch.sigmoid(logits)
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return reduce_loss(loss, reduction)
''', "log(sigmoid(x)) directly: log(0) = -inf for large |x|"),
    Mutant("bcewl_naive_softplus", "bce_with_logits", '''
def bce_with_logits(logits, target, reduction="mean"):
    loss = (1 - target) * logits + torch.log(1 + torch.exp(-logits))
    return reduce_loss(loss, reduction)
''', "exp(-x) overflows for very negative logits"),
    Mutant("bcewl_via_clamped_bce", "bce_with_logits", '''
def bce_with_logits(logits, target, reduction="mean"):
    return bce_loss(torch.sigmoid(logits), target, reduction)
''', "sigmoid then the clamped BCE: 100 instead of 1e4 at extreme logits"),
    Mutant("bcewl_forgot_abs", "bce_with_logits", '''
def bce_with_logits(logits, target, reduction="mean"):
    loss = logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits))
    return reduce_loss(loss, reduction)
''', "stable formula with -x instead of -|x| in the exponent"),
    # log_softmax
    Mutant("log_softmax_no_shift", "log_softmax", '''
def log_softmax(logits, dim=-1):
    return logits - torch.log(torch.exp(logits).sum(dim=dim, keepdim=True))
''', "no max shift: exp overflows"),
    Mutant("log_softmax_global_max", "log_softmax", '''
def log_softmax(logits, dim=-1):
    shifted = logits - logits.max()
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
''', "shifts by the max of the whole tensor instead of each row's"),
    Mutant("log_softmax_log_of_softmax", "log_softmax", '''
def log_softmax(logits, dim=-1):
    e = torch.exp(logits - logits.max(dim=dim, keepdim=True).values)
    return torch.log(e / e.sum(dim=dim, keepdim=True))
''', "log of a softmax: log(0) = -inf for far-below-max classes"),
    Mutant("log_softmax_hardcoded_dim", "log_softmax", '''
def log_softmax(logits, dim=-1):
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
''', "ignores dim and always normalises dimension 1"),
    # nll_loss
    Mutant("nll_no_minus", "nll_loss", '''
def nll_loss(log_probs, target, reduction="mean"):
    return reduce_loss(log_probs.gather(1, target.unsqueeze(1)).squeeze(1), reduction)
''', "forgets to negate the log-likelihood"),
    Mutant("nll_index_matrix", "nll_loss", '''
def nll_loss(log_probs, target, reduction="mean"):
    return reduce_loss(-log_probs[:, target], reduction)
''', "log_probs[:, target] picks an (N, N) matrix, not one entry per row"),
    Mutant("nll_mean_over_classes", "nll_loss", '''
def nll_loss(log_probs, target, reduction="mean"):
    onehot = torch.zeros_like(log_probs).scatter(1, target.unsqueeze(1), 1.0)
    return reduce_loss(-onehot * log_probs, reduction)
''', "reduces the (N, C) one-hot products, so 'mean' divides by N*C"),
    # cross_entropy
    Mutant("ce_mean_over_classes", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    C = logits.shape[1]
    log_p = log_softmax(logits, dim=1)
    onehot = torch.zeros_like(log_p).scatter(1, target.unsqueeze(1), 1.0)
    q = (1 - label_smoothing) * onehot + label_smoothing / C
    return reduce_loss(-q * log_p, reduction)
''', "averages over classes as well as the batch"),
    Mutant("ce_no_max_shift", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    log_p = logits - torch.log(torch.exp(logits).sum(dim=1, keepdim=True))
    nll = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    loss = (1 - label_smoothing) * nll + label_smoothing * (-log_p.mean(dim=1))
    return reduce_loss(loss, reduction)
''', "log-sum-exp without the max shift overflows"),
    Mutant("ce_smoothing_over_c_minus_1", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    C = logits.shape[1]
    log_p = log_softmax(logits, dim=1)
    onehot = torch.zeros_like(log_p).scatter(1, target.unsqueeze(1), 1.0)
    q = (1 - label_smoothing) * onehot + label_smoothing / (C - 1) * (1 - onehot)
    return reduce_loss(-(q * log_p).sum(dim=1), reduction)
''', "spreads epsilon over the C-1 wrong classes instead of all C"),
    Mutant("ce_ignores_smoothing", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    log_p = log_softmax(logits, dim=1)
    return reduce_loss(-log_p.gather(1, target.unsqueeze(1)).squeeze(1), reduction)
''', "label_smoothing accepted but ignored"),
    Mutant("ce_logits_as_probabilities", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    log_p = torch.log(logits)
    nll = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    loss = (1 - label_smoothing) * nll + label_smoothing * (-log_p.mean(dim=1))
    return reduce_loss(loss, reduction)
''', "takes the log of the logits without a softmax"),
    # kl_div
    Mutant("kl_plogp_nan", "kl_div", '''
def kl_div(log_q, p, reduction="batchmean"):
    loss = p * (torch.log(p) - log_q)
    if reduction == "batchmean":
        return loss.sum() / log_q.shape[0]
    return reduce_loss(loss, reduction)
''', "p log p without the 0 log 0 = 0 convention: NaN where p = 0"),
    Mutant("kl_reversed", "kl_div", '''
def kl_div(log_q, p, reduction="batchmean"):
    q = torch.exp(log_q)
    loss = q * (log_q - torch.log(p))
    if reduction == "batchmean":
        return loss.sum() / log_q.shape[0]
    return reduce_loss(loss, reduction)
''', "computes KL(q || p), the other direction"),
    Mutant("kl_batchmean_as_mean", "kl_div", '''
def kl_div(log_q, p, reduction="batchmean"):
    loss = torch.xlogy(p, p) - p * log_q
    if reduction == "batchmean":
        return loss.mean()
    return reduce_loss(loss, reduction)
''', "'batchmean' divides by N*C instead of N"),
    Mutant("kl_missing_entropy", "kl_div", '''
def kl_div(log_q, p, reduction="batchmean"):
    loss = -p * log_q
    if reduction == "batchmean":
        return loss.sum() / log_q.shape[0]
    return reduce_loss(loss, reduction)
''', "cross-entropy H(p, q) instead of KL: forgets the p log p term"),
    # torch's own losses, which the tests switch off while your code runs
    Mutant("mse_builtin", "mse_loss", '''
def mse_loss(pred, target, reduction="mean"):
    return F.mse_loss(pred, target, reduction=reduction)
''', "calls F.mse_loss instead of writing the formula"),
    Mutant("bcewl_builtin_softplus", "bce_with_logits", '''
def bce_with_logits(logits, target, reduction="mean"):
    return reduce_loss((1 - target) * logits + F.softplus(-logits), reduction)
''', "right formula, but the stable part comes from F.softplus"),
    Mutant("log_softmax_builtin", "log_softmax", '''
def log_softmax(logits, dim=-1):
    return torch.log_softmax(logits, dim=dim)
''', "calls torch.log_softmax instead of writing the log-sum-exp"),
    Mutant("ce_builtin", "cross_entropy", '''
def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    return F.cross_entropy(logits, target, reduction=reduction, label_smoothing=label_smoothing)
''', "calls F.cross_entropy instead of building it from log_softmax"),
]
