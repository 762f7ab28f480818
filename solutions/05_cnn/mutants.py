"""Plausible wrong answers for assignment 05; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _conv2d(window, weight="weight", pad_at="ph:ph + H, pw:pw + W", bias=True):
    """conv2d (unfold by hand) with one piece swapped for a student's mistake."""
    add_bias = '''
    if bias is not None:
        out = out + bias.view(1, C_out, 1, 1)''' if bias else ""
    return f'''
def conv2d(X, weight, bias=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C_in, H, W = X.shape
    C_out, _, kH, kW = weight.shape
    H_out, W_out = conv_output_size(H, kH, sh, ph), conv_output_size(W, kW, sw, pw)
    X_pad = X.new_zeros(N, C_in, H + 2 * ph, W + 2 * pw)
    X_pad[:, :, {pad_at}] = X
    kernel = {weight}
    out = X.new_zeros(N, C_out, H_out, W_out)
    for u in range(kH):
        for v in range(kW):
            window = {window}
            out = out + torch.einsum("nchw,oc->nohw", window, kernel[:, :, u, v])''' + add_bias + '''
    return out
'''


_STRIDED = "X_pad[:, :, u:u + sh * (H_out - 1) + 1:sh, v:v + sw * (W_out - 1) + 1:sw]"


def _max_pool2d(body):
    return '''
def max_pool2d(X, kernel_size, stride=None):
    kH, kW = pair(kernel_size)
''' + body


def _train_cnn(seed="seed_everything(seed)", inner_zero="optimizer.zero_grad()", inner_step="optimizer.step()",
               after_batches="", record="total_loss / N"):
    return f'''
def train_cnn(X, y, num_epochs=15, lr=2e-2, batch_size=128, channels=(8, 16), seed=0, device=None, verbose=True):
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    history = {{"loss": [], "accuracy": []}}
    {seed}
    model = SmallCNN(channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    X, y = X.to(device), y.to(device)
    N = len(y)
    for _ in progress(range(num_epochs), enabled=verbose):
        model.train()
        order = torch.randperm(N, device=device)
        total_loss, correct = 0.0, 0
        for start in range(0, N, batch_size):
            batch = order[start:start + batch_size]
            logits = model(X[batch])
            loss = F.cross_entropy(logits, y[batch])
            {inner_zero}
            loss.backward()
            {inner_step}
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(dim=1) == y[batch]).sum())
        {after_batches}
        history["loss"].append({record})
        history["accuracy"].append(correct / N)
    return model, history
'''


def _small_cnn(init, forward):
    return f'''
class SmallCNN(nn.Module):
    def __init__(self, channels=(8, 16), num_classes=10):
        super().__init__()
        c1, c2 = channels
{init}

    def forward(self, x):
{forward}
'''


_INIT = '''        self.conv1 = nn.Conv2d(1, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.fc = nn.Linear(4 * c2, num_classes)'''


MUTANTS = [
    # conv_output_size
    Mutant("output_size_missing_plus_one", "conv_output_size", '''
def conv_output_size(n, kernel_size, stride=1, padding=0):
    return (n + 2 * padding - kernel_size) // stride
''', "counts the steps between positions instead of the positions"),
    Mutant("output_size_ignores_stride", "conv_output_size", '''
def conv_output_size(n, kernel_size, stride=1, padding=0):
    return n + 2 * padding - kernel_size + 1
''', "forgets to divide by the stride"),
    Mutant("output_size_padding_one_side", "conv_output_size", '''
def conv_output_size(n, kernel_size, stride=1, padding=0):
    return (n + padding - kernel_size) // stride + 1
''', "adds the padding once instead of on both sides"),
    Mutant("output_size_rounds_up", "conv_output_size", '''
def conv_output_size(n, kernel_size, stride=1, padding=0):
    return -(-(n + 2 * padding - kernel_size) // stride) + 1
''', "rounds up, counting a last position where the kernel sticks out"),

    # conv2d
    Mutant("conv2d_flips_kernel", "conv2d", _conv2d(_STRIDED, weight="weight.flip(-2, -1)"),
           "true convolution: flips the kernel, unlike F.conv2d"),
    Mutant("conv2d_pads_bottom_right_only", "conv2d", _conv2d(_STRIDED, pad_at=":H, :W"),
           "puts all the padding after the image instead of around it"),
    Mutant("conv2d_ignores_stride_in_window", "conv2d",
           _conv2d("X_pad[:, :, u:u + H_out, v:v + W_out]"),
           "gets the output size right but reads consecutive positions instead of every stride-th"),
    Mutant("conv2d_ignores_bias", "conv2d", _conv2d(_STRIDED, bias=False), "forgets to add the bias"),
    Mutant("conv2d_naive_numpy", "conv2d", '''
def conv2d(X, weight, bias=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    Xn, Wn = X.detach().numpy(), weight.detach().numpy()
    N, C_in, H, W = Xn.shape
    C_out, _, kH, kW = Wn.shape
    H_out, W_out = conv_output_size(H, kH, sh, ph), conv_output_size(W, kW, sw, pw)
    Xp = np.pad(Xn, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, C_out, H_out, W_out))
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, o, i, j] = np.sum(Xp[n, :, i * sh:i * sh + kH, j * sw:j * sw + kW] * Wn[o])
    if bias is not None:
        out += bias.detach().numpy()[None, :, None, None]
    return torch.tensor(out, dtype=X.dtype)
''', "right values, but through NumPy: autograd cannot differentiate it"),

    Mutant("conv2d_calls_library", "conv2d", '''
def conv2d(X, weight, bias=None, stride=1, padding=0):
    return F.conv2d(X, weight, bias, stride=stride, padding=padding)
''', "hands the work to F.conv2d instead of writing it"),

    # max_pool2d
    Mutant("max_pool2d_takes_mean", "max_pool2d", _max_pool2d('''
    sh, sw = pair(kernel_size if stride is None else stride)
    N, C, H, W = X.shape
    H_out, W_out = conv_output_size(H, kH, sh), conv_output_size(W, kW, sw)
    out = 0
    for u in range(kH):
        for v in range(kW):
            out = out + X[:, :, u:u + sh * (H_out - 1) + 1:sh, v:v + sw * (W_out - 1) + 1:sw]
    return out / (kH * kW)
'''), "average pooling instead of max pooling"),
    Mutant("max_pool2d_starts_from_zero", "max_pool2d", _max_pool2d('''
    sh, sw = pair(kernel_size if stride is None else stride)
    N, C, H, W = X.shape
    H_out, W_out = conv_output_size(H, kH, sh), conv_output_size(W, kW, sw)
    out = X.new_zeros(N, C, H_out, W_out)
    for u in range(kH):
        for v in range(kW):
            out = torch.maximum(out, X[:, :, u:u + sh * (H_out - 1) + 1:sh, v:v + sw * (W_out - 1) + 1:sw])
    return out
'''), "running maximum initialised at 0: wrong where a whole window is negative"),
    Mutant("max_pool2d_default_stride_one", "max_pool2d", _max_pool2d('''
    sh, sw = pair(1 if stride is None else stride)
    N, C, H, W = X.shape
    H_out, W_out = conv_output_size(H, kH, sh), conv_output_size(W, kW, sw)
    out = None
    for u in range(kH):
        for v in range(kW):
            window = X[:, :, u:u + sh * (H_out - 1) + 1:sh, v:v + sw * (W_out - 1) + 1:sw]
            out = window if out is None else torch.maximum(out, window)
    return out
'''), "stride=None taken as 1 instead of the kernel size"),
    Mutant("max_pool2d_ignores_stride", "max_pool2d", _max_pool2d('''
    sh, sw = kH, kW
    N, C, H, W = X.shape
    H_out, W_out = conv_output_size(H, kH, sh), conv_output_size(W, kW, sw)
    out = None
    for u in range(kH):
        for v in range(kW):
            window = X[:, :, u:u + sh * (H_out - 1) + 1:sh, v:v + sw * (W_out - 1) + 1:sw]
            out = window if out is None else torch.maximum(out, window)
    return out
'''), "always uses non-overlapping windows"),
    Mutant("max_pool2d_swaps_axes", "max_pool2d", _max_pool2d('''
    sh, sw = pair(kernel_size if stride is None else stride)
    N, C, H, W = X.shape
    H_out, W_out = conv_output_size(H, kH, sh), conv_output_size(W, kW, sw)
    out = X.new_full((N, C, H_out, W_out), float("-inf"))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = X[:, :, j * sw:j * sw + kW, i * sh:i * sh + kH].amax(dim=(2, 3))
    return out
'''), "pools over the wrong axes: window (i, j) read at columns i, rows j"),

    Mutant("max_pool2d_calls_library", "max_pool2d", '''
def max_pool2d(X, kernel_size, stride=None):
    return F.max_pool2d(X, kernel_size, stride)
''', "hands the work to F.max_pool2d instead of writing it"),

    # SmallCNN
    Mutant("cnn_without_relu", "SmallCNN", _small_cnn(_INIT, '''
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        return self.fc(x.flatten(1))'''), "no nonlinearity: the convolutions collapse into one linear map"),
    Mutant("cnn_average_pooling", "SmallCNN", _small_cnn(_INIT, '''
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))'''), "average pooling instead of max pooling"),
    Mutant("cnn_one_pooling_layer", "SmallCNN", _small_cnn('''        self.conv1 = nn.Conv2d(1, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.fc = nn.Linear(16 * c2, num_classes)''', '''
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(x.flatten(1))'''), "forgets the second pooling (and sizes fc to match)"),
    Mutant("cnn_no_padding", "SmallCNN", _small_cnn('''        self.conv1 = nn.Conv2d(1, c1, kernel_size=3)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3)
        self.fc = nn.Linear(c2, num_classes)''', '''
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(x.flatten(1))'''), "convolutions without padding shrink 8x8 to a single pixel"),

    # train_cnn
    Mutant("train_without_zero_grad", "train_cnn", _train_cnn(inner_zero="pass"),
           "gradients accumulate over all batches and epochs"),
    Mutant("train_steps_once_per_epoch", "train_cnn", _train_cnn(inner_step="pass", after_batches="optimizer.step()"),
           "optimizer.step() after the batch loop: one update per epoch"),
    Mutant("train_ignores_seed", "train_cnn", _train_cnn(seed="pass"), "never seeds: runs cannot be repeated"),
    Mutant("train_records_last_batch_loss", "train_cnn", _train_cnn(record="loss.item()"),
           "history['loss'] holds the last batch's loss, not the epoch's mean"),
    Mutant("train_shuffles_once", "train_cnn", _train_cnn().replace(
        "    for _ in progress(", "    order = torch.randperm(N, device=device)\n    for _ in progress(").replace(
        "        order = torch.randperm(N, device=device)\n", ""), "draws one order before the first epoch and reuses it"),
    Mutant("train_never_shuffles", "train_cnn", _train_cnn().replace(
        "order = torch.randperm(N, device=device)", "order = torch.arange(N, device=device)"),
           "goes through the examples in their stored order every epoch"),
    Mutant("train_drops_last_batch", "train_cnn", _train_cnn().replace(
        "for start in range(0, N, batch_size):", "for start in range(0, N - batch_size + 1, batch_size):"),
           "skips the last, smaller batch (as DataLoader(drop_last=True) would)"),
    Mutant("train_adam_per_batch", "train_cnn", _train_cnn(inner_zero="optimizer = torch.optim.Adam(model.parameters(), "
                                                           "lr=lr)\n            optimizer.zero_grad()"),
           "creates a new Adam for every batch, so its moment estimates restart at each step"),
    Mutant("train_ignores_channels", "train_cnn", _train_cnn().replace("SmallCNN(channels)", "SmallCNN()"),
           "always builds the default SmallCNN, whatever channels says"),
    Mutant("train_fixed_batch_size", "train_cnn", _train_cnn().replace(
        "for start in range(0, N, batch_size):\n            batch = order[start:start + batch_size]",
        "for start in range(0, N, 128):\n            batch = order[start:start + 128]"),
           "uses batches of 128 whatever batch_size says"),
]
