// The blind test: fetch a pair, let the visitor pick the real reply, reveal it and show the running score.
"use strict";
const context = document.getElementById("context");
const buttons = { a: document.getElementById("option-a"), b: document.getElementById("option-b") };
const verdict = document.getElementById("verdict");
const next = document.getElementById("next");
const score = document.getElementById("score");
const relationship = document.getElementById("relationship");
let open = false;  // a pair is shown and not yet guessed (the server keeps its answer, tied to this browser)

// Who the real reply was written to (the replica's reply was written to the same); runs without labels show none.
function showRelationship(label, group) {
  relationship.hidden = !label;
  relationship.textContent = label ? `Written to: ${label}${group && label !== "group" ? " (group chat)" : ""}` : "";
}

function pct(x) { return Math.round(x * 100) + "%"; }

function showScore(s) {
  if (!s || !s.guesses) { score.textContent = "No guesses yet."; return; }
  score.textContent = `People spotted the real reply ${s.spotted} of ${s.guesses} times (${pct(s.rate)}, 95% interval ` +
    `${pct(s.ci95[0])}–${pct(s.ci95[1])}; ${s.clients} ${s.clients === 1 ? "browser" : "browsers"}); ` +
    "50% means the replica is indistinguishable.";
}

async function load() {
  open = false;
  next.hidden = true;
  verdict.textContent = "Writing the replica's reply…";
  for (const b of Object.values(buttons)) { b.disabled = true; b.className = ""; b.textContent = "…"; }
  const response = await fetch("/blind/api/next");
  const body = await response.json();
  if (!response.ok) { verdict.textContent = body.error ? body.error.message : response.statusText; next.hidden = false; return; }
  context.replaceChildren(...body.context.map((turn) => {
    const node = document.createElement("div");
    node.className = "bubble " + (turn.role === "me" ? "me" : "them");
    node.textContent = turn.speaker ? `${turn.speaker}: ${turn.text}` : turn.text;
    return node;
  }));
  showRelationship(body.relationship, body.group);
  for (const key of ["a", "b"]) { buttons[key].textContent = body.options[key]; buttons[key].disabled = false; }
  open = true;
  verdict.textContent = "Which reply is really them?";
  showScore(body.score);
}

async function guess(choice) {
  if (!open) return;
  open = false;
  for (const b of Object.values(buttons)) b.disabled = true;
  const response = await fetch("/blind/api/guess", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ choice }),
  });
  const body = await response.json();
  if (!response.ok) { verdict.textContent = body.error ? body.error.message : response.statusText; next.hidden = false; return; }
  buttons[body.real].className = "real";
  buttons[body.real === "a" ? "b" : "a"].className = "fake";
  verdict.textContent = body.correct ? "Right: that one is real." : "Fooled: the other one is real.";
  showScore(body.score);
  next.hidden = false;
}

buttons.a.addEventListener("click", () => guess("a"));
buttons.b.addEventListener("click", () => guess("b"));
next.addEventListener("click", load);
load();
