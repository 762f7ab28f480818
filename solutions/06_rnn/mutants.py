"""Plausible wrong answers for assignment 06; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _rnn(body):
    return '''
def rnn_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
''' + body


def _lstm(body):
    return '''
def lstm_cell(x, state, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    h, c = state
    gates = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
''' + body


def _gru(body):
    return '''
def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    gi = x @ weight_ih.T
    gh = h @ weight_hh.T
    if bias_ih is not None:
        gi = gi + bias_ih
    if bias_hh is not None:
        gh = gh + bias_hh
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
''' + body


def _clip(body):
    return '''
def clip_grad_norm(parameters, max_norm):
''' + body


def _classifier(body):
    return '''
class RowClassifier(nn.Module):
    def __init__(self, cell_type="lstm", input_size=8, hidden_size=64, num_classes=10, forget_bias=None):
        super().__init__()
        if cell_type not in TORCH_CELLS:
            raise ValueError(f"cell_type must be one of {sorted(TORCH_CELLS)}, got {cell_type!r}")
        self.cell_type = cell_type
        self.hidden_size = hidden_size
        self.cell = TORCH_CELLS[cell_type](input_size, hidden_size)
        self.head = nn.Linear(hidden_size, num_classes)
        if forget_bias is not None:
            if cell_type != "lstm":
                raise ValueError(f"only the LSTM has a forget gate; cell_type is {cell_type!r}")
            with torch.no_grad():
                self.cell.bias_ih[hidden_size:2 * hidden_size].fill_(forget_bias)
                self.cell.bias_hh[hidden_size:2 * hidden_size].zero_()

    def forward(self, X):
        N, T, _ = X.shape
        step = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}[self.cell_type]
        weights = (self.cell.weight_ih, self.cell.weight_hh, self.cell.bias_ih, self.cell.bias_hh)
''' + body


def _train(body):
    return '''
def train_row_classifier(model, X, y, num_epochs=15, lr=1e-2, batch_size=64, max_norm=1.0, seed=0, verbose=True):
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in progress(range(num_epochs), enabled=verbose):
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            X_batch, y_batch = X[idx].to(dev), y[idx].to(dev)
''' + body + '''
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses
'''


#: the solution's training loop, which the mutants at the end of the list change in one place each
_TRAINED = _train('''
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X_batch), y_batch)
            loss.backward()
            if max_norm is not None:
                clip_grad_norm(model.parameters(), max_norm)
            optimizer.step()
''')


MUTANTS = [
    # rnn_cell
    Mutant("rnn_missing_bias_hh", "rnn_cell", _rnn('''
    pre = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        pre = pre + bias_ih
    return torch.tanh(pre)
'''), "forgets the second bias (only bias_ih + bias_hh together give b)"),
    Mutant("rnn_sigmoid", "rnn_cell", _rnn('''
    pre = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        pre = pre + bias_ih + bias_hh
    return torch.sigmoid(pre)
'''), "uses a sigmoid instead of tanh"),
    Mutant("rnn_weight_hh_not_transposed", "rnn_cell", _rnn('''
    pre = x @ weight_ih.T + h @ weight_hh
    if bias_ih is not None:
        pre = pre + bias_ih + bias_hh
    return torch.tanh(pre)
'''), "multiplies by W_hh instead of W_hh^T (no shape error: W_hh is square)"),
    Mutant("rnn_ignores_previous_state", "rnn_cell", _rnn('''
    pre = x @ weight_ih.T
    if bias_ih is not None:
        pre = pre + bias_ih + bias_hh
    return torch.tanh(pre)
'''), "drops the recurrent term W h_{t-1}: a feed-forward layer per step"),
    # lstm_cell
    Mutant("lstm_forget_input_swapped", "lstm_cell", _lstm('''
    f, i, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new
'''), "reads the gate blocks as f, i, g, o instead of PyTorch's i, f, g, o"),
    Mutant("lstm_cell_state_not_passed_on", "lstm_cell", _lstm('''
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c
'''), "returns the old cell state, so the memory never changes"),
    Mutant("lstm_forgets_previous_cell", "lstm_cell", _lstm('''
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = i * g
    return o * torch.tanh(c_new), c_new
'''), "c_t = i * g: the previous cell state is not carried over"),
    Mutant("lstm_h_without_tanh", "lstm_cell", _lstm('''
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    return o * c_new, c_new
'''), "h_t = o * c_t without the tanh"),
    Mutant("lstm_uses_torch_cell", "lstm_cell", '''
def lstm_cell(x, state, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    return torch.lstm_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh)
''', "calls torch's built-in cell instead of writing it"),
    # gru_cell
    Mutant("gru_z_swapped", "gru_cell", _gru('''
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return z * n + (1 - z) * h
'''), "swaps z and 1 - z (z as the share of the new state)"),
    Mutant("gru_reset_before_product", "gru_cell", '''
def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[-1]
    gi = x @ weight_ih.T
    if bias_ih is not None:
        gi = gi + bias_ih
    b_hh = bias_hh if bias_hh is not None else torch.zeros(3 * H, dtype=h.dtype)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    W_hr, W_hz, W_hn = weight_hh.chunk(3, dim=0)
    b_hr, b_hz, b_hn = b_hh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h @ W_hr.T + b_hr)
    z = torch.sigmoid(i_z + h @ W_hz.T + b_hz)
    n = torch.tanh(i_n + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h
''', "applies the reset gate to h before the product (the original paper's variant, not PyTorch's)"),
    Mutant("gru_reset_skips_bias", "gru_cell", '''
def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[-1]
    gi = x @ weight_ih.T
    if bias_ih is not None:
        gi = gi + bias_ih
    gh = h @ weight_hh.T
    b_hh = bias_hh if bias_hh is not None else torch.zeros(3 * H, dtype=h.dtype)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    b_hr, b_hz, b_hn = b_hh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r + b_hr)
    z = torch.sigmoid(i_z + h_z + b_hz)
    n = torch.tanh(i_n + r * h_n + b_hn)
    return (1 - z) * n + z * h
''', "the reset gate multiplies W_hn h but not b_hn"),
    Mutant("gru_gate_order_zr", "gru_cell", _gru('''
    z = torch.sigmoid(i_r + h_r)
    r = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h
'''), "reads the blocks as z, r, n instead of r, z, n"),
    # clip_grad_norm
    Mutant("clip_by_value", "clip_grad_norm", _clip('''
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.clamp_(-max_norm, max_norm)
    return total
'''), "clips each element to [-max_norm, max_norm] instead of rescaling by the norm"),
    Mutant("clip_per_tensor", "clip_grad_norm", _clip('''
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        norm = p.grad.norm()
        if norm > max_norm:
            p.grad.mul_(max_norm / (norm + 1e-6))
    return total
'''), "clips every tensor by its own norm instead of the global norm"),
    Mutant("clip_always_rescales", "clip_grad_norm", _clip('''
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.mul_(max_norm / (total + 1e-6))
    return total
'''), "rescales to max_norm even when the gradient is already smaller"),
    Mutant("clip_returns_clipped_norm", "clip_grad_norm", _clip('''
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    if total > max_norm:
        for p in params:
            p.grad.mul_(max_norm / (total + 1e-6))
    return torch.sqrt(sum((p.grad ** 2).sum() for p in params))
'''), "returns the norm after clipping"),
    Mutant("clip_iterates_generator_twice", "clip_grad_norm", _clip('''
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None))
    if total > max_norm:
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(max_norm / (total + 1e-6))
    return total
'''), "loops over `parameters` twice: a generator such as model.parameters() is empty the second time"),
    # RowClassifier
    Mutant("classifier_first_hidden_state", "RowClassifier", _classifier('''
        h = X.new_zeros(N, self.hidden_size)
        state = (h, X.new_zeros(N, self.hidden_size)) if self.cell_type == "lstm" else h
        outputs = []
        for t in range(T):
            state = step(X[:, t], state, *weights)
            outputs.append(state[0] if self.cell_type == "lstm" else state)
        return self.head(outputs[0])
'''), "classifies from h_1 instead of h_T"),
    Mutant("classifier_state_not_carried", "RowClassifier", _classifier('''
        zeros = X.new_zeros(N, self.hidden_size)
        for t in range(T):
            state = step(X[:, t], (zeros, zeros) if self.cell_type == "lstm" else zeros, *weights)
        h_last = state[0] if self.cell_type == "lstm" else state
        return self.head(h_last)
'''), "starts every time step from a zero state, so only the last row is seen"),
    Mutant("classifier_reads_columns", "RowClassifier", _classifier('''
        h = X.new_zeros(N, self.hidden_size)
        state = (h, X.new_zeros(N, self.hidden_size)) if self.cell_type == "lstm" else h
        for t in range(X.shape[2]):
            state = step(X[:, :, t], state, *weights)
        h_last = state[0] if self.cell_type == "lstm" else state
        return self.head(h_last)
'''), "indexes X[:, :, t]: reads columns instead of rows"),
    Mutant("classifier_lstm_head_on_cell_state", "RowClassifier", _classifier('''
        h = X.new_zeros(N, self.hidden_size)
        state = (h, X.new_zeros(N, self.hidden_size)) if self.cell_type == "lstm" else h
        for t in range(T):
            state = step(X[:, t], state, *weights)
        h_last = state[1] if self.cell_type == "lstm" else state
        return self.head(h_last)
'''), "the LSTM classifies from the cell state c_T instead of h_T"),
    Mutant("classifier_truncated_bptt", "RowClassifier", _classifier('''
        h = X.new_zeros(N, self.hidden_size)
        state = (h, X.new_zeros(N, self.hidden_size)) if self.cell_type == "lstm" else h
        for t in range(T):
            if t > 0 and t % 8 == 0:                # truncated BPTT: gradients flow back 8 steps at most
                state = tuple(s.detach() for s in state) if self.cell_type == "lstm" else state.detach()
            state = step(X[:, t], state, *weights)
        h_last = state[0] if self.cell_type == "lstm" else state
        return self.head(h_last)
'''), "detaches the state every 8 steps (truncated BPTT): right logits, but no gradient reaches rows more "
       "than 8 steps before the end"),
    Mutant("classifier_returns_probabilities", "RowClassifier", _classifier('''
        h = X.new_zeros(N, self.hidden_size)
        state = (h, X.new_zeros(N, self.hidden_size)) if self.cell_type == "lstm" else h
        for t in range(T):
            state = step(X[:, t], state, *weights)
        h_last = state[0] if self.cell_type == "lstm" else state
        return torch.softmax(self.head(h_last), dim=1)
'''), "returns softmax probabilities instead of logits"),
    # train_row_classifier
    Mutant("train_without_zero_grad", "train_row_classifier", _train('''
            loss = F.cross_entropy(model(X_batch), y_batch)
            loss.backward()
            if max_norm is not None:
                clip_grad_norm(model.parameters(), max_norm)
            optimizer.step()
'''), "never zeroes the gradients, so they accumulate across steps"),
    Mutant("train_clips_after_step", "train_row_classifier", _train('''
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X_batch), y_batch)
            loss.backward()
            optimizer.step()
            if max_norm is not None:
                clip_grad_norm(model.parameters(), max_norm)
'''), "clips after the optimizer step, when it no longer matters"),
    Mutant("train_without_clipping", "train_row_classifier", _train('''
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X_batch), y_batch)
            loss.backward()
            optimizer.step()
'''), "forgets gradient clipping"),
    Mutant("train_optimizer_per_epoch", "train_row_classifier", '''
def train_row_classifier(model, X, y, num_epochs=15, lr=1e-2, batch_size=64, max_norm=1.0, seed=0, verbose=True):
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in progress(range(num_epochs), enabled=verbose):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            X_batch, y_batch = X[idx].to(dev), y[idx].to(dev)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X_batch), y_batch)
            loss.backward()
            if max_norm is not None:
                clip_grad_norm(model.parameters(), max_norm)
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses
''', "creates a new Adam every epoch, resetting its moment estimates"),
    Mutant("train_shuffles_once", "train_row_classifier", _TRAINED.replace(
        "    generator = torch.Generator().manual_seed(seed)\n", "").replace(
        "generator=generator)", "generator=torch.Generator().manual_seed(seed))"),
        "re-seeds the generator every epoch, so every epoch sees the same order"),
    Mutant("train_drops_last_batch", "train_row_classifier", _TRAINED.replace(
        "total = 0.0", "total, seen = 0.0, 0").replace(
        "range(0, len(X), batch_size)", "range(0, len(X) - batch_size + 1, batch_size)").replace(
        "            total += loss.item() * len(idx)\n", "            total += loss.item() * len(idx)\n            seen += len(idx)\n").replace(
        "total / len(X)", "total / max(seen, 1)"),
        "drops the last, smaller batch (as DataLoader(drop_last=True) would)"),
    Mutant("train_loss_mean_of_batch_means", "train_row_classifier", _TRAINED.replace(
        "total = 0.0", "batch_losses = []").replace(
        "total += loss.item() * len(idx)", "batch_losses.append(loss.item())").replace(
        "losses.append(total / len(X))", "losses.append(sum(batch_losses) / len(batch_losses))"),
        "reports the epoch loss as the mean of the batch means (the smaller last batch counts as much as a full one)"),
    Mutant("train_never_shuffles", "train_row_classifier", _TRAINED.replace(
        "    generator = torch.Generator().manual_seed(seed)\n", "").replace(
        "        order = torch.randperm(len(X), generator=generator)\n", "").replace(
        "idx = order[start:start + batch_size]", "idx = torch.arange(start, min(start + batch_size, len(X)))"),
        "walks through the examples in their stored order, never shuffling"),
]
