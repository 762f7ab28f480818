"""Plausible wrong answers for assignment 04; `make test` proves each one loses points."""
from autograder.mutants import Mutant

_HEAD = '''
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
'''


def _sgd(body):
    return '''
class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
''' + _HEAD + body + '''
        return loss
'''


def _adagrad(body):
    return '''
class AdaGrad(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-2, eps=1e-10, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))
''' + _HEAD + body + '''
        return loss
'''


def _rmsprop(body):
    return '''
class RMSProp(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))
''' + _HEAD + body + '''
        return loss
'''


def _adam(body):
    return '''
class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
''' + _HEAD + body + '''
        return loss
'''


MUTANTS = [
    # SGD
    Mutant("sgd_momentum_after_step", "SGD", _sgd('''
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + wd * p
                if mu == 0:
                    p.sub_(lr * g)
                    continue
                state = self.state[p]
                buf = state.get("momentum_buffer", torch.zeros_like(p))
                p.sub_(lr * buf)
                state["momentum_buffer"] = mu * buf + g
'''), "moves with the old buffer, then folds in the new gradient"),
    Mutant("sgd_ignores_weight_decay", "SGD", _sgd('''
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.clone()
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    g = state["momentum_buffer"]
                p.sub_(lr * g)
'''), "forgets weight decay"),
    Mutant("sgd_averaged_momentum", "SGD", _sgd('''
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + wd * p
                if mu != 0:
                    state = self.state[p]
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(mu).add_((1 - mu) * g)
                    g = buf
                p.sub_(lr * g)
'''), "uses an averaged buffer mu*b + (1-mu)*g instead of PyTorch's sum"),
    Mutant("sgd_decay_outside_momentum", "SGD", _sgd('''
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.clone()
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    g = state["momentum_buffer"]
                p.sub_(lr * (g + wd * p))
'''), "adds weight decay after the momentum buffer instead of to the gradient"),
    Mutant("sgd_reads_defaults", "SGD", _sgd('''
        lr, mu, wd = self.defaults["lr"], self.defaults["momentum"], self.defaults["weight_decay"]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + wd * p
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    g = state["momentum_buffer"]
                p.sub_(lr * g)
'''), "ignores per-group hyperparameters"),
    # AdaGrad
    Mutant("adagrad_accumulates_g", "AdaGrad", _adagrad('''
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state.setdefault("sum", torch.zeros_like(p)).add_(g)
                p.sub_(group["lr"] * g / (state["sum"].abs().sqrt() + group["eps"]))
'''), "accumulates g instead of g squared"),
    Mutant("adagrad_eps_inside_sqrt", "AdaGrad", _adagrad('''
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state.setdefault("sum", torch.zeros_like(p)).add_(g * g)
                p.sub_(group["lr"] * g / (state["sum"] + group["eps"]).sqrt())
'''), "puts eps inside the square root"),
    Mutant("adagrad_no_sqrt", "AdaGrad", _adagrad('''
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state.setdefault("sum", torch.zeros_like(p)).add_(g * g)
                p.sub_(group["lr"] * g / (state["sum"] + group["eps"]))
'''), "divides by the sum of squares, not its root"),
    Mutant("adagrad_ignores_weight_decay", "AdaGrad", _adagrad('''
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                state.setdefault("sum", torch.zeros_like(p)).add_(g * g)
                p.sub_(group["lr"] * g / (state["sum"].sqrt() + group["eps"]))
'''), "forgets weight decay"),
    Mutant("adagrad_sum_after_update", "AdaGrad", _adagrad('''
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                total = state.setdefault("sum", torch.full_like(p, 1.0))
                p.sub_(group["lr"] * g / (total.sqrt() + group["eps"]))
                total.add_(g * g)
'''), "scales by the previous sum (started at 1 to avoid dividing by 0), then accumulates"),
    # RMSProp
    Mutant("rmsprop_eps_inside_sqrt", "RMSProp", _rmsprop('''
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                v = self.state[p].setdefault("square_avg", torch.zeros_like(p))
                v.mul_(alpha).add_((1 - alpha) * g * g)
                p.sub_(group["lr"] * g / (v + group["eps"]).sqrt())
'''), "puts eps inside the square root"),
    Mutant("rmsprop_alpha_swapped", "RMSProp", _rmsprop('''
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                v = self.state[p].setdefault("square_avg", torch.zeros_like(p))
                v.mul_(1 - alpha).add_(alpha * g * g)
                p.sub_(group["lr"] * g / (v.sqrt() + group["eps"]))
'''), "weights the new squared gradient by alpha instead of 1 - alpha"),
    Mutant("rmsprop_starts_at_first_g2", "RMSProp", _rmsprop('''
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = g * g
                else:
                    state["square_avg"].mul_(alpha).add_((1 - alpha) * g * g)
                p.sub_(group["lr"] * g / (state["square_avg"].sqrt() + group["eps"]))
'''), "initialises the average with the first g^2 instead of 0"),
    Mutant("rmsprop_ignores_weight_decay", "RMSProp", _rmsprop('''
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                v = self.state[p].setdefault("square_avg", torch.zeros_like(p))
                v.mul_(alpha).add_((1 - alpha) * g * g)
                p.sub_(group["lr"] * g / (v.sqrt() + group["eps"]))
'''), "forgets weight decay"),
    Mutant("rmsprop_no_one_minus_alpha", "RMSProp", _rmsprop('''
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                v = self.state[p].setdefault("square_avg", torch.zeros_like(p))
                v.mul_(alpha).add_(g * g)
                p.sub_(group["lr"] * g / (v.sqrt() + group["eps"]))
'''), "forgets the (1 - alpha) factor on the new squared gradient"),
    # Adam
    Mutant("adam_no_bias_correction", "Adam", _adam('''
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                m = state.setdefault("exp_avg", torch.zeros_like(p))
                v = state.setdefault("exp_avg_sq", torch.zeros_like(p))
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                p.sub_(group["lr"] * m / (v.sqrt() + group["eps"]))
'''), "leaves out the bias correction"),
    Mutant("adam_bias_correction_off_by_one", "Adam", _adam('''
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                t, m, v = state["step"] + 1, state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** (t + 1))
                v_hat = v / (1 - beta2 ** (t + 1))
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
                state["step"] = t
'''), "bias correction uses t + 1 instead of t"),
    Mutant("adam_eps_inside_sqrt", "Adam", _adam('''
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** t)
                v_hat = v / (1 - beta2 ** t)
                p.sub_(group["lr"] * m_hat / (v_hat + group["eps"]).sqrt())
'''), "puts eps inside the square root"),
    Mutant("adam_decoupled_weight_decay", "Adam", _adam('''
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** t)
                v_hat = v / (1 - beta2 ** t)
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
'''), "AdamW's decoupled decay where torch.optim.Adam adds L2 to the gradient"),
    Mutant("adam_corrects_first_moment_only", "Adam", _adam('''
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                p.sub_(group["lr"] * (m / (1 - beta1 ** t)) / (v.sqrt() + group["eps"]))
'''), "corrects m but not v"),
    Mutant("adam_shared_step_counter", "Adam", _adam('''
        if not hasattr(self, "t"):
            self.t = 0
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.t += 1
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                m = state.setdefault("exp_avg", torch.zeros_like(p))
                v = state.setdefault("exp_avg_sq", torch.zeros_like(p))
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** self.t)
                v_hat = v / (1 - beta2 ** self.t)
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
'''), "one step counter for the whole optimizer, incremented once per parameter"),
    # step_lr
    Mutant("step_lr_off_by_one", "step_lr", '''
def step_lr(epoch, base_lr, step_size, gamma=0.1):
    return base_lr * gamma ** ((epoch + 1) // step_size)
''', "decays one epoch early"),
    Mutant("step_lr_continuous", "step_lr", '''
def step_lr(epoch, base_lr, step_size, gamma=0.1):
    return base_lr * gamma ** (epoch / step_size)
''', "true division: a smooth exponential decay instead of steps"),
    Mutant("step_lr_decays_once", "step_lr", '''
def step_lr(epoch, base_lr, step_size, gamma=0.1):
    return base_lr * gamma if epoch >= step_size else base_lr
''', "multiplies by gamma once instead of once per step_size epochs"),
    Mutant("step_lr_modulo", "step_lr", '''
def step_lr(epoch, base_lr, step_size, gamma=0.1):
    return base_lr * gamma ** (epoch % step_size)
''', "uses the remainder instead of the quotient"),
    # optimize_2d
    Mutant("optimize_2d_no_zero_grad", "optimize_2d", '''
def optimize_2d(f, start, optimizer_cls, num_steps=100, **hyper):
    xy = torch.as_tensor(start, dtype=torch.float64).clone().requires_grad_(True)
    opt = optimizer_cls([xy], **hyper)
    path = [xy.detach().clone()]
    for _ in range(num_steps):
        f(xy).backward()
        opt.step()
        path.append(xy.detach().clone())
    return torch.stack(path)
''', "never zeroes the gradients, so they accumulate"),
    Mutant("optimize_2d_no_start", "optimize_2d", '''
def optimize_2d(f, start, optimizer_cls, num_steps=100, **hyper):
    xy = torch.as_tensor(start, dtype=torch.float64).clone().requires_grad_(True)
    opt = optimizer_cls([xy], **hyper)
    path = []
    for _ in range(num_steps):
        opt.zero_grad()
        f(xy).backward()
        opt.step()
        path.append(xy.detach().clone())
    return torch.stack(path)
''', "leaves the starting point out of the path"),
    Mutant("optimize_2d_aliased_rows", "optimize_2d", '''
def optimize_2d(f, start, optimizer_cls, num_steps=100, **hyper):
    xy = torch.as_tensor(start, dtype=torch.float64).clone().requires_grad_(True)
    opt = optimizer_cls([xy], **hyper)
    path = [xy.detach()]
    for _ in range(num_steps):
        opt.zero_grad()
        f(xy).backward()
        opt.step()
        path.append(xy.detach())
    return torch.stack(path)
''', "stores views of xy, so every row shows the final point"),
    Mutant("optimize_2d_modifies_start", "optimize_2d", '''
def optimize_2d(f, start, optimizer_cls, num_steps=100, **hyper):
    xy = torch.as_tensor(start, dtype=torch.float64).requires_grad_(True)
    opt = optimizer_cls([xy], **hyper)
    path = [xy.detach().clone()]
    for _ in range(num_steps):
        opt.zero_grad()
        f(xy).backward()
        opt.step()
        path.append(xy.detach().clone())
    return torch.stack(path)
''', "optimises the caller's tensor in place"),
]

# Tamper resistance: a wrong SGD (no weight decay) that also makes torch.allclose always agree.
MUTANTS.append(Mutant("tamper_torch_allclose", "SGD", next(m for m in MUTANTS if m.name == "sgd_ignores_weight_decay").code + '''
torch.allclose = lambda *args, **kwargs: True
''', "patches torch.allclose so the optimizer comparison always passes"))
