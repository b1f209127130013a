"""Who the replica is talking to, in `replica serve`: the `relationship` request field, the labels on /v1/models,
the web chat's "talking to" selector, the blind test's label, and replies of several messages (bursts). A real
server process on the real tiny labelled run (tests/conftest.py `labelled_run`), the official `openai` client and
a real headless Chromium; a copy of the run with the labels taken out of its replica.json stands for an old run."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.serve_helpers import Server
from tests.test_serve import CHROMIUM, CHROMIUM_ARGS, Visitor, needs_chromium

MESSAGES = [{"role": "user", "content": "Are you coming to dinner on Sunday?"}]
MAX_TOKENS = 24
UNKNOWN = "Mum"  # a contact's name sent as a label: refused, and never echoed or logged
# Requests that name no temperature, and the blind test's replica replies, decode greedily: a blind reply can be
# reproduced through the API (a temperature below 0.001 means greedy).
SERVER_OPTIONS = ("--temperature", "0.0001", "--max-tokens", str(MAX_TOKENS))


def read_split(run_dir: Path, split: str) -> list[dict]:
    """The examples of one split of the run's dataset, read straight from its files."""
    folder = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def messages_of(text: str) -> list[str]:
    """The messages of a reply as bubbles show them: one per non-empty line."""
    return [line.strip() for line in text.split("\n") if line.strip()]


@pytest.fixture(scope="module")
def labels(labelled_run) -> list[str]:
    """The labels the run's train split holds, most common first (conftest: Jake and Priya friend, Mum family)."""
    counts = Counter(example["relationship"] for example in read_split(labelled_run, "train"))
    assert set(counts) == {"friend", "family"} and len(set(counts.values())) == 2, counts
    return [label for label, _ in counts.most_common()]


@pytest.fixture(scope="module")
def labelled_server(labelled_run, tmp_path_factory):
    process = Server(labelled_run, tmp_path_factory.mktemp("relationships-log") / "server.log", *SERVER_OPTIONS)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def old_server(labelled_run, tmp_path_factory):
    """The same run with `relationships` and `relationship_in_prompt` removed from replica.json: as runs trained
    before labels existed are."""
    run = tmp_path_factory.mktemp("old-run") / "run"
    shutil.copytree(labelled_run, run, ignore=shutil.ignore_patterns("blind"))
    meta_path = run / "adapter" / "replica.json"
    meta = json.loads(meta_path.read_text())
    del meta["relationships"], meta["relationship_in_prompt"]
    meta_path.write_text(json.dumps(meta))
    process = Server(run, tmp_path_factory.mktemp("old-log") / "server.log", *SERVER_OPTIONS)
    yield process
    process.stop()


def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)


def ask(server, relationship: str | None = None, **settings):
    """One completion of MESSAGES; `relationship` goes in `extra_body`, as the docs tell `openai` users to send it."""
    extra = {} if relationship is None else {"extra_body": {"relationship": relationship}}
    return openai_client(server).chat.completions.create(model="replica", messages=MESSAGES, max_tokens=MAX_TOKENS, **extra, **settings)


# ---- the API -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_models_list_the_runs_labels_most_common_first(labelled_server, old_server, labels):
    model = openai_client(labelled_server).models.list().data[0]
    assert model.id == "replica"
    assert model.model_extra == {"relationships": labels, "default_relationship": labels[0]}
    old = openai_client(old_server).models.list().data[0]
    assert old.model_extra == {"relationships": [], "default_relationship": None}


@pytest.mark.slow
def test_the_label_changes_the_prompt_and_defaults_to_the_most_common(labelled_server, labels):
    common, rare = labels
    greedy = {label: ask(labelled_server, label, temperature=0) for label in labels}
    texts = {label: reply.choices[0].message.content for label, reply in greedy.items()}
    assert texts[common] != texts[rare], "greedy decoding depends on the prompt only: the label did not reach it"
    unnamed = ask(labelled_server, temperature=0)
    assert unnamed.choices[0].message.content == texts[common]
    assert unnamed.usage.prompt_tokens == greedy[common].usage.prompt_tokens
    seeded = [ask(labelled_server, label, temperature=0.9, seed=5).choices[0].message.content for label in (common, rare, common)]
    assert seeded[0] == seeded[2] != seeded[1]  # same seed: only the label tells the two replies apart


@pytest.mark.slow
def test_a_burst_comes_back_joined_with_newlines_streaming_or_not(labelled_server, labels):
    rare = labels[1]
    whole = ask(labelled_server, rare, temperature=0).choices[0].message.content
    assert len(messages_of(whole)) >= 2, f"this greedy reply is one message: pick another prompt ({whole!r})"
    chunks = ask(labelled_server, rare, temperature=0, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == whole


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_label_is_a_400_listing_the_valid_ones(labelled_server, labels, stream):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as refused:  # a stream too: refused before it starts
        ask(labelled_server, UNKNOWN, stream=stream)
    error = refused.value.body
    assert error["param"] == "relationship" and error["type"] == "invalid_request_error"
    assert all(label in error["message"] for label in labels), error
    assert UNKNOWN not in error["message"]  # a name sent by mistake is not echoed
    assert UNKNOWN not in labelled_server.output() and MESSAGES[0]["content"] not in labelled_server.output()


@pytest.mark.slow
def test_a_label_of_the_wrong_type_is_a_400_naming_the_field(labelled_server):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as refused:
        openai_client(labelled_server).chat.completions.create(model="replica", messages=MESSAGES, extra_body={"relationship": ["family"]})
    assert refused.value.body["param"] == "relationship"


@pytest.mark.slow
def test_an_old_run_refuses_a_label_and_answers_without_one(old_server, labels):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as refused:
        ask(old_server, labels[0])
    assert refused.value.body["param"] == "relationship" and "without relationship labels" in refused.value.body["message"]
    reply = ask(old_server, temperature=0.9, seed=1)
    assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens >= 1


# ---- the blind test ------------------------------------------------------------------------------------------
def matching_examples(examples: list[dict], context: list[dict]) -> list[dict]:
    shown = [(turn["role"], turn["text"]) for turn in context]
    return [e for e in examples if [(turn["role"], turn["text"]) for turn in e["context"]] == shown]


@pytest.mark.slow
def test_a_blind_pair_carries_its_label_and_the_replica_reply_is_written_to_it(labelled_server, labelled_run, labels):
    status, pair = Visitor(labelled_server).next()
    assert status == 200 and pair["relationship"] in labels and pair["group"] is False
    examples = matching_examples(read_split(labelled_run, "test"), pair["context"])
    assert examples and {e["relationship"] for e in examples} == {pair["relationship"]}  # the example's own label
    targets = {e["target"] for e in examples}
    fakes = [text for text in pair["options"].values() if text not in targets]
    assert len(fakes) == 1, pair["options"]
    messages = [{"role": "assistant" if turn["role"] == "me" else "user", "content": turn["text"]} for turn in pair["context"]]
    client = openai_client(labelled_server)
    greedy = {
        label: client.chat.completions.create(model="replica", messages=messages, extra_body={"relationship": label}).choices[0].message.content
        for label in labels
    }
    assert fakes[0] == greedy[pair["relationship"]]  # the blind test decodes greedily here, as the API does by default


@pytest.mark.slow
def test_an_old_runs_blind_pair_has_no_label(old_server):
    status, pair = Visitor(old_server).next()
    assert status == 200 and pair["relationship"] is None and set(pair["options"]) == {"a", "b"}


# ---- the pages in a real headless Chromium ---------------------------------------------------------------------
@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser, url: str, console: list[str]):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.on("console", lambda message: console.append(message.text))
    with page.expect_response("**/v1/models"):
        page.goto(url)
    return page


def send(page, text: str) -> dict:
    """Type and send one message; the request body the page sent."""
    page.get_by_test_id("message-input").fill(text)
    with page.expect_request("**/v1/chat/completions") as sent:
        page.get_by_test_id("send").click()
    return json.loads(sent.value.post_data)


@pytest.mark.slow
@needs_chromium
def test_web_chat_talks_to_the_chosen_label_and_shows_each_message_as_a_bubble(labelled_server, labels, browser):
    from playwright.sync_api import expect

    common, rare = labels
    expected = messages_of(ask(labelled_server, rare, temperature=0).choices[0].message.content)
    assert len(expected) >= 2, "the reference reply is one message: the bubbles would prove nothing"
    console: list[str] = []
    page = open_page(browser, labelled_server.url + "/", console)
    selector = page.get_by_test_id("relationship")
    expect(selector).to_be_visible()
    assert selector.locator("option").all_inner_texts() == labels and selector.input_value() == common
    selector.select_option(rare)
    expect(page.get_by_text(f"talking to {rare}")).to_be_visible()
    page.get_by_text("Sampling settings").click()
    page.get_by_test_id("temperature").fill("0")
    page.get_by_test_id("max-tokens").fill(str(MAX_TOKENS))
    body = send(page, MESSAGES[0]["content"])
    assert body["relationship"] == rare and body["stream"] is True
    page.locator('[data-testid="reply"][data-state="done"]').first.wait_for(timeout=300_000)
    assert page.get_by_test_id("reply-message").all_inner_texts() == expected
    selector.select_option(common)  # another label starts a new conversation
    assert page.get_by_test_id("reply").count() == 0
    assert send(page, "and next week?")["relationship"] == common
    page.locator('[data-testid="reply"][data-state="done"]').first.wait_for(timeout=300_000)
    assert not [text for text in console if "Content Security Policy" in text], console


@pytest.mark.slow
@needs_chromium
def test_web_chat_of_an_old_run_has_no_selector_and_sends_no_label(old_server, browser):
    from playwright.sync_api import expect

    page = open_page(browser, old_server.url + "/", [])
    expect(page.get_by_test_id("relationship")).to_be_hidden()
    assert "relationship" not in send(page, "hi there")
    page.locator('[data-testid="reply"][data-state="done"]').first.wait_for(timeout=300_000)
    assert page.locator(".note", has_text="error").count() == 0


@pytest.mark.slow
@needs_chromium
def test_blind_page_shows_the_pairs_label(labelled_server, labelled_run, labels, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(labelled_server.url + "/blind")
    expect(page.get_by_test_id("option-a")).to_be_enabled(timeout=300_000)
    shown = page.get_by_test_id("relationship")
    expect(shown).to_be_visible()
    label = shown.inner_text().removeprefix("Written to: ")
    assert label in labels
    context = page.locator("#context .bubble").all_inner_texts()
    examples = [e for e in read_split(labelled_run, "test") if [turn["text"] for turn in e["context"]] == context]
    assert examples and {e["relationship"] for e in examples} == {label}
