"""Batched reply generation with stop criteria: end-of-turn id, EOS, and the other role's marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from replica.config import GenerationSchema
from replica.inference.stops import StopCheck
from replica.training.formatting import ChatFormatter


@dataclass(slots=True)
class Reply:
    text: str  # cleaned reply: cut at end-of-turn / other-role marker, no special tokens
    raw: str  # everything generated, special tokens included
    token_ids: list[int]
    clean_stop: bool  # ended by end-of-turn/EOS before the token limit, no other-role marker leaked


@dataclass
class Sampling(GenerationSchema):
    """Generation settings (the `generation` config section's keys)."""

    @classmethod
    def from_cfg(cls, cfg: Mapping | None) -> "Sampling":
        return cls(**{k: v for k, v in dict(cfg or {}).items() if k in cls.__dataclass_fields__})


def _left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, longest - len(prompt) :] = torch.as_tensor(prompt)
        mask[i, longest - len(prompt) :] = 1
    return ids, mask


@torch.no_grad()
def generate_replies(
    model,
    formatter: ChatFormatter,
    contexts: Sequence[Sequence[dict]],
    sampling: Sampling = Sampling(),
    batch_size: int = 16,
    progress: bool = False,
) -> list[Reply]:
    """Replies of `model` as "me" to each context; batches are length-sorted and left-padded, with KV cache."""
    tokenizer = formatter.tokenizer
    device = next(p for p in model.parameters()).device
    prompts = [formatter.prompt_ids(ctx) for ctx in contexts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    markers = formatter.stop_strings
    vocab = tokenizer.get_vocab()
    single_token_markers = [vocab[m] for m in markers if m in vocab]
    eos_ids = formatter.stop_token_ids + single_token_markers  # stop there too, but it is not a clean stop
    text_markers = [m for m in markers if m not in vocab]
    check = StopCheck.build(formatter.stop_token_ids, markers)
    was_training = model.training
    model.eval()
    generator_seed = torch.random.get_rng_state()
    torch.manual_seed(sampling.seed)
    replies: list[Reply | None] = [None] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    try:
        for batch in batches:
            ids, mask = _left_pad([prompts[i] for i in batch], tokenizer.pad_token_id)
            kwargs = dict(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=eos_ids,
                pad_token_id=tokenizer.pad_token_id,
                do_sample=sampling.do_sample,
                repetition_penalty=sampling.repetition_penalty,
                use_cache=True,
            )
            if sampling.do_sample:
                kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
            if text_markers:
                kwargs.update(stop_strings=text_markers, tokenizer=tokenizer)
            out = model.generate(**kwargs)
            for row, index in enumerate(batch):
                new = _trim_after_stop(out[row, ids.shape[1] :].tolist(), eos_ids, tokenizer.pad_token_id)
                raw = tokenizer.decode(new, skip_special_tokens=False)
                body = new[:-1] if new and new[-1] in eos_ids else new
                replies[index] = Reply(
                    text=formatter.clean_reply(tokenizer.decode(body, skip_special_tokens=True)),
                    raw=raw,
                    token_ids=new,
                    clean_stop=check.is_clean_stop(new, raw, sampling.max_new_tokens),
                )
    finally:
        torch.random.set_rng_state(generator_seed)
        model.train(was_training)
    return [r for r in replies if r is not None]


def _trim_after_stop(ids: list[int], stop_ids: Sequence[int], pad_id: int) -> list[int]:
    """Generated ids up to and including the first stop id (later positions are padding)."""
    stops = set(stop_ids)
    for pos, token in enumerate(ids):
        if token in stops:
            return ids[: pos + 1]
    while ids and ids[-1] == pad_id:
        ids = ids[:-1]
    return ids
