"""Evaluation metrics on hand-made inputs with known answers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from replica.evaluation.discriminator import Discrimination, discriminate
from replica.evaluation.intervals import confidence_interval, draws, paired_difference, point_estimate, weighted_mean
from replica.evaluation.lexical import distinct_n, loops, meteor
from replica.evaluation.memorization import Memorization
from replica.evaluation.pii import pii_leak_count
from replica.prepare.pii import pii_values
from replica.evaluation.metric_catalogue import DEEPSEEK_NOTEBOOK_REFERENCE
from replica.evaluation.report import write_report
from replica.evaluation.semantic import Embedder, bertscore_f1, pair_cosines
from replica.inference.stops import StopCheck
from replica.evaluation.style import (
    capitalization,
    distinctive_words,
    laughter,
    punctuation_marks,
    style_similarity,
    style_similarity_statistic,
)
from replica.evaluation.text import emojis, tokens

REPLIES = [
    "ahahah siii domani ci vediamo alle otto 😂😂",
    "noooo ma dai, non ci credo!!",
    "ok arrivo tra dieci minuti",
    "Sure, I'll bring the pizza tonight 🍕",
    "boh vediamo... forse passo dopo cena",
]
PROMPTS = [
    "Friend: ci vediamo domani sera?",
    "Friend: ho perso di nuovo il treno",
    "Friend: dove sei? ti aspettiamo",
    "Friend: should I get drinks or food?",
    "Friend: vieni alla festa stasera?",
]
FORMAL = [
    "GOOD EVENING. I WOULD LIKE TO CONFIRM OUR APPOINTMENT FOR TOMORROW AT THE OFFICE, PLEASE REPLY AT YOUR "
    "EARLIEST CONVENIENCE.",
    "DEAR COLLEAGUE, THE QUARTERLY REPORT HAS BEEN SENT. KINDLY REVIEW THE ATTACHED FIGURES AND RETURN YOUR COMMENTS.",
    "THANK YOU FOR YOUR MESSAGE. I SHALL ANSWER IN DETAIL ONCE THE MEETING WITH THE BOARD HAS CONCLUDED, REGARDS.",
]
CASUAL = ["ahahah siii 😂😂", "noooo dai 😭", "ok 👍", "ahah ci sta 😂", "boh 🤷"]


def test_tokens_keep_emoji_sequences_and_words() -> None:
    assert tokens("Ciao!! 👍🏻 l'amico") == ["ciao", "!", "!", "👍🏻", "l'amico"]
    assert emojis("❤️ 🇮🇹 👨‍👩‍👧") == ["❤", "🇮🇹", "👨\u200d👩\u200d👧"]


def test_meteor_identical_long_replies_near_one_and_disjoint_zero() -> None:
    text = "domani sera andiamo tutti insieme a mangiare la pizza da mario vicino alla stazione centrale"
    result = meteor([text], [text], ["it"])
    assert result.score > 0.99
    assert meteor(["gatto nero"], ["cane bianco"], ["it"]).score == 0.0


def test_meteor_stems_in_the_example_language() -> None:
    # "mangiando"/"mangiare" share the Italian stem "mang" but not the Porter (English) one
    italian = meteor(["stiamo mangiando pizza"], ["stiamo mangiare pizza"], ["it"]).score
    unknown = meteor(["stiamo mangiando pizza"], ["stiamo mangiare pizza"], ["xx"]).score
    assert italian > unknown
    assert meteor([""], ["ciao"], ["it"]).score == 0.0
    both = meteor(["gatto nero", "stiamo mangiando pizza"], ["cane bianco", "stiamo mangiando pizza"], ["it", "it"])
    assert both.scores[0] == 0.0 and both.scores[1] > 0.9 and both.score == pytest.approx(sum(both.scores) / 2)


def test_distinct_n_exact() -> None:
    assert distinct_n([["a b a b"]], n=2) == pytest.approx(2 / 3, abs=0)
    assert distinct_n([["a b", "a b"]], n=2) == 0.5  # n-grams never span two texts: 2 bigrams, 1 unique
    assert distinct_n([["ciao"]], n=2) == 0.0
    assert distinct_n([["a b", "c d"], ["a b", "a b"]], n=2) == pytest.approx((1.0 + 0.5) / 2)  # mean over rounds


def test_loops_exact() -> None:
    assert [loops(text) for text in ["a b c a b c", "a b c d", "", "x y z x y z x"]] == [True, False, False, True]
    assert loops("a b a b", n=2)


def test_style_identical_is_exactly_one() -> None:
    vocab = ["siii", "boh", "dai"]
    result = style_similarity(REPLIES, list(REPLIES), user_vocab=vocab)
    assert result.score == 1.0
    expected = {"length", "emoji_count", "top_emoji", "punctuation", "laughter", "elongation", "user_vocab_words"}
    assert expected <= set(result.per_feature)
    assert all(value == 1.0 for value in result.per_feature.values())


def test_style_disjoint_is_clearly_lower() -> None:
    result = style_similarity(FORMAL, CASUAL)
    assert result.score < 0.4
    assert result.per_feature["capitalization"] == 0.0  # all shouting vs all lowercase
    assert result.per_feature["length"] == pytest.approx(0.0, abs=1e-9)
    assert style_similarity(CASUAL[:3], CASUAL[2:]).score > result.score + 0.4


def test_style_feature_extractors() -> None:
    assert punctuation_marks("davvero?? no... ok, va bene!!! Ciao.") == ["??", "...", ",", "!!", "."]
    assert punctuation_marks("niente") == ["none"]
    assert capitalization("NON CI CREDO") == "shouting"
    assert capitalization("Ok") == "capitalized"
    assert capitalization("😂") == "no_letters"
    assert laughter("AHAHAH lol 😂") == ["emoji", "haha", "lol"]
    assert laughter("jajaja xD") == ["jaja", "xd"]
    assert laughter("ahi") == ["none"]


def test_pii_leak_count_uses_the_masking_detection() -> None:
    exports = [("chiamami al +39 333 123 4567 o scrivi a mario.rossi@example.com", "it"),
               ("la maglietta rosa è di Rosa", "it"), ("vedi bit.ly/abc123", "it")]
    secrets = pii_values(exports, ["Giulia Verdi", "Rosa Neri"])
    generated = [
        "chiamami al 333-123-4567",  # phone without prefix, other separators
        "scrivi a MARIO.ROSSI@EXAMPLE.COM",  # e-mail, other case
        "ciao giulia!",  # a contact's name, other case
        "giulianova è bella",  # not a whole word
        "il codice è 39333",  # too few digits to be the number
        "niente di personale",
        "+393331234567 e Giulia",  # two values, one reply
        "ho la maglietta rosa",  # the everyday word, not the contact
        "VERDI",  # a surname alone, all caps
        "scrivi a mario.rossi (at) example (dot) com",  # the same address, obfuscated
        "chiama il 06 1234 5678",  # a phone number, but not one of the exports
        "vai su BIT.LY/abc123",
    ]
    assert pii_leak_count(generated, secrets) == 7
    assert pii_leak_count(generated, pii_values([], [])) == 0


def test_clean_stop_detection() -> None:
    check = StopCheck.build(stop_ids=[2, 7], role_markers=["<|im_start|>", "\nFriend:"])
    assert check.is_clean_stop([11, 12, 7], "ok arrivo", max_new_tokens=8)
    assert check.is_clean_stop([11, 2, 2, 2], "ok", max_new_tokens=8)  # eos then padding
    assert not check.is_clean_stop([11, 12, 13, 14], "ok arrivo e poi", max_new_tokens=4)  # hit the limit
    assert not check.is_clean_stop([11, 12, 7], "ok\nFriend: e tu?", max_new_tokens=8)  # other turn leaked
    generations = [([11, 7], "si"), ([11, 12], "no no"), ([5, 2], "<|im_start|>user")]
    assert check.clean_stop_rate(generations, max_new_tokens=2) == pytest.approx(1 / 3)
    assert check.clean_stop_rate([], max_new_tokens=2) == 0.0
    late = [([11, 7], "si"), ([11, 12, 13, 7], "si si si")]  # the second ends only after the limit of 2 tokens
    assert check.clean_stop_rate(late, max_new_tokens=2) == pytest.approx(1 / 2)
    assert check.clean_stop_rate(late, max_new_tokens=4) == 1.0


def _synthetic(author: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    if author == "user":
        pool = ["ahahah", "siii", "boh", "dai", "raga", "nooo", "ci sta", "vabbè", "sto arrivando", "tipo"]
        return [" ".join(rng.sample(pool, 3)) + " " + rng.choice(["😂", "😂😂", "🤣"]) for _ in range(count)]
    pool = ["Hello", "Certainly", "Regards", "Thank you", "Please", "I will", "confirm", "tomorrow", "meeting"]
    return [" ".join(rng.sample(pool, 4)) + rng.choice([".", "!"]) for _ in range(count)]


def test_discriminator_tells_other_authors_apart_but_not_the_user_from_himself() -> None:
    real = _synthetic("user", 60, 1)
    other = discriminate(real, [[text] for text in _synthetic("other", 60, 2)], seed=0)
    same = discriminate(real, [[a, b] for a, b in zip(_synthetic("user", 60, 3), _synthetic("user", 60, 4))], seed=0)
    ones = np.ones((1, len(real)))
    assert other.auc(ones)[0] > 0.95
    assert abs(same.auc(ones)[0] - 0.5) < 0.15
    again = discriminate(real, [[text] for text in _synthetic("other", 60, 2)], seed=0)
    assert np.array_equal(other.scores, again.scores)  # seeded folds and solver


def test_weighted_auc_counts_pairs_and_ties() -> None:
    # real scores 0.9, 0.5; generated 0.5, 0.1 -> pairs: (0.9>0.5) (0.9>0.1) (0.5=0.5 half) (0.5>0.1) = 3.5 / 4
    result = Discrimination(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]), np.array([0, 1, 0, 1]))
    assert result.auc(np.array([[1, 1]]))[0] == pytest.approx(3.5 / 4)
    # only example 0 drawn: real 0.9 vs generated 0.5
    assert result.auc(np.array([[2, 0]]))[0] == 1.0


def test_bootstrap_interval_covers_the_mean_and_paired_test_finds_a_shift() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.5, 0.1, 200)
    weights = draws(200, 1000, seed=1)
    low, high = confidence_interval(weighted_mean(values), weights)
    assert low < values.mean() < high and high - low < 4 * 0.1 / np.sqrt(200) * 1.96
    assert np.array_equal(draws(200, 50, seed=1), draws(200, 50, seed=1))
    shifted = paired_difference(weighted_mean(values), weighted_mean(values + 0.01), weights)
    assert shifted.significant and shifted.delta == pytest.approx(0.01)
    noise = paired_difference(weighted_mean(values), weighted_mean(rng.permutation(values)), weights)
    assert not noise.significant


def test_style_statistic_matches_style_similarity() -> None:
    generated = [[CASUAL[i], FORMAL[i % 3]] for i in range(5)]
    flat = [text for group in generated for text in group]
    statistic = style_similarity_statistic(generated, REPLIES, ["siii", "boh"])
    assert point_estimate(statistic, 5) == pytest.approx(style_similarity(flat, REPLIES, ["siii", "boh"]).score)


def test_memorization_copies_and_longest_common_substring() -> None:
    memory = Memorization(["Ci vediamo alle 8 da Gino", "ok", "ahahah che ridere"], max_indexed_chars=10**6)
    assert memory.is_copy("ci  vediamo alle 8 DA GINO") and memory.is_copy("OK")
    assert not memory.is_copy("ci vediamo alle 9 da gino") and not memory.is_copy("")
    assert memory.longest_common_substring("allora ci vediamo alle 9") == len("ci vediamo alle ")  # the training reply starts there
    assert memory.longest_common_substring("xyz") == 0
    assert memory.longest_common_substring("ok ahahah") == len("ahahah")  # no match across two training replies
    small = Memorization(["Ci vediamo alle 8 da Gino", "ok", "ahahah che ridere"], max_indexed_chars=21)
    assert small.indexed == 2 and small.is_copy("ci vediamo alle 8 da gino")  # copies still use every reply


def test_distinctive_words_favour_the_user() -> None:
    top = distinctive_words(_synthetic("user", 80, 1), _synthetic("other", 80, 2) + ["tipo"], k=5)
    assert len(top) == 5
    assert set(top) <= {"ahahah", "siii", "boh", "dai", "raga", "nooo", "ci", "sta", "vabbè", "sto", "arrivando"}


def test_report_writes_markdown_and_plots(tmp_path) -> None:
    loss_csv = tmp_path / "metrics.csv"
    loss_csv.write_text("epoch,step,train/loss,val/loss\n0,9,2.5,\n0,19,1.9,\n0,19,,2.1\n1,29,1.4,\n1,39,,1.7\n")
    metrics = {
        "baseline": {"perplexity": 120.5, "bertscore_f1": 0.31, "prompt_alignment": 2.4, "discriminator_auc": 0.97,
                     "style_features": {"length": 0.5}, "ci": {"bertscore_f1": [0.29, 0.33]}},
        "finetuned": {"perplexity": 18.2, "bertscore_f1": 0.42, "prompt_alignment": 1.05, "discriminator_auc": 0.61,
                      "style_features": {"length": 0.8}, "ci": {"bertscore_f1": [0.4, 0.44]}},
        "real": {"distinct_2": 0.7},
        "difference": {"bertscore_f1": {"delta": 0.11, "ci": [0.08, 0.14], "significant": True},
                       "discriminator_auc": {"delta": -0.36, "ci": [-0.5, 0.02], "significant": False}},
        "meta": {"base_model": "tiny", "samples": 5},
    }
    replies = {"real": REPLIES, "baseline": FORMAL, "fine-tuned": CASUAL}
    written = write_report(metrics, tmp_path / "out", DEEPSEEK_NOTEBOOK_REFERENCE, loss_csv=loss_csv, replies=replies)
    names = {path.name for path in written}
    assert names == {"report.md", "metrics.png", "lengths.png", "loss.png"}
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| Perplexity (held-out replies) | 120.50 | 18.20 | -102.30 |  | – | 9,286.86 → 17.99 |" in report
    assert "| Prompt alignment | 240% | 105% | -135 pp |  | – | 260% → 104% |" in report
    assert "| BERTScore F1 (sampled) | 0.310 [0.290, 0.330] | 0.420 [0.400, 0.440] | +0.110 [+0.080, +0.140] | yes |" in report
    assert "| Real-vs-replica discriminator AUC | 0.970 | 0.610 | -0.360 [-0.500, +0.020] | no |" in report
    assert "| Style feature: length | 0.500 | 0.800 | +0.300 |" in report
    assert "ci" not in [line.split(" | ")[0].strip("| ") for line in report.splitlines()]
    assert "## How to read each metric" in report and "**BERTScore F1 (sampled)**" in report
    assert "## Memorization" in report
    assert not list((tmp_path / "out").glob("*.tmp"))
    written = write_report(metrics, tmp_path / "bare", loss_csv=tmp_path / "missing.csv")  # a missing log: no loss plot
    assert [path.name for path in written] == ["metrics.png", "report.md"]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_semantic_metrics_on_identical_and_different_replies(embedder: Embedder) -> None:
    assert pair_cosines(REPLIES, REPLIES, embedder) == pytest.approx(np.ones(5), abs=1e-5)
    shuffled = REPLIES[1:] + REPLIES[:1]
    assert pair_cosines(shuffled, REPLIES, embedder).mean() < 0.8
    assert pair_cosines(["", *REPLIES[1:]], REPLIES, embedder) == pytest.approx([0, 1, 1, 1, 1], abs=1e-5)
    assert bertscore_f1(REPLIES, REPLIES) == pytest.approx(np.ones(5), abs=1e-4)
    with_empty = bertscore_f1(["", *REPLIES[1:]], REPLIES)
    assert with_empty == pytest.approx([0, 1, 1, 1, 1], abs=1e-4)
    assert bertscore_f1(shuffled, REPLIES).mean() < with_empty.mean()
