// Ranking page: pick candidates best-first (click, drag or keys 1-9), tie, "all bad", undo, submit, next item,
// skip and back, zoom; the half not judged is dimmed. Candidates are named by their slot on screen (p1, p2...).
"use strict";
const $ = (id) => document.getElementById(id);
const state = {
  annotator: "", item: null, groups: [], allBad: false, submissionId: "", busy: false,
  history: [], skipped: [], zoomNext: false,
};

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
  $("progress-bar").max = progress.total;
  $("progress-bar").value = progress.done;
}

function setDim(frame, dim) {
  const overlay = frame.querySelector(".dim");
  overlay.hidden = !dim;
  if (dim) {
    overlay.style.top = `${dim[0] * 100}%`;
    overlay.style.height = `${(dim[1] - dim[0]) * 100}%`;
  }
}

function zoom(candidate, index) {
  $("zoom-input").src = state.item.image;
  $("zoom-candidate").src = candidate.render;
  $("zoom-caption").textContent = `candidate #${index + 1}`;
  for (const frame of document.querySelectorAll("#zoom .frame")) setDim(frame, state.item.dim);
  if (!$("zoom").open) $("zoom").showModal();
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
  $("back").disabled = state.busy || state.history.length === 0;
  $("skip").disabled = state.busy || !state.item;
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
  $("ranked-before").hidden = !item.ranked;
  $("input-image").src = item.image;
  setDim(document.querySelector(".input .frame"), item.dim);
  const cards = item.candidates.map((c, i) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "candidate";
    card.dataset.id = c.id;
    card.draggable = true;
    card.innerHTML = `<span class="key">${i + 1}</span><span class="rank"></span>`;
    const frame = document.createElement("div");
    frame.className = "frame";
    const img = document.createElement("img");
    img.src = c.render;
    img.alt = `candidate ${i + 1}`;
    img.draggable = false;
    const overlay = document.createElement("div");
    overlay.className = "dim";
    frame.append(img, overlay);
    card.appendChild(frame);
    setDim(frame, item.dim);
    const magnifier = document.createElement("span");
    magnifier.className = "zoom";
    magnifier.title = "see it large next to the input";
    magnifier.setAttribute("role", "button");
    magnifier.setAttribute("aria-label", `zoom candidate ${i + 1}`);
    magnifier.textContent = "\u{1F50D}";
    magnifier.addEventListener("click", (e) => { e.stopPropagation(); zoom(c, i); });
    card.appendChild(magnifier);
    card.addEventListener("click", () => {
      if (state.zoomNext) { state.zoomNext = false; zoom(c, i); return; }
      pick(c.id);
    });
    card.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", c.id));
    return card;
  });
  $("candidates").replaceChildren(...cards);
  render();
}

async function loadNext() {
  const skip = state.skipped.length ? `&skip=${encodeURIComponent(state.skipped.join(","))}` : "";
  const response = await fetch(`/api/next?annotator=${encodeURIComponent(state.annotator)}${skip}`);
  const body = await response.json();
  if (!response.ok) { setStatus(body.message || "could not load the next item", true); return; }
  showProgress(body.progress);
  showItem(body.item);
}

function leaveItem() {
  if (state.item && state.history[state.history.length - 1] !== state.item.id) state.history.push(state.item.id);
}

async function skip() {
  if (state.busy || !state.item) return;
  const id = state.item.id;
  state.skipped = state.skipped.filter((s) => s !== id).concat([id]);
  leaveItem();
  setStatus(`Skipped ${id}: it comes back at the end.`);
  await loadNext();
}

async function back() {
  if (state.busy || state.history.length === 0) return;
  const id = state.history.pop();
  const response = await fetch(`/api/items/${encodeURIComponent(id)}?annotator=${encodeURIComponent(state.annotator)}`);
  const body = await response.json();
  if (!response.ok) { setStatus(body.message || "could not load the item", true); return; }
  showItem(body);
  setStatus(`Back to ${id}.`);
}

async function submit() {
  if (state.busy || !state.item || !(complete() || state.allBad)) return;
  state.busy = true;
  render();
  const payload = {
    submission_id: state.submissionId,
    annotator: state.annotator,
    item_id: state.item.id,
    display_groups: complete() ? state.groups : [],
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
    state.skipped = state.skipped.filter((s) => s !== payload.item_id);
    leaveItem();
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
$("skip").addEventListener("click", skip);
$("back").addEventListener("click", back);
$("ranking").addEventListener("dragover", (e) => { e.preventDefault(); $("ranking").classList.add("drop"); });
$("ranking").addEventListener("dragleave", () => $("ranking").classList.remove("drop"));
$("ranking").addEventListener("drop", (e) => {
  e.preventDefault();
  $("ranking").classList.remove("drop");
  pick(e.dataTransfer.getData("text/plain"));
});

document.addEventListener("keydown", (e) => {
  if (!state.item || e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  if ($("zoom").open) return;  // the dialog handles Esc itself
  if (/^[1-9]$/.test(e.key)) {
    const index = Number(e.key) - 1;
    const candidate = state.item.candidates[index];
    if (candidate && state.zoomNext) { state.zoomNext = false; zoom(candidate, index); }
    else if (candidate) pick(candidate.id);
  } else if (e.key === "z") {
    state.zoomNext = true;
    setStatus("Zoom: click a candidate or press its number.");
  } else if (e.key === "s") {
    skip();
  } else if (e.key === "b") {
    back();
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
