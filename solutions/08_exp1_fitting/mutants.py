"""Plausible wrong answers for experiment 1; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _target(body):
    return f'''
def target_function(x):
    return {body}
'''


def _make_data(draw, target="f(X)"):
    return f'''
def make_data(f, num_samples, x_range=X_RANGE, seed=0):
    g = torch.Generator().manual_seed(seed)
    low, high = x_range
    X = {draw}
    y = {target}
    return X, y
'''


def _make_mlp(hidden_layer, last="layers.append(nn.Linear(width, 1))"):
    return f'''
def make_mlp(hidden_sizes=HIDDEN_SIZES, activation=nn.ReLU):
    layers, width = [], 1
    for size in hidden_sizes:
        layers += {hidden_layer}
        width = size
    {last}
    return nn.Sequential(*layers)
'''


def _train(zero="optimizer.zero_grad()", backward="loss.backward()", step="optimizer.step()",
           before_loop="", draw="idx = torch.randint(0, N, (batch_size,), generator=g).to(device)"):
    return f'''
def train(model, X, y, num_epochs=NUM_TRAIN_EPOCHS, lr=LEARNING_RATE, batch_size=BATCH_SIZE, seed=0,
          device=None, verbose=True):
    device = torch.device(device) if device is not None else training_device()
    losses = []
    model.to(device)
    X, y = X.to(device), y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    N = len(X)
    {before_loop}
    for _ in progress(range(num_epochs), enabled=verbose):
        if batch_size is None or batch_size >= N:
            X_batch, y_batch = X, y
        else:
            {draw}
            X_batch, y_batch = X[idx], y[idx]
        loss = torch.mean((model(X_batch) - y_batch) ** 2)
        {zero}
        {backward}
        {step}
        losses.append(loss.item())
    return losses
'''


def _my_function(body):
    return f'''
def my_function(x):
    return {body}
'''


def _fit_and_save(data="make_data(f, NUM_TRAIN_SAMPLES, x_range, seed=seed)", save_before="",
                  save_after="torch.save(model.state_dict(), path)"):
    return f'''
def fit_and_save(f, path="model.pth", x_range=X_RANGE, hidden_sizes=HIDDEN_SIZES, num_epochs=NUM_TRAIN_EPOCHS,
                 lr=LEARNING_RATE, seed=0, verbose=True):
    seed_everything(seed)
    X, y = {data}
    model = make_mlp(hidden_sizes)
    {save_before}
    losses = train(model, X, y, num_epochs=num_epochs, lr=lr, batch_size=BATCH_SIZE, seed=seed, verbose=verbose)
    {save_after}
    return model, losses
'''


MUTANTS = [
    # target_function
    Mutant("f_sin_without_factor_2", "target_function",
           _target("x ** 2 + torch.sin(x) + torch.cos(x - 1) - 5"), "writes sin(x) instead of 2 sin(x)"),
    Mutant("f_cos_x_plus_1", "target_function",
           _target("x ** 2 + 2 * torch.sin(x) + torch.cos(x + 1) - 5"), "cos(x + 1) instead of cos(x - 1)"),
    Mutant("f_drops_constant", "target_function",
           _target("x ** 2 + 2 * torch.sin(x) + torch.cos(x - 1)"), "forgets the - 5"),

    # make_data
    Mutant("data_one_dimensional", "make_data",
           _make_data("low + (high - low) * torch.rand(num_samples, generator=g)"),
           "draws X of shape (N,) instead of (N, 1)"),
    Mutant("data_range_scaled_by_high", "make_data",
           _make_data("low + high * torch.rand(num_samples, 1, generator=g)"),
           "scales by high instead of high - low: X covers only (-5, 0)"),
    Mutant("data_ignores_seed", "make_data",
           _make_data("low + (high - low) * torch.rand(num_samples, 1)"),
           "draws from the global generator: the seed has no effect"),

    # make_mlp
    Mutant("mlp_without_activation", "make_mlp", _make_mlp("[nn.Linear(width, size)]"),
           "no nonlinearity: the layers collapse into one straight line"),
    Mutant("mlp_activation_on_output", "make_mlp", _make_mlp(
        "[nn.Linear(width, size), activation()]",
        last="layers += [nn.Linear(width, 1), activation()]"),
           "an activation after the output layer: a ReLU output cannot go negative"),
    Mutant("mlp_ignores_activation_argument", "make_mlp", _make_mlp("[nn.Linear(width, size), nn.ReLU()]"),
           "always uses ReLU, whatever activation is asked for"),

    # train
    Mutant("train_without_zero_grad", "train", _train(zero="pass"),
           "never zeroes the gradients: every step uses the sum of all past gradients"),
    Mutant("train_without_step", "train", _train(step="pass"),
           "forgets optimizer.step(): the parameters never change"),
    Mutant("train_without_backward", "train", _train(backward="pass"),
           "never backpropagates the loss: the optimizer has no gradients to follow"),
    Mutant("train_same_batch_every_step", "train", _train(
        before_loop="idx = torch.randint(0, N, (min(batch_size or N, N),), generator=g).to(device)", draw="pass"),
           "draws one batch before the loop and trains on it forever"),

    # my_function
    Mutant("my_function_is_the_target", "my_function",
           _my_function("x ** 2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5"), "keeps the function of part 1"),
    Mutant("my_function_uses_math", "my_function",
           _my_function("math.sin(3 * x) * math.exp(-x ** 2 / 8)"),
           "math.sin only takes a single number, not a tensor"),
    Mutant("my_function_straight_line", "my_function", _my_function("0.5 * x - 1"),
           "a straight line: nothing for a network to learn"),

    # fit_and_save
    Mutant("save_whole_model", "fit_and_save", _fit_and_save(save_after="torch.save(model, path)"),
           "pickles the whole model instead of its state_dict"),
    Mutant("save_before_training", "fit_and_save", _fit_and_save(
        save_before="torch.save(model.state_dict(), path)", save_after="pass"),
           "saves the untrained weights: the file holds the initial network"),
    Mutant("fit_trains_on_target_function", "fit_and_save",
           _fit_and_save(data="make_data(target_function, NUM_TRAIN_SAMPLES, x_range, seed=seed)"),
           "copies the data line of part 5 and ignores the f it is given"),
    Mutant("fit_ignores_x_range", "fit_and_save",
           _fit_and_save(data="make_data(f, NUM_TRAIN_SAMPLES, X_RANGE, seed=seed)"),
           "always draws the data from X_RANGE, whatever x_range it is given"),
    Mutant("fit_ignores_seed", "fit_and_save",
           _fit_and_save(data="make_data(f, NUM_TRAIN_SAMPLES, x_range)"),
           "draws the data with make_data's default seed, not the seed it is given"),
    Mutant("fit_ignores_lr", "fit_and_save", _fit_and_save().replace("lr=lr, batch_size", "lr=LEARNING_RATE, batch_size"),
           "trains at LEARNING_RATE whatever lr it is given"),
    Mutant("my_function_scaled_target", "my_function",
           _my_function("2 * (x ** 2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5) + 3"),
           "part 1's function, doubled and shifted: no new function to fit"),
    Mutant("my_function_shifted_target", "my_function",
           _my_function("(x - 1.5) ** 2 + 2 * torch.sin(x - 1.5) + torch.cos(x - 2.5) - 5"),
           "part 1's function moved right by 1.5: f(x - 1.5), no new function to fit"),
    Mutant("my_function_squeezed_target", "my_function",
           _my_function("0.5 * ((2 * x) ** 2 + 2 * torch.sin(-2 * x) + torch.cos(-2 * x - 1) - 5)"),
           "part 1's function of -2x, halved: mirrored and squeezed, still no new function"),
]
