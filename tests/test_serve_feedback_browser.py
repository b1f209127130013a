"""Teaching the replica from the web chat, in a real headless Chromium against a real `replica serve` of the tiny
labelled run: 👍 under a reply and ✎ → edit → Save store feedback (read back from the SQLite store), the corrected
text replaces the reply's bubbles and the next turn continues from it."""

from __future__ import annotations

import json

import pytest

from tests.serve_helpers import Server
from tests.test_serve import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.test_serve_feedback import copy_of, stored

KEY = "browser-feedback-key"
CORRECTION = ["sure, see you there", "bringing dessert"]  # two messages: one bubble each


@pytest.fixture(scope="module")
def feedback_run(labelled_run, tmp_path_factory):
    return copy_of(labelled_run, tmp_path_factory.mktemp("browser-feedback") / "run")


@pytest.fixture(scope="module")
def server(feedback_run, tmp_path_factory):
    process = Server(feedback_run, tmp_path_factory.mktemp("browser-feedback-log") / "server.log", "--api-key", KEY)
    yield process
    process.stop()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": "owner", "password": KEY}, viewport={"width": 1000, "height": 700})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def lines_of(text: str) -> str:
    """A reply as its bubbles show it: its non-empty lines, stripped."""
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


def say(page, text: str, turn: int) -> str:
    """Send `text` and wait for the replica's `turn`-th reply (0-based); its text, one line per bubble."""
    page.get_by_test_id("message-input").fill(text)
    page.get_by_test_id("send").click()
    reply = page.locator('[data-testid="reply"][data-state="done"]').nth(turn)
    reply.wait_for(timeout=300_000)
    lines = reply.get_by_test_id("reply-message").all_inner_texts()
    assert "".join(lines).strip(), "the replica's reply is empty: nothing to give feedback on"
    return "\n".join(lines)


@pytest.mark.slow
@needs_chromium
def test_thumbs_up_and_a_correction_are_stored_and_the_next_turn_continues_from_the_correction(server, feedback_run, page):
    from playwright.sync_api import expect

    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(server.url + "/")
    page.get_by_test_id("relationship").select_option("family")  # the label goes with the feedback
    page.get_by_text("Sampling settings").click()
    page.get_by_test_id("temperature").fill("0")
    page.get_by_test_id("max-tokens").fill("12")
    first = say(page, "are you coming on sunday?", 0)

    page.get_by_role("button", name="Good reply: this is how I would answer").click()
    expect(page.locator('[data-testid="reply"][data-feedback="good"]')).to_have_count(1, timeout=60_000)
    expect(page.get_by_test_id("good").first).to_have_attribute("aria-pressed", "true")

    second = say(page, "great, what should I bring?", 1)
    page.get_by_role("button", name="Correct this reply").nth(1).click()
    box = page.get_by_role("textbox", name="What you would have written (one message per line)")
    assert lines_of(box.input_value()) == second
    box.fill("\n".join(CORRECTION))
    page.get_by_test_id("save-correction").click()
    corrected = page.locator('[data-testid="reply"][data-feedback="corrected"]')
    expect(corrected).to_have_count(1, timeout=60_000)
    assert corrected.get_by_test_id("reply-message").all_inner_texts() == CORRECTION

    good, correction = stored(feedback_run).values()
    assert (good.good, lines_of(good.reply), good.relationship, good.group) == (True, first, "family", False)
    assert good.context == [{"role": "them", "text": "are you coming on sunday?"}]
    assert (lines_of(correction.reply), correction.correction, correction.relationship) == (second, "\n".join(CORRECTION), "family")
    assert correction.context[0] == good.context[0] and correction.context[1] == {"role": "me", "text": good.reply}
    assert correction.context[2:] == [{"role": "them", "text": "great, what should I bring?"}]

    page.get_by_test_id("message-input").fill("perfect")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.get_by_test_id("send").click()
    history = json.loads(sent.value.post_data)["messages"]
    assert history[3] == {"role": "assistant", "content": "\n".join(CORRECTION)}
    assert json.loads(sent.value.post_data)["group"] is False
    page.locator('[data-testid="reply"][data-state="done"]').nth(2).wait_for(timeout=300_000)

    page.get_by_test_id("group-chat").check()  # a new conversation, in the voice of a family group chat
    say(page, "who's bringing dessert?", 0)
    page.get_by_role("button", name="Good reply: this is how I would answer").first.click()
    expect(page.locator('[data-testid="reply"][data-feedback="good"]')).to_have_count(1, timeout=60_000)
    *_, in_group = stored(feedback_run).values()
    assert (in_group.relationship, in_group.group, in_group.good) == ("family", True, True)
    assert not [text for text in console if "Content Security Policy" in text], console
