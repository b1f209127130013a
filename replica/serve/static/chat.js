// The web chat: the conversation lives in this page only; each reply streams from /v1/chat/completions, and each
// message of a reply (a burst is several, separated by line breaks) gets its own bubble. Under a finished reply, 👍
// marks it good and ✎ corrects it: both go to /v1/feedback, and a corrected reply is what later turns continue from.
"use strict";
const messages = document.getElementById("messages");
const input = document.getElementById("message-input");
const send = document.getElementById("send");
const talkingTo = document.getElementById("talking-to");
const relationship = document.getElementById("relationship");
const groupChat = document.getElementById("group-chat");
let history = [];  // OpenAI messages: user = them (you), assistant = the replica
let controller = null;

function scrollDown() { messages.scrollTop = messages.scrollHeight; }

function bubble(parent, role, text) {
  const node = document.createElement("div");
  node.className = "bubble " + (role === "user" ? "them" : "me");
  node.textContent = text;
  parent.appendChild(node);
  return node;
}

// One reply: a column of bubbles, one per message (a reply still empty shows one empty bubble while it streams).
function replyGroup() {
  const node = document.createElement("div");
  node.className = "reply";
  node.dataset.testid = "reply";
  messages.appendChild(node);
  showReply(node, "");
  return node;
}

function showReply(node, text) {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line);
  node.replaceChildren();
  for (const line of lines.length ? lines : [""]) bubble(node, "assistant", line).dataset.testid = "reply-message";
  scrollDown();
}

function note(text) {
  const node = document.createElement("p");
  node.className = "note";
  node.textContent = text;
  messages.appendChild(node);
}

function chosenRelationship() { return talkingTo.hidden ? undefined : relationship.value; }
function chosenGroup() { return talkingTo.hidden ? undefined : groupChat.checked; }

function settings() {
  const number = (id) => { const v = document.getElementById(id).value; return v === "" ? undefined : Number(v); };
  return { temperature: number("temperature"), top_p: number("top-p"), max_tokens: number("max-tokens"), seed: number("seed"), relationship: chosenRelationship(), group: chosenGroup() };
}

// The error a failed API response carries (its OpenAI error message).
async function failure(response) {
  const body = await response.json().catch(() => ({}));
  return new Error((body.error && body.error.message) || response.statusText);
}

async function postJSON(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });
  if (!response.ok) throw await failure(response);
  return response;
}

async function streamReply(node) {
  controller = new AbortController();
  const response = await postJSON("/v1/chat/completions", { messages: history, stream: true, ...settings() }, controller.signal);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const event = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (event === "[DONE]") return text;
      const delta = JSON.parse(event).choices[0]?.delta?.content;
      if (delta) { text += delta; showReply(node, text); }
    }
  }
  return text;
}

document.getElementById("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || send.disabled) return;
  input.value = "";
  history.push({ role: "user", content: text });
  bubble(messages, "user", text);
  send.disabled = true;
  const node = replyGroup();
  node.dataset.state = "streaming";
  const label = chosenRelationship();
  const group = chosenGroup();
  try {
    const reply = await streamReply(node);
    if (reply) {
      history.push({ role: "assistant", content: reply });
      feedbackControls(node, history, history.length - 1, label, group);
    }
  } catch (error) {
    if (error.name !== "AbortError") note("error: " + error.message);
  } finally {
    node.dataset.state = "done";
    send.disabled = false;
    controller = null;
    input.focus();
  }
});

// 👍 and ✎ under a reply: `conversation[index]` is the reply; what precedes it is the context the feedback carries.
function feedbackControls(node, conversation, index, label, group) {
  const original = conversation[index].content;
  const controls = document.createElement("div");
  controls.className = "feedback";
  const good = button("👍", "Good reply: this is how I would answer", "good");
  good.setAttribute("aria-pressed", "false");
  const edit = button("✎", "Correct this reply", "edit");
  controls.append(good, edit);
  node.after(controls);
  const post = (fields) => postJSON("/v1/feedback", { messages: conversation.slice(0, index), relationship: label, group, reply: original, ...fields });
  good.addEventListener("click", async () => {
    good.disabled = true;
    try {
      await post({ good: true });
      good.setAttribute("aria-pressed", "true");
      node.dataset.feedback = "good";
    } catch (error) {
      good.disabled = false;
      note("feedback not saved: " + error.message);
    }
  });
  edit.addEventListener("click", () => editReply(node, controls, conversation[index].content, async (correction) => {
    await post({ correction });
    conversation[index].content = correction;
    showReply(node, correction);
    good.disabled = true;
    node.dataset.feedback = "corrected";
  }));
}

function labelled(tag, text, testid) {
  const node = document.createElement(tag);
  node.textContent = text;
  node.dataset.testid = testid;
  return node;
}

// An icon button: screen readers and the tooltip say `label`.
function button(text, label, testid) {
  const node = labelled("button", text, testid);
  node.type = "button";
  node.setAttribute("aria-label", label);
  node.title = label;
  return node;
}

// The reply's bubbles give way to a text box holding its text; Save hands the new text to `save` (which stores it).
function editReply(node, controls, text, save) {
  const form = document.createElement("form");
  form.className = "correction";
  const box = document.createElement("textarea");
  box.value = text;
  box.rows = Math.min(8, Math.max(2, text.split("\n").length));
  box.setAttribute("aria-label", "What you would have written (one message per line)");
  box.dataset.testid = "correction";
  const saveButton = labelled("button", "Save", "save-correction");
  saveButton.type = "submit";
  const cancel = labelled("button", "Cancel", "cancel-correction");
  cancel.type = "button";
  const row = document.createElement("div");
  row.append(saveButton, cancel);
  form.append(box, row);
  const close = () => { form.remove(); node.hidden = false; controls.hidden = false; };
  node.hidden = true;
  controls.hidden = true;
  node.after(form);
  box.focus();
  cancel.addEventListener("click", close);
  box.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const correction = box.value.trim();
    if (!correction) return;
    saveButton.disabled = true;
    try {
      await save(correction);
      close();
    } catch (error) {
      saveButton.disabled = false;
      note("correction not saved: " + error.message);
    }
  });
}

// A fresh conversation: the one in progress (and its reply, if streaming) is dropped.
function startOver(message) {
  if (controller) controller.abort();
  history = [];
  messages.replaceChildren();
  note(message);
  input.focus();
}

// The run's relationship labels (most common first, the default): the selector stays hidden for a run without any.
async function loadRelationships() {
  const response = await fetch("/v1/models");
  if (!response.ok) return;
  const model = (await response.json()).data[0];
  if (!model || !model.relationships || !model.relationships.length) return;
  relationship.replaceChildren(...model.relationships.map((label) => new Option(label, label)));
  relationship.value = model.default_relationship;
  talkingTo.hidden = false;
}

document.getElementById("new-conversation").addEventListener("click", () => startOver("New conversation."));
relationship.addEventListener("change", () => startOver(`New conversation: talking to ${relationship.value}.`));
groupChat.addEventListener("change", () => startOver(groupChat.checked ? "New conversation: a group chat." : "New conversation."));
loadRelationships();
