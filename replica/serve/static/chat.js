// The web chat: the conversation lives in this page only; each reply streams from /v1/chat/completions.
"use strict";
const messages = document.getElementById("messages");
const input = document.getElementById("message-input");
const send = document.getElementById("send");
let history = [];  // OpenAI messages: user = them (you), assistant = the replica
let controller = null;

function bubble(role, text) {
  const node = document.createElement("div");
  node.className = "bubble " + (role === "user" ? "them" : "me");
  if (role === "assistant") node.dataset.testid = "reply";
  node.textContent = text;
  messages.appendChild(node);
  messages.scrollTop = messages.scrollHeight;
  return node;
}

function note(text) {
  const node = document.createElement("p");
  node.className = "note";
  node.textContent = text;
  messages.appendChild(node);
}

function settings() {
  const number = (id) => { const v = document.getElementById(id).value; return v === "" ? undefined : Number(v); };
  return { temperature: number("temperature"), top_p: number("top-p"), max_tokens: number("max-tokens"), seed: number("seed") };
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
      if (delta) { text += delta; node.textContent = text; messages.scrollTop = messages.scrollHeight; }
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
  bubble("user", text);
  send.disabled = true;
  const node = bubble("assistant", "");
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

document.getElementById("new-conversation").addEventListener("click", () => {
  if (controller) controller.abort();
  history = [];
  messages.replaceChildren();
  note("New conversation.");
  input.focus();
});
