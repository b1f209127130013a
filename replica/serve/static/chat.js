// The web chat: the conversation lives in this page only; each reply streams from /v1/chat/completions, and each
// message of a reply (a burst is several, separated by line breaks) gets its own bubble.
"use strict";
const messages = document.getElementById("messages");
const input = document.getElementById("message-input");
const send = document.getElementById("send");
const talkingTo = document.getElementById("talking-to");
const relationship = document.getElementById("relationship");
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

function settings() {
  const number = (id) => { const v = document.getElementById(id).value; return v === "" ? undefined : Number(v); };
  const chosen = talkingTo.hidden ? undefined : relationship.value;
  return { temperature: number("temperature"), top_p: number("top-p"), max_tokens: number("max-tokens"), seed: number("seed"), relationship: chosen };
}

async function streamReply(node) {
  controller = new AbortController();
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: history, stream: true, ...settings() }),
    signal: controller.signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error((body.error && body.error.message) || response.statusText);
  }
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
  try {
    const reply = await streamReply(node);
    if (reply) history.push({ role: "assistant", content: reply });
  } catch (error) {
    if (error.name !== "AbortError") note("error: " + error.message);
  } finally {
    node.dataset.state = "done";
    send.disabled = false;
    controller = null;
    input.focus();
  }
});

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
loadRelationships();
