// Ranking page: pick candidates best-first (click, drag or keys 1-9), tie, "all bad", undo, submit, next item.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { annotator: "", item: null, groups: [], allBad: false, submissionId: "", busy: false };

function newSubmissionId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "s" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showProgress(progress) {
  $("progress").textContent = `${progress.done} / ${progress.total}`;
}

function rankedIds() { return state.groups.flat(); }

function complete() {
  return state.item !== null && rankedIds().length === state.item.candidates.length;
}

function render() {
  const rankOf = {};
  state.groups.forEach((group, i) => group.forEach((id) => { rankOf[id] = i + 1; }));
  for (const card of document.querySelectorAll(".candidate")) {
    const rank = rankOf[card.dataset.id];
    card.classList.toggle("ranked", rank !== undefined);
    card.querySelector(".rank").textContent = rank === undefined ? "" : String(rank);
  }
  const list = $("ranking");
  list.replaceChildren(...state.groups.map((group) => {
    const li = document.createElement("li");
    li.textContent = group.map((id) => labelOf(id)).join(" = ");
    return li;
  }));
  $("all-bad").setAttribute("aria-pressed", String(state.allBad));
  $("submit").disabled = state.busy || !(complete() || state.allBad);
}

function labelOf(id) {
  const index = state.item.candidates.findIndex((c) => c.id === id);
  return `#${index + 1}`;
}

function pick(id) {
  if (!state.item || rankedIds().includes(id)) return;
  state.groups.push([id]);
  render();
}

function tie() {
  if (state.groups.length < 2) return;
  const last = state.groups.pop();
  state.groups[state.groups.length - 1].push(...last);
  render();
}

function undo() {
  const last = state.groups[state.groups.length - 1];
  if (!last) return;
  last.pop();
  if (last.length === 0) state.groups.pop();
  render();
}

function showItem(item) {
  state.item = item;
  state.groups = [];
  state.allBad = false;
  state.submissionId = newSubmissionId();
  if (!item) {
    $("work").hidden = true;
    $("done").hidden = false;
    return;
  }
  $("done").hidden = true;
  $("work").hidden = false;
  $("work").dataset.itemId = item.id;
  $("instruction").textContent = item.instruction;
  $("input-image").src = item.image;
  const cards = item.candidates.map((c, i) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "candidate";
    card.dataset.id = c.id;
    card.draggable = true;
    card.innerHTML = `<span class="key">${i + 1}</span><span class="rank"></span>`;
    const img = document.createElement("img");
    img.src = c.render;
    img.alt = `candidate ${i + 1}`;
    img.draggable = false;
    card.appendChild(img);
    card.addEventListener("click", () => pick(c.id));
    card.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", c.id));
    return card;
  });
  $("candidates").replaceChildren(...cards);
  render();
}

async function loadNext() {
  const response = await fetch(`/api/next?annotator=${encodeURIComponent(state.annotator)}`);
  const body = await response.json();
  if (!response.ok) { setStatus(body.message || "could not load the next item", true); return; }
  showProgress(body.progress);
  showItem(body.item);
}

async function submit() {
  if (state.busy || !state.item || !(complete() || state.allBad)) return;
  state.busy = true;
  render();
  const payload = {
    submission_id: state.submissionId,
    annotator: state.annotator,
    item_id: state.item.id,
    groups: complete() ? state.groups : [],
    all_bad: state.allBad,
  };
  try {
    const response = await fetch("/api/rankings", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
    });
    const body = await response.json();
    if (!response.ok) { setStatus(body.message || `error ${response.status}`, true); return; }
    showProgress(body.progress);
    setStatus(`Saved ${payload.item_id}.`);
    await loadNext();
  } catch (error) {
    // Same submission id on retry: the server stores it once.
    setStatus(`Network error, press Enter to retry (${error})`, true);
  } finally {
    state.busy = false;
    render();
  }
}

$("who").addEventListener("submit", (e) => {
  e.preventDefault();
  state.annotator = $("annotator").value.trim();
  if (!state.annotator) return;
  const url = new URL(window.location);
  url.searchParams.set("annotator", state.annotator);
  history.replaceState(null, "", url);
  $("annotator").blur();
  loadNext();
});
$("tie").addEventListener("click", tie);
$("undo").addEventListener("click", undo);
$("all-bad").addEventListener("click", () => { state.allBad = !state.allBad; render(); });
$("submit").addEventListener("click", submit);
$("ranking").addEventListener("dragover", (e) => { e.preventDefault(); $("ranking").classList.add("drop"); });
$("ranking").addEventListener("dragleave", () => $("ranking").classList.remove("drop"));
$("ranking").addEventListener("drop", (e) => {
  e.preventDefault();
  $("ranking").classList.remove("drop");
  pick(e.dataTransfer.getData("text/plain"));
});

document.addEventListener("keydown", (e) => {
  if (!state.item || e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) {
    const candidate = state.item.candidates[Number(e.key) - 1];
    if (candidate) pick(candidate.id);
  } else if (e.key === "t") {
    tie();
  } else if (e.key === "x") {
    state.allBad = !state.allBad;
    render();
  } else if (e.key === "Backspace") {
    e.preventDefault();
    undo();
  } else if (e.key === "Enter") {
    e.preventDefault();
    submit();
  } else {
    return;
  }
});

const initial = new URL(window.location).searchParams.get("annotator");
if (initial) {
  $("annotator").value = initial;
  state.annotator = initial.trim();
  loadNext();
}
