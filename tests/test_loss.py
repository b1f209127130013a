"""The chunked reply loss equals the full-logits loss in value and gradient, on the real 4-bit + LoRA tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from replica.model.base_model import load_base_model, new_token_ids, wrap_with_lora
from replica.model.batching import PadCollator
from replica.model.formatting import ChatFormatter
from replica.model.loss import FusedLinearCrossEntropy, causal_lm, reply_token_nll
from replica.model.tokens import RoleTokens

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "bias": "none", "target_modules": "all-linear", "train_new_tokens": True}


def batch_of(tokenizer, data_format: str) -> dict:
    formatter = ChatFormatter(tokenizer, data_format, RoleTokens(), 96)
    examples = [([{"role": "them", "text": "ciao come stai?"}], "bene 😂 tu?"),
                ([{"role": "me", "text": "stasera?"}, {"role": "them", "text": "sì dai, pizza"}], "ok perfetto 👍"),
                ([{"role": "them", "text": "dove sei"}], "arrivo tra 5 minuti, sono in ritardo")]
    rows = [formatter.encode(context, target) for context, target in examples]
    return PadCollator(tokenizer.pad_token_id)([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])


def reference_nll(model, batch) -> torch.Tensor:
    """Written out independently: full logits of the whole batch, shifted, cross-entropy at the labelled positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    return F.cross_entropy(logits[keep], targets[keep], reduction="none")


@pytest.mark.parametrize("data_format", ["chat_template", "role_tokens"])
def test_chunked_loss_and_gradients_equal_the_full_logits(tiny_model_dir, tiny_tokenizer, tiny_model_cfg, data_format):
    tokenizer = tiny_tokenizer(data_format)
    torch.manual_seed(0)
    base = load_base_model(str(tiny_model_dir), tiny_model_cfg, {"mode": "nf4", "double_quant": True,
                                                                  "compute_dtype": "float32"}, "cpu")
    base.config.pad_token_id = tokenizer.pad_token_id
    model = wrap_with_lora(base, LORA, new_token_ids(tokenizer, tiny_model_cfg, data_format), quantized=True,
                           gradient_checkpointing=True)
    with torch.no_grad():  # LoRA B starts at zero: move it so the adapter takes part in the gradients
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    batch = batch_of(tokenizer, data_format)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(compute):
        for p in trainable:
            p.grad = None
        loss = compute().mean()
        loss.backward()
        return float(loss), [p.grad.clone() for p in trainable]

    chunked, chunked_grads = loss_and_grads(lambda: reply_token_nll(model, batch["input_ids"], batch["attention_mask"],
                                                                    batch["labels"], chunk_tokens=5)[0])
    full, full_grads = loss_and_grads(lambda: reference_nll(model, batch))
    assert abs(chunked - full) < 1e-5
    assert max(float((a - b).abs().max()) for a, b in zip(chunked_grads, full_grads)) < 1e-5
    head = causal_lm(model).get_output_embeddings()
    assert (type(head) is torch.nn.Linear) == (data_format == "chat_template")  # fused path vs checkpointed path


def test_per_token_rows_map_each_nll_to_its_example(tiny_model_dir, tiny_tokenizer, tiny_model_cfg):
    tokenizer = tiny_tokenizer("role_tokens")
    model = load_base_model(str(tiny_model_dir), tiny_model_cfg, {"mode": "none"}, "cpu")
    batch = batch_of(tokenizer, "role_tokens")
    with torch.no_grad():
        nll, rows = reply_token_nll(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    counts = (batch["labels"][:, 1:] != -100).sum(dim=1)
    assert torch.equal(torch.bincount(rows, minlength=3), counts)
    assert torch.allclose(nll, reference_nll(model, batch), atol=1e-5)


def test_the_fused_head_matches_autograd_on_a_bf16_head():
    torch.manual_seed(0)
    weight = torch.randn(300, 16, dtype=torch.bfloat16) * 0.1
    states = torch.randn(37, 16, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 300, (37,))
    fused = FusedLinearCrossEntropy.apply(states, weight, None, targets, 8)
    (fused * torch.arange(37)).sum().backward()  # a non-uniform upstream gradient
    fused_grad = states.grad.clone()
    states.grad = None
    plain = F.cross_entropy(F.linear(states, weight).float(), targets, reduction="none")
    (plain * torch.arange(37)).sum().backward()
    assert torch.allclose(fused, plain, atol=1e-5)
    scale = float(states.grad.float().abs().max())  # bf16 keeps ~3 significant digits: a few roundings of the largest
    assert float((fused_grad.float() - states.grad.float()).abs().max()) <= 4 * 2**-8 * scale
