"""PadCollator on real encoded examples, length-grouped seeded batches, and exact mid-epoch resume."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoTokenizer

from replica.model.batching import GroupedBatchSampler, PadCollator, ResumableLoader, padding_fraction
from replica.model.formatting import FORMATS, IGNORE_INDEX, ChatFormatter
from replica.model.tokens import RoleTokens

EXAMPLES = [
    ([{"role": "them", "text": "ciao! stasera pizza? 🍕"}], "sì dai"),
    ([{"role": "them", "text": "hey, what's up?"}, {"role": "me", "text": "not much"},
      {"role": "them", "text": "lunch tomorrow? 🍝"}], "sounds good, see you at 1 👍"),
    ([{"role": "me", "text": "dove sei?"}, {"role": "them", "text": "al bar sotto casa ☕"}], "arrivo tra 5 minuti"),
]


def encoded_rows(tokenizer, data_format: str) -> list[dict]:
    fmt = ChatFormatter(tokenizer, data_format, RoleTokens(), 256)
    rows = []
    for context, reply in EXAMPLES:
        encoded = fmt.encode(context, reply)
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
    return rows


@pytest.mark.parametrize("data_format", FORMATS)
def test_collator_pads_with_ignored_labels_and_keeps_end_of_turn_supervised(tiny_tokenizer, data_format):
    tokenizer = tiny_tokenizer(data_format)
    rows = encoded_rows(tokenizer, data_format)
    end_of_turn_id = ChatFormatter(tokenizer, data_format, RoleTokens(), 256).end_of_turn_id
    batch = PadCollator(tokenizer.pad_token_id)(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, longest)
    for i, row in enumerate(rows):
        size = len(row["input_ids"])
        assert batch["input_ids"][i, :size].tolist() == row["input_ids"]
        assert batch["labels"][i, :size].tolist() == row["labels"]
        assert batch["attention_mask"][i].tolist() == [1] * size + [0] * (longest - size)
        assert (batch["input_ids"][i, size:] == tokenizer.pad_token_id).all()
        assert (batch["labels"][i, size:] == IGNORE_INDEX).all()
        assert batch["labels"][i, size - 1].item() == end_of_turn_id, "the closing marker keeps its label"
    assert (batch["labels"] != IGNORE_INDEX).sum().item() == sum(
        sum(label != IGNORE_INDEX for label in r["labels"]) for r in rows
    )


def test_collator_rounds_length_up_to_a_multiple(tiny_tokenizer):
    tokenizer = tiny_tokenizer("role_tokens")
    rows = encoded_rows(tokenizer, "role_tokens")
    batch = PadCollator(tokenizer.pad_token_id, pad_to_multiple_of=16)(rows)
    width = batch["input_ids"].shape[1]
    assert width % 16 == 0 and width - 16 < max(len(r["input_ids"]) for r in rows) <= width
    assert batch["attention_mask"].sum().item() == sum(len(r["input_ids"]) for r in rows)


def test_naive_pad_id_masking_would_drop_eos_with_the_shipped_tokenizer_but_ours_keeps_it(tiny_model_dir,
                                                                                          tiny_tokenizer):
    shipped = AutoTokenizer.from_pretrained(tiny_model_dir)  # pad == eos, like DeepSeek-R1-Distill
    assert shipped.pad_token_id == shipped.eos_token_id
    eos = shipped.eos_token_id
    rows = encoded_rows(tiny_tokenizer("plain"), "plain")  # plain closes every reply with EOS
    assert all(r["input_ids"][-1] == r["labels"][-1] == eos for r in rows)

    ours = PadCollator(shipped.pad_token_id)(rows)
    naive_labels = ours["input_ids"].clone()
    naive_labels[naive_labels == shipped.pad_token_id] = IGNORE_INDEX  # the classic "labels[ids == pad] = -100"

    for i, row in enumerate(rows):
        last = len(row["input_ids"]) - 1
        assert ours["labels"][i, last].item() == eos
        assert naive_labels[i, last].item() == IGNORE_INDEX, "the naive collator never teaches the model to stop"
        assert ours["attention_mask"][i, last].item() == 1


def lognormal_lengths(count: int = 2000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [min(1024, max(16, int(rng.lognormvariate(5.0, 0.6)))) for _ in range(count)]


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_sampler_order_depends_only_on_seed_and_epoch():
    lengths = lognormal_lengths(500)
    first = GroupedBatchSampler(lengths, 8, seed=3)
    again = GroupedBatchSampler(lengths, 8, seed=3)
    assert list(first) == list(again)
    other_seed = GroupedBatchSampler(lengths, 8, seed=4)
    assert list(other_seed) != list(first)
    epoch0 = list(first)
    first.set_epoch(1)
    again.set_epoch(1)
    assert list(first) == list(again) != epoch0


@pytest.mark.parametrize("group_by_length", [True, False])
@pytest.mark.parametrize("count", [500, 501, 7])
def test_every_index_exactly_once_per_epoch(group_by_length, count):
    sampler = GroupedBatchSampler(lognormal_lengths(count), 8, seed=1, group_by_length=group_by_length)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(flat(batches)) == list(range(count))
        assert all(1 <= len(b) <= 8 for b in batches)
        assert len(batches) == len(sampler) == -(-count // 8)


def test_drop_last_drops_only_the_short_batch():
    sampler = GroupedBatchSampler(lognormal_lengths(501), 8, seed=1, drop_last=True)
    batches = list(sampler)
    assert len(batches) == 501 // 8 and all(len(b) == 8 for b in batches)
    assert len(set(flat(batches))) == 501 // 8 * 8


@pytest.mark.parametrize("count", [960, 97])
def test_rank_shards_cover_every_index_without_overlap(count):
    lengths = lognormal_lengths(count)
    shards = [flat(list(GroupedBatchSampler(lengths, 4, seed=5, num_replicas=3, rank=r))) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(count))
    assert all(set(a).isdisjoint(b) for a in shards for b in shards if a is not b)


@pytest.mark.parametrize("count", [960, 97])
def test_every_rank_gets_the_same_number_of_batches(count):
    """DDP ranks step together: a rank with one batch fewer leaves the others waiting in all-reduce."""
    lengths = lognormal_lengths(count)
    sizes = [len(list(GroupedBatchSampler(lengths, 4, seed=5, num_replicas=3, rank=r))) for r in range(3)]
    assert len(set(sizes)) == 1, sizes


def test_grouping_cuts_padding_on_realistic_lengths():
    lengths = lognormal_lengths()
    grouped = padding_fraction(lengths, list(GroupedBatchSampler(lengths, 8, seed=0)))
    shuffled = padding_fraction(lengths, list(GroupedBatchSampler(lengths, 8, seed=0, group_by_length=False)))
    assert grouped <= 0.10
    assert shuffled > 0.3
    assert grouped < shuffled / 4


def test_padding_fraction_counts_pad_positions():
    assert padding_fraction([4, 2, 3, 3], [[0, 1], [2, 3]]) == pytest.approx(1 - 12 / 14)
    assert padding_fraction([5, 5], [[0, 1]]) == 0.0
    assert padding_fraction([], []) == 0.0


def make_loader(lengths: list[int], batch_size: int = 4, seed: int = 11) -> ResumableLoader:
    sampler = GroupedBatchSampler(lengths, batch_size, seed=seed)
    return ResumableLoader(list(range(len(lengths))), batch_sampler=sampler, collate_fn=list)


def consume(loader: ResumableLoader, count: int | None = None) -> list[list[int]]:
    """Take `count` batches (all if None) the way training does: each one marked consumed."""
    taken = []
    for batch in loader:
        loader.mark_consumed()
        taken.append(batch)
        if count is not None and len(taken) == count:
            break
    return taken


def test_resume_mid_epoch_yields_exactly_the_remaining_batches():
    lengths = lognormal_lengths(90)
    uninterrupted = make_loader(lengths)
    epoch0, epoch1 = consume(uninterrupted), consume(uninterrupted)

    interrupted = make_loader(lengths)
    head = consume(interrupted, 7)
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "consumed": 7}

    resumed = make_loader(lengths)
    resumed.load_state_dict(state)
    rest = consume(resumed)
    assert head + rest == epoch0
    assert resumed.state_dict() == {"epoch": 0, "consumed": len(epoch0)}
    assert consume(resumed) == epoch1, "the epoch after the resumed one is the uninterrupted run's next epoch"


def test_resume_twice_in_one_epoch():
    lengths = lognormal_lengths(90)
    epoch0 = consume(make_loader(lengths))
    first = make_loader(lengths)
    part1 = consume(first, 3)
    second = make_loader(lengths)
    second.load_state_dict(first.state_dict())
    part2 = consume(second, 5)
    assert second.state_dict() == {"epoch": 0, "consumed": 8}
    third = make_loader(lengths)
    third.load_state_dict(second.state_dict())
    assert part1 + part2 + consume(third) == epoch0


def test_state_at_end_of_epoch_resumes_at_the_next_epoch():
    lengths = lognormal_lengths(90)
    uninterrupted = make_loader(lengths)
    consume(uninterrupted)
    epoch1 = consume(uninterrupted)

    finished = make_loader(lengths)
    consume(finished)
    resumed = make_loader(lengths)
    resumed.load_state_dict(finished.state_dict())
    assert consume(resumed) == epoch1
    assert resumed.state_dict()["epoch"] == 1


def test_each_new_iteration_is_a_new_epoch():
    lengths = lognormal_lengths(90)
    loader = make_loader(lengths)
    epochs = []
    for expected_epoch in range(3):
        batches = consume(loader)
        assert loader.state_dict() == {"epoch": expected_epoch, "consumed": len(batches)}
        assert sorted(flat(batches)) == list(range(90))
        epochs.append(batches)
    assert epochs[0] != epochs[1] != epochs[2]


def test_loader_batches_are_collated_rows():
    lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    sampler = GroupedBatchSampler(lengths, 2, seed=0, mega_batch=4)
    rows = [{"input_ids": [1] * n, "labels": [1] * n} for n in lengths]
    loader = ResumableLoader(rows, batch_sampler=sampler, collate_fn=PadCollator(0))
    widths = sorted(batch["input_ids"].shape[1] for batch in loader)
    assert widths == [6, 8, 48, 50]  # length-grouped: short with short, long with long
    assert all(isinstance(batch["labels"], torch.Tensor) for batch in loader)
