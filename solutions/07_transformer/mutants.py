"""Plausible wrong answers for assignment 07; `make test` proves each one loses points."""
from autograder.mutants import Mutant


def _sdpa(body):
    return '''
def scaled_dot_product_attention(q, k, v, mask=None):
''' + body + '''
    return out, weights
'''


_MHA_INIT = '''
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads, self.d_head = num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        B, Tq, _ = query.shape
        Tk = key.shape[1]
        h, d = self.num_heads, self.d_head
'''


def _mha(body):
    return _MHA_INIT + body


_ENC_INIT = '''
class EncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, X, mask=None):
'''


def _enc(body):
    return _ENC_INIT + body + '''
        return X
'''


_TINY_INIT = '''
class TinyTransformer(nn.Module):
    def __init__(self, vocab_size, d_model=32, num_heads=2, d_ff=64, num_layers=2, max_len=64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pe", positional_encoding(max_len, d_model))
        self.blocks = nn.ModuleList([EncoderBlock(d_model, num_heads, d_ff) for _ in range(num_layers)])
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, X, mask=None):
        T = X.shape[1]
'''


def _tiny(body):
    return _TINY_INIT + body


def _train(loop):
    return '''
def train_transformer(model, X, Y, num_steps=200, batch_size=64, lr=3e-3, seed=0, device="cpu", verbose=True):
    g = torch.Generator().manual_seed(seed)
    losses = []
    model.to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in progress(range(num_steps), enabled=verbose, desc="training"):
''' + loop + '''
    return losses
'''


#: one correct training step, which the last mutants change in one place each
_STEP = '''        idx = torch.randint(len(X), (batch_size,), generator=g)
        logits = model(X[idx].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].to(device).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
'''


MUTANTS = [
    # scaled_dot_product_attention
    Mutant("sdpa_scaled_by_d_k", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1) / q.shape[-1]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
'''), "divides the scores by d_k instead of sqrt(d_k)"),
    Mutant("sdpa_unscaled", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
'''), "forgets the 1/sqrt(d_k) scaling"),
    Mutant("sdpa_scaled_by_d_v", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
'''), "scales by the width of the values, which only differs when d_v != d_k"),
    Mutant("sdpa_softmax_over_queries", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    out = weights @ v
'''), "normalises over the queries (wrong axis) instead of the keys"),
    Mutant("sdpa_mask_after_softmax", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    out = weights @ v
'''), "zeroes the blocked weights after the softmax, so rows no longer sum to 1"),
    Mutant("sdpa_mask_inverted", "scaled_dot_product_attention", _sdpa('''
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
'''), "reads the mask as True = blocked (nn.MultiheadAttention's convention)"),
    # causal_mask
    Mutant("causal_mask_blocks_diagonal", "causal_mask", '''
def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)
''', "off by one: a token may not attend to itself"),
    Mutant("causal_mask_upper", "causal_mask", '''
def causal_mask(T):
    return torch.triu(torch.ones(T, T, dtype=torch.bool))
''', "upper triangle: every token sees the future instead of the past"),
    Mutant("causal_mask_peeks_one_ahead", "causal_mask", '''
def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=1)
''', "off by one the other way: each token also sees the next one"),
    Mutant("causal_mask_float", "causal_mask", '''
def causal_mask(T):
    return torch.tril(torch.ones(T, T))
''', "a float 0/1 mask instead of a boolean one"),
    Mutant("causal_mask_additive", "causal_mask", '''
def causal_mask(T):
    return torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
''', "PyTorch's additive float mask (0 / -inf) instead of our boolean convention"),
    # MultiHeadAttention
    Mutant("mha_split_without_transpose", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, h, Tq, d)
        k = self.W_k(key).view(B, h, Tk, d)
        v = self.W_v(value).view(B, h, Tk, d)
        if mask is not None:
            mask = mask.unsqueeze(-3)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(B, Tq, h * d)
        return self.W_o(out), weights
'''), "splits the heads with view(B, h, T, d) instead of view(B, T, h, d).transpose(1, 2)"),
    Mutant("mha_merge_without_transpose", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, Tq, h, d).transpose(1, 2)
        k = self.W_k(key).view(B, Tk, h, d).transpose(1, 2)
        v = self.W_v(value).view(B, Tk, h, d).transpose(1, 2)
        if mask is not None:
            mask = mask.unsqueeze(-3)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = out.reshape(B, Tq, h * d)
        return self.W_o(out), weights
'''), "concatenates the heads without moving the head axis back behind the time axis"),
    Mutant("mha_no_output_projection", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, Tq, h, d).transpose(1, 2)
        k = self.W_k(key).view(B, Tk, h, d).transpose(1, 2)
        v = self.W_v(value).view(B, Tk, h, d).transpose(1, 2)
        if mask is not None:
            mask = mask.unsqueeze(-3)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return out.transpose(1, 2).reshape(B, Tq, h * d), weights
'''), "forgets the output projection W_o"),
    Mutant("mha_keys_from_query", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, Tq, h, d).transpose(1, 2)
        k = self.W_k(query).view(B, Tq, h, d).transpose(1, 2)
        v = self.W_v(value).view(B, Tk, h, d).transpose(1, 2)
        if mask is not None:
            mask = mask.unsqueeze(-3)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(B, Tq, h * d)
        return self.W_o(out), weights
'''), "projects the keys from the query sequence: right for self-attention only"),
    Mutant("mha_mask_without_head_axis", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, Tq, h, d).transpose(1, 2)
        k = self.W_k(key).view(B, Tk, h, d).transpose(1, 2)
        v = self.W_v(value).view(B, Tk, h, d).transpose(1, 2)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(B, Tq, h * d)
        return self.W_o(out), weights
'''), "passes a (B, 1, Tk) mask without a head axis, so it lines up with the wrong dimensions"),
    Mutant("mha_scaled_by_d_model", "MultiHeadAttention", _mha('''
        q = self.W_q(query).view(B, Tq, h, d).transpose(1, 2)
        k = self.W_k(key).view(B, Tk, h, d).transpose(1, 2)
        v = self.W_v(value).view(B, Tk, h, d).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(h * d)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(-3), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, Tq, h * d)
        return self.W_o(out), weights
'''), "scales by sqrt(d_model) instead of sqrt(d_head) when writing the attention inline"),
    # positional_encoding
    Mutant("pe_sin_cos_swapped", "positional_encoding", '''
def positional_encoding(T, d_model):
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / 10000.0 ** (two_i / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.cos(angle)
    pe[:, 1::2] = torch.sin(angle)
    return pe
''', "cosines in the even columns and sines in the odd ones"),
    Mutant("pe_exponent_i_over_d", "positional_encoding", '''
def positional_encoding(T, d_model):
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float32)
    angle = pos / 10000.0 ** (i / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe
''', "uses i / d_model instead of 2i / d_model as the frequency exponent"),
    Mutant("pe_halves_not_interleaved", "positional_encoding", '''
def positional_encoding(T, d_model):
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / 10000.0 ** (two_i / d_model)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
''', "puts all sines first and all cosines after instead of interleaving them"),
    Mutant("pe_positions_from_one", "positional_encoding", '''
def positional_encoding(T, d_model):
    pos = torch.arange(1, T + 1, dtype=torch.float32)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
    angle = pos / 10000.0 ** (two_i / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe
''', "counts positions from 1"),
    # EncoderBlock
    Mutant("encoder_pre_norm", "EncoderBlock", _enc('''
        Y = self.norm1(X)
        X = X + self.dropout(self.self_attn(Y, Y, Y, mask)[0])
        X = X + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(self.norm2(X))))))
'''), "pre-norm X + MHA(LN(X)) instead of the post-norm LN(X + MHA(X))"),
    Mutant("encoder_no_attention_residual", "EncoderBlock", _enc('''
        X = self.norm1(self.dropout(self.self_attn(X, X, X, mask)[0]))
        X = self.norm2(X + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(X))))))
'''), "forgets the residual connection around the attention"),
    Mutant("encoder_no_ffn_residual", "EncoderBlock", _enc('''
        X = self.norm1(X + self.dropout(self.self_attn(X, X, X, mask)[0]))
        X = self.norm2(self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(X))))))
'''), "forgets the residual connection around the feed-forward network"),
    Mutant("encoder_ffn_without_relu", "EncoderBlock", _enc('''
        X = self.norm1(X + self.dropout(self.self_attn(X, X, X, mask)[0]))
        X = self.norm2(X + self.dropout(self.linear2(self.linear1(X))))
'''), "an FFN without the ReLU is just one linear map"),
    Mutant("encoder_ignores_mask", "EncoderBlock", _enc('''
        X = self.norm1(X + self.dropout(self.self_attn(X, X, X)[0]))
        X = self.norm2(X + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(X))))))
'''), "does not pass the mask to the self-attention, so tokens attend to padding"),
    Mutant("encoder_one_layernorm", "EncoderBlock", _enc('''
        X = self.norm1(X + self.dropout(self.self_attn(X, X, X, mask)[0]))
        X = self.norm1(X + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(X))))))
'''), "reuses norm1 after the FFN instead of norm2"),
    # TinyTransformer
    Mutant("tiny_no_positional_encoding", "TinyTransformer", _tiny('''
        h = self.embed(X)
        for block in self.blocks:
            h = block(h, mask)
        return self.head(h)
'''), "forgets the positional encoding: a bag of words that cannot reverse"),
    Mutant("tiny_pe_sliced_by_batch", "TinyTransformer", _tiny('''
        h = self.embed(X) + self.pe[:X.shape[0]][:, None, :]
        for block in self.blocks:
            h = block(h, mask)
        return self.head(h)
'''), "indexes the positional encoding with the batch axis instead of the time axis"),
    Mutant("tiny_ignores_mask", "TinyTransformer", _tiny('''
        h = self.embed(X) + self.pe[:T]
        for block in self.blocks:
            h = block(h)
        return self.head(h)
'''), "does not pass the mask on to the blocks"),
    Mutant("tiny_reuses_first_block", "TinyTransformer", _tiny('''
        h = self.embed(X) + self.pe[:T]
        for _ in range(len(self.blocks)):
            h = self.blocks[0](h, mask)
        return self.head(h)
'''), "applies the first block num_layers times"),
    Mutant("tiny_returns_probabilities", "TinyTransformer", _tiny('''
        h = self.embed(X) + self.pe[:T]
        for block in self.blocks:
            h = block(h, mask)
        return torch.softmax(self.head(h), dim=-1)
'''), "returns softmax probabilities, so cross-entropy applies a second softmax"),
    # train_transformer
    Mutant("train_without_zero_grad", "train_transformer", _train('''
        idx = torch.randint(len(X), (batch_size,), generator=g)
        logits = model(X[idx].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].to(device).reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
'''), "never zeroes the gradients, so they accumulate over all steps"),
    Mutant("train_step_before_backward", "train_transformer", _train('''
        idx = torch.randint(len(X), (batch_size,), generator=g)
        logits = model(X[idx].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].to(device).reshape(-1))
        optimizer.zero_grad()
        optimizer.step()
        loss.backward()
        losses.append(loss.item())
'''), "steps before backpropagating, so every step sees zeroed gradients"),
    Mutant("train_same_batch", "train_transformer", _train('''
        logits = model(X[:batch_size].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[:batch_size].to(device).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
'''), "trains on the first batch_size examples at every step"),
    Mutant("train_keeps_loss_tensors", "train_transformer", _train('''
        idx = torch.randint(len(X), (batch_size,), generator=g)
        logits = model(X[idx].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].to(device).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss)
'''), "records the loss tensors (and their graphs) instead of floats"),
    Mutant("train_targets_are_inputs", "train_transformer", _train('''
        idx = torch.randint(len(X), (batch_size,), generator=g)
        logits = model(X[idx].to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), X[idx].to(device).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
'''), "uses the inputs as targets: learns to copy instead of to reverse"),
    Mutant("train_adam_per_step", "train_transformer", _train(
        "\n        optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n" + _STEP),
        "creates a new Adam at every step, so its moment estimates never build up"),
    Mutant("train_ignores_lr", "train_transformer", _train('\n        optimizer.param_groups[0]["lr"] = 3e-3\n' + _STEP),
        "trains with the default learning rate whatever lr says"),
    Mutant("train_records_loss_after_step", "train_transformer", _train("\n" + _STEP.replace(
        "        losses.append(loss.item())\n",
        "        with torch.no_grad():\n            logits = model(X[idx].to(device))\n            losses.append("
        "F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].to(device).reshape(-1)).item())\n")),
        "records the batch's loss after the step instead of the loss it stepped on"),
]
