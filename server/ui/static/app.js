// The codebooga playground: chat and compare mode over the server's OpenAI API, no build step.
// Model output is Markdown rendered by marked and always passed through DOMPurify before it reaches the page.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const POINTS = [4, 2, 1, 0]; // the CodeBooga model card's ranking scale
const RANKINGS_FORMAT = "codebooga-rankings/1";

const state = {
  mode: "chat",
  history: [], // the chat's messages, without the system prompt
  controllers: [], // AbortControllers of the requests in flight
  presets: [],
  models: new Map(), // base URL -> {id, context_length}
  rankings: [],
  pending: null, // compare round awaiting points: {prompt, answers, points}
};

// ---- the server ------------------------------------------------------------------------------------------

const apiKeyName = (base) => `codebooga.apiKey:${base}`;

function headers(base) {
  const key = localStorage.getItem(apiKeyName(base));
  return { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) };
}

// fetch that asks for the API key once when the server answers 401, keeps it, and retries.
async function apiFetch(base, path, options = {}) {
  const send = () => fetch(`${base}${path}`, { ...options, headers: headers(base) });
  let response = await send();
  if (response.status === 401) {
    const key = window.prompt(`${base} needs an API key:`);
    if (key) {
      localStorage.setItem(apiKeyName(base), key.trim());
      response = await send();
    }
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error?.message ?? message;
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(`${base}${path}: ${message}`);
  }
  return response;
}

async function modelOf(base) {
  if (!state.models.has(base)) {
    const list = await (await apiFetch(base, "/v1/models")).json();
    state.models.set(base, list.data[0]);
  }
  return state.models.get(base);
}

// POST /v1/chat/completions with stream: true; calls onDelta(text) per token and returns the final usage.
async function streamChat(base, body, signal, onDelta) {
  const response = await apiFetch(base, "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return usage;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue; // ": ping" comments keep the connection alive
        const data = line.slice(5).trim();
        if (data === "[DONE]") return usage;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const text = chunk.choices?.[0]?.delta?.content;
        if (text) onDelta(text);
        if (chunk.usage) usage = chunk.usage;
      }
    }
  }
}

// ---- rendering ---------------------------------------------------------------------------------------------

function escapeHtml(text) {
  const escapes = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  return text.replace(/[&<>"']/g, (character) => escapes[character]);
}

function renderMarkdown(element, text) {
  element.innerHTML = DOMPurify.sanitize(marked.parse(text));
  for (const code of element.querySelectorAll("pre > code")) {
    hljs.highlightElement(code);
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "Copy";
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(code.textContent);
      copy.textContent = "Copied";
    });
    code.parentElement.prepend(copy);
  }
}

// Re-renders at most once per frame however fast tokens arrive.
function liveRenderer(element) {
  let text = "";
  let scheduled = false;
  return {
    add(delta) {
      text += delta;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          renderMarkdown(element, text);
        });
      }
    },
    get text() {
      return text;
    },
    finish() {
      renderMarkdown(element, text);
    },
  };
}

// Time to first token, tokens/s and context used, updated while the answer streams.
function figuresFor(element, contextLength) {
  const started = performance.now();
  let first = null;
  let deltas = 0;
  const show = (tokens, used) => {
    const parts = [];
    if (first !== null) {
      parts.push(`TTFT ${Math.round(first - started)} ms`);
      const seconds = (performance.now() - first) / 1000;
      if (seconds > 0 && tokens > 1) parts.push(`${((tokens - 1) / seconds).toFixed(1)} tokens/s`);
    }
    if (used !== undefined) parts.push(`context ${used} / ${contextLength} tokens`);
    element.textContent = parts.join(" · ");
  };
  return {
    delta() {
      if (first === null) first = performance.now();
      deltas += 1;
      show(deltas);
    },
    done(usage) {
      show(usage?.completion_tokens ?? deltas, usage?.total_tokens);
    },
  };
}

function showError(error) {
  const box = $("#error");
  box.hidden = !error;
  box.textContent = error ? String(error.message ?? error) : "";
}

// ---- requests ----------------------------------------------------------------------------------------------

function numberField(id) {
  const value = $(`#${id}`).value.trim();
  return value === "" ? undefined : Number(value);
}

function requestBody(model, messages) {
  const system = $("#system").value.trim();
  const body = {
    model,
    messages: system ? [{ role: "system", content: system }, ...messages] : messages,
    preset: $("#preset").value || undefined,
    max_tokens: numberField("max_tokens"),
  };
  for (const field of ["temperature", "top_p"]) {
    const value = numberField(field);
    if (value !== undefined) body[field] = value;
  }
  return body;
}

// Streams one answer from `base` into `element`; returns its text, also when stopped.
async function answerInto(base, messages, element, figuresElement) {
  const controller = new AbortController();
  state.controllers.push(controller);
  const renderer = liveRenderer(element);
  element.classList.add("streaming");
  try {
    const model = await modelOf(base);
    const figures = figuresFor(figuresElement, model.context_length);
    const usage = await streamChat(base, requestBody(model.id, messages), controller.signal, (delta) => {
      renderer.add(delta);
      figures.delta();
    });
    figures.done(usage);
  } catch (error) {
    if (error.name !== "AbortError") showError(error);
  } finally {
    renderer.finish();
    element.classList.remove("streaming");
  }
  return renderer.text;
}

function setBusy(busy) {
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
}

async function sendChat(prompt) {
  state.history.push({ role: "user", content: prompt });
  const user = document.createElement("div");
  user.className = "message user";
  user.textContent = prompt;
  const assistant = document.createElement("div");
  assistant.className = "message assistant markdown";
  $("#messages").append(user, assistant);
  const text = await answerInto(location.origin, state.history, assistant, $("#figures"));
  state.history.push({ role: "assistant", content: text });
}

async function sendCompare(prompt) {
  state.pending = { prompt, answers: {}, points: {} };
  const round = state.pending;
  const messages = [{ role: "user", content: prompt }];
  await Promise.all(
    ["A", "B"].map(async (side) => {
      const panel = $(`.side[data-side="${side}"]`);
      panel.querySelectorAll(".rank button").forEach((button) => button.classList.remove("chosen"));
      const base = endpoint(side);
      $(".endpoint-label", panel).textContent = base;
      round.answers[side] = await answerInto(base, messages, $(".answer", panel), $(".figures", panel));
    }),
  );
  setRankable(true);
}

function endpoint(side) {
  return ($(`#endpoint-${side}`).value.trim() || location.origin).replace(/\/+$/, "").replace(/\/v1$/, "");
}

async function send(event) {
  event.preventDefault();
  const prompt = $("#prompt").value.trim();
  if (!prompt) return;
  $("#prompt").value = "";
  showError(null);
  setBusy(true);
  try {
    await (state.mode === "chat" ? sendChat(prompt) : sendCompare(prompt));
  } finally {
    state.controllers = [];
    setBusy(false);
  }
}

function stop() {
  state.controllers.forEach((controller) => controller.abort());
}

// ---- compare mode: ranking -----------------------------------------------------------------------------------

function setRankable(enabled) {
  document.querySelectorAll(".rank button").forEach((button) => (button.disabled = !enabled));
}

function rank(side, points, button) {
  const round = state.pending;
  if (!round) return;
  round.points[side] = points;
  for (const other of button.parentElement.querySelectorAll("button")) {
    other.classList.toggle("chosen", other === button);
  }
  if ("A" in round.points && "B" in round.points) {
    state.rankings.push(round);
    state.pending = null;
    setRankable(false);
    renderScores();
  }
}

function totals() {
  const sum = { A: 0, B: 0 };
  for (const round of state.rankings) for (const side of ["A", "B"]) sum[side] += round.points[side];
  return sum;
}

function renderScores() {
  const body = $("#scores tbody");
  body.replaceChildren(
    ...state.rankings.map((round, index) => {
      const row = document.createElement("tr");
      for (const cell of [index + 1, round.prompt, round.points.A, round.points.B]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        row.append(td);
      }
      return row;
    }),
  );
  const sum = totals();
  $("#total-A").textContent = String(sum.A);
  $("#total-B").textContent = String(sum.B);
}

// The documented export (docs/serving.md#compare-mode): one entry per ranked prompt, and the totals.
function exportRankings() {
  const document_ = {
    format: RANKINGS_FORMAT,
    endpoints: { A: endpoint("A"), B: endpoint("B") },
    rankings: state.rankings,
    totals: totals(),
  };
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" }));
  link.download = "codebooga-rankings.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

// ---- setup -------------------------------------------------------------------------------------------------------

function setMode(mode) {
  state.mode = mode;
  $("#mode-chat").classList.toggle("active", mode === "chat");
  $("#mode-compare").classList.toggle("active", mode === "compare");
  $("#chat-view").hidden = mode !== "chat";
  $("#compare-view").hidden = mode !== "compare";
  $("#compare-settings").hidden = mode !== "compare";
}

function showPreset() {
  const preset = state.presets.find((candidate) => candidate.name === $("#preset").value);
  $("#preset-description").textContent = preset?.description ?? "";
  for (const field of ["temperature", "top_p"]) {
    const value = preset?.sampling[field];
    $(`#${field}`).placeholder = value === undefined ? "" : String(value);
  }
}

async function loadPresets() {
  const list = await (await apiFetch(location.origin, "/v1/presets")).json();
  state.presets = list.data;
  const options = list.data.map((preset) => {
    const label = preset.default ? `${preset.name} (server default)` : preset.name;
    return new Option(label, preset.name, false, preset.default);
  });
  $("#preset").replaceChildren(...options);
  showPreset();
}

function buildRankButtons() {
  for (const panel of document.querySelectorAll(".side")) {
    const side = panel.dataset.side;
    for (const points of POINTS) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = String(points);
      button.disabled = true;
      button.addEventListener("click", () => rank(side, points, button));
      $(".rank", panel).append(button);
    }
  }
}

async function start() {
  // HTML the model writes is shown as text, as any other characters it writes, never parsed as markup.
  marked.use({ gfm: true, renderer: { html: (token) => escapeHtml(token.text) } });
  buildRankButtons();
  for (const side of ["A", "B"]) $(`#endpoint-${side}`).value = location.origin;
  $("#composer").addEventListener("submit", send);
  $("#prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#composer").requestSubmit();
  });
  $("#stop").addEventListener("click", stop);
  $("#clear").addEventListener("click", () => {
    state.history = [];
    $("#messages").replaceChildren();
    $("#figures").textContent = "";
  });
  $("#mode-chat").addEventListener("click", () => setMode("chat"));
  $("#mode-compare").addEventListener("click", () => setMode("compare"));
  $("#preset").addEventListener("change", showPreset);
  $("#export").addEventListener("click", exportRankings);
  try {
    await loadPresets();
    $("#model-name").textContent = (await modelOf(location.origin)).id;
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
