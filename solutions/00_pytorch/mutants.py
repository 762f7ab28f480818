"""Plausible wrong answers for assignment 00; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _jacobian(body):
    return '''
def jacobian(f, x):
''' + body


def _mlp(init, forward='''
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
'''):
    return '''
class MLP(nn.Module):
    def __init__(self, in_dim, hidden_dims, out_dim, activation=nn.ReLU):
        super().__init__()
''' + init + '''
    def forward(self, x):
''' + forward


_MLP_INIT = '''
        dims = [in_dim, *hidden_dims, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation()
'''


def _table(init='''
        table = torch.as_tensor(np.asarray(table), dtype=torch.float32)
        self.X = table[:, :-1]
        self.y = table[:, -1:]
''', length="len(self.X)", item="self.X[i], self.y[i]"):
    return f'''
class TableDataset(Dataset):
    def __init__(self, table):{init}
    def __len__(self):
        return {length}

    def __getitem__(self, i):
        return {item}
'''


def _loaders(n_val="int(val_fraction * len(dataset))", split="generator=g", train="shuffle=True, drop_last=drop_last, generator=g",
             val=""):
    return f'''
def make_loaders(dataset, batch_size, val_fraction=0.2, seed=0, drop_last=False):
    n_val = {n_val}
    g = torch.Generator().manual_seed(seed)
    train_set, val_set = random_split(dataset, [len(dataset) - n_val, n_val], {split})
    train_loader = DataLoader(train_set, batch_size=batch_size, {train})
    val_loader = DataLoader(val_set, batch_size=batch_size{val})
    return train_loader, val_loader
'''


def _evaluate(setup="model.eval()", context="with torch.no_grad():", loss="loss_fn(model(X), y)",
              add="total += {loss}.item() * len(X)", result="total / count"):
    add = add.format(loss=loss)
    return f'''
def evaluate(model, loader, loss_fn=F.mse_loss):
    {setup}
    total, count = 0.0, 0
    {context}
        for X, y in loader:
            {add}
            count += len(X)
    return {result}
'''


def _train(zero="optimizer.zero_grad()", opt="torch.optim.SGD(model.parameters(), lr=lr)", mode="model.train()",
           loss="loss_fn(model(X), y)", record="total += loss.item() * len(X)", epoch_loss="total / count",
           improve="best_loss, waited = val_loss, 0", snapshot="copy.deepcopy(model.state_dict())",
           save="torch.save(best_state, path)", stop="waited >= patience", after_epoch="", end="model.load_state_dict(best_state)",
           validate="evaluate(model, val_loader, loss_fn)"):
    return f'''
def train_model(model, train_loader, val_loader, num_epochs=100, lr=0.1, patience=5, loss_fn=F.mse_loss,
                path=None):
    optimizer = {opt}
    history = {{"train_loss": [], "val_loss": [], "best_epoch": None}}
    best_loss, best_state, waited = math.inf, None, 0
    for epoch in range(num_epochs):
        {mode}
        total, count = 0.0, 0
        for X, y in train_loader:
            {zero}
            loss = {loss}
            loss.backward()
            optimizer.step()
            {record}
            count += len(X)
        history["train_loss"].append({epoch_loss})
        val_loss = {validate}
        history["val_loss"].append(val_loss)
        if val_loss < best_loss:
            {improve}
            history["best_epoch"] = epoch
            best_state = {snapshot}
            if path is not None:
                {save}
        else:
            waited += 1
            if {stop}:
                break
        {after_epoch}
    {end}
    return history
'''


_NO_ZERO_GRAD = _train(zero="pass")

MUTANTS = [
    # jacobian
    Mutant("jacobian_grad_accumulates", "jacobian", _jacobian('''
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    J = torch.zeros(y.numel(), x.numel(), dtype=y.dtype)
    for i in range(y.numel()):
        v = torch.zeros_like(y)
        v[i] = 1.0
        y.backward(v, retain_graph=True)
        J[i] = x.grad
    return J
'''), "reads x.grad after each backward without zeroing it: row i holds the sum of rows 0..i"),
    Mutant("jacobian_transposed", "jacobian", _jacobian('''
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    rows = [torch.autograd.grad(y, x, torch.eye(y.numel(), dtype=y.dtype)[i], retain_graph=True)[0]
            for i in range(y.numel())]
    return torch.stack(rows, dim=1)
'''), "stacks the vector-Jacobian products as columns: returns J^T"),
    Mutant("jacobian_ones_vector", "jacobian", _jacobian('''
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    J = torch.zeros(y.numel(), x.numel(), dtype=y.dtype)
    for i in range(y.numel()):
        (row,) = torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True)
        J[i] = row
    return J
'''), "uses v = (1, ..., 1) for every row: each row is the gradient of sum(y)"),
    Mutant("jacobian_assumes_square", "jacobian", _jacobian('''
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    n = x.numel()
    J = torch.zeros(n, n, dtype=y.dtype)
    for i in range(min(n, y.numel())):
        v = torch.zeros_like(y)
        v[i] = 1.0
        (row,) = torch.autograd.grad(y, x, v, retain_graph=True)
        J[i] = row
    return J
'''), "sizes J as (n, n): wrong whenever f has as many outputs as inputs only by accident"),
    Mutant("jacobian_no_retain_graph", "jacobian", _jacobian('''
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    J = torch.zeros(y.numel(), x.numel(), dtype=y.dtype)
    for i in range(y.numel()):
        v = torch.zeros_like(y)
        v[i] = 1.0
        (row,) = torch.autograd.grad(y, x, v)
        J[i] = row
    return J
'''), "the graph is freed after the first backward pass"),
    Mutant("jacobian_uses_library", "jacobian", _jacobian('''
    return torch.autograd.functional.jacobian(f, x.detach())
'''), "calls torch.autograd.functional.jacobian instead of building J"),
    # MLP
    Mutant("mlp_plain_list", "MLP", _mlp('''
        dims = [in_dim, *hidden_dims, out_dim]
        self.layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        self.activation = activation()
'''), "keeps the layers in a Python list: they are not registered, so the optimizer sees no parameters"),
    Mutant("mlp_activation_on_output", "MLP", _mlp(_MLP_INIT, '''
        for layer in self.layers:
            x = self.activation(layer(x))
        return x
'''), "squashes the output too (a ReLU output can never be negative)"),
    Mutant("mlp_ignores_activation", "MLP", _mlp('''
        dims = [in_dim, *hidden_dims, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = nn.ReLU()
'''), "always uses ReLU, whatever activation says"),
    Mutant("mlp_first_hidden_only", "MLP", _mlp('''
        dims = [in_dim, hidden_dims[0], out_dim] if hidden_dims else [in_dim, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation()
'''), "builds one hidden layer whatever the length of hidden_dims"),
    # TableDataset
    Mutant("table_len_is_columns", "TableDataset", _table(length="self.X.shape[1] + 1"),
           "returns the number of columns instead of the number of rows"),
    Mutant("table_scalar_target", "TableDataset", _table(item="self.X[i], self.y[i, 0]"),
           "returns the target as a scalar of shape (), so batches of y have shape (B,)"),
    Mutant("table_keeps_float64", "TableDataset", _table(init='''
        table = torch.from_numpy(np.asarray(table))
        self.X = table[:, :-1]
        self.y = table[:, -1:]
'''), "keeps NumPy's float64"),
    Mutant("table_target_in_features", "TableDataset", _table(item="self.table[i], self.y[i]", init='''
        self.table = torch.as_tensor(np.asarray(table), dtype=torch.float32)
        self.X = self.table[:, :-1]
        self.y = self.table[:, -1:]
'''), "returns the whole row, target included, as the features"),
    Mutant("table_first_column_target", "TableDataset", _table(init='''
        table = torch.as_tensor(np.asarray(table), dtype=torch.float32)
        self.X = table[:, 1:]
        self.y = table[:, :1]
'''), "takes the first column as the target"),
    # make_loaders
    Mutant("loaders_no_shuffle", "make_loaders", _loaders(train="drop_last=drop_last"),
           "never shuffles the training set"),
    Mutant("loaders_fraction_is_train", "make_loaders", _loaders(n_val="len(dataset) - int(val_fraction * len(dataset))"),
           "uses val_fraction as the fraction of training examples"),
    Mutant("loaders_unseeded_split", "make_loaders", _loaders(split="", train="shuffle=True, drop_last=drop_last"),
           "ignores seed: random_split and the shuffles use the global generator"),
    Mutant("loaders_ignore_drop_last", "make_loaders", _loaders(train="shuffle=True, generator=g"),
           "ignores drop_last"),
    Mutant("loaders_shuffle_validation", "make_loaders", _loaders(val=", shuffle=True"),
           "shuffles the validation loader too"),
    Mutant("loaders_drop_last_validation", "make_loaders", _loaders(val=", drop_last=drop_last"),
           "drops the last validation batch as well, losing validation examples"),
    # evaluate
    Mutant("evaluate_mean_of_batch_means", "evaluate", _evaluate(add="total += {loss}.item()", result="total / len(loader)"),
           "averages the batch means without weighting by batch size"),
    Mutant("evaluate_train_mode", "evaluate", _evaluate(setup="pass"), "forgets model.eval()"),
    Mutant("evaluate_with_grad", "evaluate", _evaluate(context="if True:"), "records a graph during validation"),
    Mutant("evaluate_ignores_loss_fn", "evaluate", _evaluate(loss="F.mse_loss(model(X), y)"), "always uses the MSE"),
    Mutant("evaluate_returns_tensor", "evaluate", _evaluate(add="total += {loss} * len(X)".replace(".item()", "")),
           "returns a tensor instead of a float"),
    # train_model
    Mutant("train_no_zero_grad", "train_model", _NO_ZERO_GRAD, "never zeroes the gradients: they accumulate across steps"),
    Mutant("train_fixed_lr", "train_model", _train(opt="torch.optim.SGD(model.parameters(), lr=0.1)"), "ignores lr"),
    Mutant("train_ignores_loss_fn", "train_model", _train(loss="F.mse_loss(model(X), y)"),
           "trains with the MSE whatever loss_fn is"),
    Mutant("train_no_train_mode", "train_model", _train(mode="pass"),
           "never calls model.train(): after the first validation the model stays in eval mode"),
    Mutant("train_mean_of_batch_means", "train_model", _train(record="total += loss.item()", epoch_loss="total / len(train_loader)"),
           "averages the batch losses without weighting by batch size"),
    Mutant("train_counter_not_reset", "train_model", _train(improve="best_loss = val_loss"),
           "counts every epoch without improvement since the start, never resetting the count"),
    Mutant("train_patience_off_by_one", "train_model", _train(stop="waited > patience"),
           "waits one epoch more than patience"),
    Mutant("train_no_early_stopping", "train_model", _train(stop="False"), "always runs num_epochs epochs"),
    Mutant("train_keeps_last_weights", "train_model", _train(end="pass"), "never loads the best weights back"),
    Mutant("train_state_dict_not_copied", "train_model", _train(snapshot="model.state_dict()"),
           "keeps a reference to the live state_dict: the 'best' weights follow the optimizer"),
    Mutant("train_saves_every_epoch", "train_model", _train(after_epoch='''if path is not None:
            torch.save(model.state_dict(), path)'''), "overwrites the file with the latest weights every epoch"),
    Mutant("train_saves_whole_model", "train_model", _train(save="torch.save(model, path)"),
           "pickles the whole model instead of its state_dict"),
    Mutant("train_validates_on_training_set", "train_model", _train(validate="evaluate(model, train_loader, loss_fn)"),
           "computes the 'validation' loss on the training loader"),
    # a wrong answer that also patches the test helpers in its own process: it must gain nothing
    Mutant("tamper_test_helpers", "train_model", _NO_ZERO_GRAD + '''
import dlcourse.checks as _checks
_checks.check_close = lambda *args, **kwargs: None
_checks.check_shape = lambda *args, **kwargs: None
''', "no zero_grad, then disables check_close and check_shape in the student process"),
]
