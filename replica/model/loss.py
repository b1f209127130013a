"""Reply-only cross-entropy without the full logits tensor.

A causal LM's loss normally materializes fp32 logits for every position of the batch (8 x 512 x 49k vocab is
~0.8 GB per copy, a 7B's 152k vocab ~2.5 GB) although only the reply tokens are supervised. Here the decoder's
hidden states are gathered at the supervised positions first, then the LM head + cross-entropy run on chunks of
those rows, so at most one chunk of logits exists at a time:
- a frozen linear head (the usual case: LoRA leaves it alone) is fused with the loss: each chunk's gradient with
  respect to its hidden states, (softmax - one-hot) @ W, is computed in the forward pass while the chunk's logits
  exist, so backward needs neither the logits nor a second head matmul;
- any other head (PEFT-wrapped for trainable token rows) runs per chunk under activation checkpointing, its
  logits recomputed chunk by chunk in backward.
Values and gradients equal the full computation's.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from replica.model.formatting import IGNORE_INDEX

CHUNK_TOKENS = 256  # rows of logits per chunk: 256 x 152k fp32 = 156 MB for a 7B head, 50 MB for SmolLM2's
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale")  # config keys of heads that are not a plain linear


def causal_lm(model):
    """The transformers model under a PEFT wrapper (LoRA layers stay injected and honour `disable_adapter`)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def chunkable(model) -> bool:
    """Whether the model's logits are its head applied to its decoder's last hidden state, and nothing else."""
    inner = causal_lm(model)
    has_parts = callable(getattr(inner, "get_decoder", None)) and inner.get_output_embeddings() is not None
    return has_parts and not any(getattr(inner.config, key, None) for key in LOGIT_TRANSFORMS)


def reply_token_nll(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, chunk_tokens: int = CHUNK_TOKENS
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 NLL of every supervised token (labels != -100, shifted for next-token prediction) and its batch row."""
    targets_all = labels[:, 1:]
    keep = targets_all != IGNORE_INDEX
    rows = keep.nonzero()[:, 0]
    if not chunkable(model):
        return full_logits_token_nll(model, input_ids, attention_mask, labels), rows
    inner = causal_lm(model)
    hidden = inner.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    states = hidden[:, :-1][keep]
    targets = targets_all[keep]
    head = inner.get_output_embeddings()
    if _is_frozen_linear(head):
        return FusedLinearCrossEntropy.apply(states, head.weight, head.bias, targets, chunk_tokens), rows
    pieces = []
    for start in range(0, targets.shape[0], chunk_tokens):
        piece = partial(_chunk_nll, head)
        chunk = (states[start : start + chunk_tokens], targets[start : start + chunk_tokens])
        pieces.append(checkpoint(piece, *chunk, use_reentrant=False) if torch.is_grad_enabled() else piece(*chunk))
    return (torch.cat(pieces) if pieces else states.new_zeros(0, dtype=torch.float32)), rows


def weighted_reply_loss(model, batch: dict) -> torch.Tensor:
    """Mean NLL of the supervised tokens, each token weighted by its row's `weights` (the training loss)."""
    token_nll, rows = reply_token_nll(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    weights = batch["weights"].to(token_nll.device)[rows] if "weights" in batch else torch.ones_like(token_nll)
    return (token_nll * weights).sum() / weights.sum().clamp(min=1e-8)


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Each row's summed log-probability of its supervised tokens (the reply and its end of turn)."""
    token_nll, rows = reply_token_nll(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    summed = torch.zeros(batch["input_ids"].shape[0], dtype=token_nll.dtype, device=token_nll.device)
    return -summed.index_add(0, rows.to(token_nll.device), token_nll)


def full_logits_token_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The same NLL through the model's full logits (models whose head is not a plain linear; the benchmark's baseline)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    return F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")[keep]


def _chunk_nll(head, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(states).float(), targets, reduction="none")


def _is_frozen_linear(head) -> bool:
    if type(head) is not torch.nn.Linear:
        return False
    return not head.weight.requires_grad and (head.bias is None or not head.bias.requires_grad)


class FusedLinearCrossEntropy(torch.autograd.Function):
    """Per-row NLL of `targets` under `states @ weight.T + bias`, chunk by chunk; weight and bias are frozen."""

    @staticmethod
    def forward(ctx, states, weight, bias, targets, chunk_tokens: int):  # noqa: D102 (autograd API)
        nll = torch.empty(targets.shape[0], dtype=torch.float32, device=states.device)
        grad_states = torch.empty_like(states) if states.requires_grad else None
        for start in range(0, targets.shape[0], chunk_tokens):
            end = start + chunk_tokens
            logits = F.linear(states[start:end], weight, bias).float()
            target = targets[start:end]
            log_norm = torch.logsumexp(logits, dim=-1)
            nll[start:end] = log_norm - logits.gather(1, target[:, None]).squeeze(1)
            if grad_states is not None:
                probs = logits.sub_(log_norm[:, None]).exp_()  # softmax, in place of the logits
                probs[torch.arange(target.shape[0], device=target.device), target] -= 1.0
                grad_states[start:end] = probs.to(weight.dtype) @ weight
        ctx.save_for_backward(grad_states)
        return nll

    @staticmethod
    def backward(ctx, grad_nll):  # noqa: D102 (autograd API)
        (grad_states,) = ctx.saved_tensors
        return grad_states * grad_nll[:, None].to(grad_states.dtype), None, None, None, None
