"""Plausible wrong answers for experiment 2 (CIFAR-10, ResNet20); `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _block(init_conv1="nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)",
           init_conv2="nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)",
           ending="return F.relu(out + shortcut)", first_relu="F.relu"):
    return f'''
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = {init_conv1}
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = {init_conv2}
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x):
        out = {first_relu}(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels > 0:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        {ending}
'''


def _resnet(stages=None, stem="F.relu(self.bn1(self.conv1(x)))", pool="x.mean(dim=(2, 3))"):
    stages = stages or '''
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64), BasicBlock(64, 64))'''
    return f'''
class ResNet20(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16){stages}
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = {stem}
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc({pool})
'''


def _evaluate(mode="model.eval()", context="torch.no_grad()", result="correct / total", per_batch=""):
    return f'''
def evaluate(model, loader):
    device = next(model.parameters()).device
    {mode}
    correct, total, batch_accuracies = 0, 0, []
    with {context}:
        for X, y in loader:
            X, y = to_device(X, y, device)
            with autocast(device):
                logits = model(X)
            right = int((logits.argmax(dim=1) == y).sum())
            correct += right
            total += len(y)
            batch_accuracies.append(right / len(y))
    {per_batch}
    return {result}
'''


def _train(set_lr="group[\"lr\"] = lr", epochs="range(start_epoch, num_epochs)", zero="optimizer.zero_grad()",
           ckpt_epoch="epoch + 1"):
    return f'''
def train(model, train_loader, test_loader, num_epochs=10, start_epoch=0, optimizer=None,
          checkpoint_dir=None, verbose=True):
    device = next(model.parameters()).device
    if optimizer is None:
        optimizer = make_optimizer(model)
    history = {{"epoch": [], "lr": [], "train_loss": [], "train_acc": [], "test_acc": []}}
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    for epoch in {epochs}:
        lr = lr_at_epoch(epoch)
        for group in optimizer.param_groups:
            {set_lr}
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for X, y in train_loader:
            X, y = to_device(X, y, device)
            with autocast(device):
                logits = model(X)
                loss = F.cross_entropy(logits, y)
            {zero}
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
        test_acc = evaluate(model, test_loader)
        history["epoch"].append(epoch)
        history["lr"].append(lr)
        history["train_loss"].append(loss_sum / seen)
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(test_acc)
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir / f"epoch_{{epoch + 1}}.pth", model, optimizer, {ckpt_epoch}, test_acc)
    if checkpoint_dir is not None and history["epoch"]:
        save_checkpoint(checkpoint_dir / "final.pth", model, optimizer, num_epochs, history["test_acc"][-1])
    return history
'''


MUTANTS = [
    # BasicBlock
    Mutant("block_without_shortcut", "BasicBlock", _block(ending="return F.relu(out)"),
           "forgets the residual connection: a plain two-layer block"),
    Mutant("block_relu_before_add", "BasicBlock", _block(ending="return F.relu(out) + shortcut"),
           "applies the last ReLU to the residual branch before adding the shortcut"),
    Mutant("block_stride_on_second_conv", "BasicBlock", _block(
        init_conv1="nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)",
        init_conv2="nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)"),
           "downsamples in the second convolution instead of the first"),
    Mutant("block_conv_with_bias", "BasicBlock", _block(
        init_conv1="nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)",
        init_conv2="nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)"),
           "keeps the convolution biases that BatchNorm makes redundant (wrong parameter count)"),

    # ResNet20
    Mutant("resnet_two_blocks_per_stage", "ResNet20", _resnet(stages='''
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))'''),
           "builds ResNet14: two blocks per stage"),
    Mutant("resnet_stride_in_second_block", "ResNet20", _resnet(stages='''
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32), BasicBlock(32, 32, stride=2), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64), BasicBlock(64, 64, stride=2), BasicBlock(64, 64))'''),
           "each stage downsamples in its second block: the same parameters and stage shapes, another network"),
    Mutant("resnet_max_pool_head", "ResNet20", _resnet(pool="x.amax(dim=(2, 3))"),
           "global max pooling instead of global average pooling"),
    Mutant("resnet_stem_without_relu", "ResNet20", _resnet(stem="self.bn1(self.conv1(x))"),
           "forgets the ReLU after the stem's BatchNorm"),

    # lr_at_epoch
    Mutant("lr_never_drops", "lr_at_epoch", '''
def lr_at_epoch(epoch, base_lr=0.1, drop_at=5, gamma=0.1):
    return base_lr
''', "the schedule never drops: LR 0.1 for all 10 epochs"),
    Mutant("lr_drops_one_epoch_late", "lr_at_epoch", '''
def lr_at_epoch(epoch, base_lr=0.1, drop_at=5, gamma=0.1):
    return base_lr if epoch <= drop_at else base_lr * gamma
''', "off by one: epoch 5 still at LR 0.1"),
    Mutant("lr_hardcoded", "lr_at_epoch", '''
def lr_at_epoch(epoch, base_lr=0.1, drop_at=5, gamma=0.1):
    return 0.1 if epoch < 5 else 0.01
''', "hard-codes 0.1 / 0.01 / epoch 5 and ignores the arguments"),

    # evaluate
    Mutant("evaluate_without_eval_mode", "evaluate", _evaluate(mode="pass"),
           "never calls model.eval(): BatchNorm uses batch statistics (and updates its running ones), dropout stays on"),
    Mutant("evaluate_mean_of_batch_accuracies", "evaluate", _evaluate(result="sum(batch_accuracies) / len(batch_accuracies)"),
           "averages per-batch accuracies, which over-weights a small last batch"),
    Mutant("evaluate_with_autograd", "evaluate", _evaluate(context="contextlib.nullcontext()"),
           "evaluates without torch.no_grad(): builds autograd graphs it never uses"),

    # save_checkpoint
    Mutant("checkpoint_without_net_key", "save_checkpoint", '''
def save_checkpoint(path, model, optimizer, epoch, acc):
    torch.save({"model": model.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(), "acc": acc}, path)
''', "saves the weights under 'model', so torch.load(path)['net'] fails"),
    Mutant("checkpoint_saves_model_object", "save_checkpoint", '''
def save_checkpoint(path, model, optimizer, epoch, acc):
    torch.save({"net": model, "epoch": epoch, "optimizer": optimizer, "acc": acc}, path)
''', "pickles the model and optimizer objects instead of their state dicts"),
    Mutant("checkpoint_parameters_only", "save_checkpoint", '''
def save_checkpoint(path, model, optimizer, epoch, acc):
    net = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.save({"net": net, "epoch": epoch, "optimizer": optimizer.state_dict(), "acc": acc}, path)
''', "saves the parameters but not the buffers (BatchNorm running statistics)"),
    Mutant("checkpoint_without_optimizer", "save_checkpoint", '''
def save_checkpoint(path, model, optimizer, epoch, acc):
    torch.save({"net": model.state_dict(), "epoch": epoch, "acc": acc}, path)
''', "leaves out the optimizer state: momentum restarts from zero on resume"),

    # train
    Mutant("train_without_zero_grad", "train", _train(zero="pass"),
           "never zeroes the gradients: they accumulate over all batches"),
    Mutant("train_never_sets_lr", "train", _train(set_lr="pass"),
           "computes lr_at_epoch but never gives it to the optimizer: LR stays 0.1"),
    Mutant("train_ignores_start_epoch", "train", _train(epochs="range(num_epochs - start_epoch)"),
           "runs the right number of epochs but numbers them from 0: a resumed run repeats the LR 0.1 phase"),
    Mutant("train_checkpoint_epoch_index", "train", _train(ckpt_epoch="epoch"),
           "stores the epoch index instead of the number of epochs completed: resuming repeats an epoch"),
]
