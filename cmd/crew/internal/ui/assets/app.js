// crew ui: polls the server's overview, draws each queue's charts in SVG,
// and lists and acts on the selected queue's dead letters. Every value from
// the server is set as text, never parsed as HTML.
"use strict";

const token = document.querySelector('meta[name="crew-token"]').content;
const readOnly = document.body.classList.contains("read-only");
const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const series = ["ready", "leased", "delayed", "dead"];

let selected = null;  // the queue whose dead letters are listed
let lastDead = null;  // its dead count when they were listed
let every = 2;

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// chart draws lines (one per key of points) over the samples' times.
function chart(points, keys, colors, opts = {}) {
  const w = 220, h = 44, pad = 2;
  const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
  s.append(svg("rect", { x: 0, y: 0, width: w, height: h, fill: "#fafafa", rx: 3 }));
  if (points.length === 0) return s;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  let max = 0;
  for (const p of points) for (const k of keys) max = Math.max(max, p[k]);
  const top = max > 0 ? max : 1;
  const x = (t) => (t1 === t0 ? w - pad : pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad));
  const y = (v) => h - pad - (v / top) * (h - 2 * pad - 10);
  keys.forEach((k, i) => {
    const pts = points.map((p) => `${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`);
    if (points.length === 1) pts.unshift(`${pad},${y(points[0][k]).toFixed(1)}`);
    if (opts.area) {
      const first = pts[0].split(",")[0], last = pts[pts.length - 1].split(",")[0];
      s.append(svg("polygon", { points: `${first},${h - pad} ${pts.join(" ")} ${last},${h - pad}`, fill: colors[i], "fill-opacity": 0.18 }));
    }
    s.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: colors[i], "stroke-width": 1.5, "stroke-linejoin": "round" }));
  });
  const label = svg("text", { x: w - 4, y: 10, "text-anchor": "end", "font-size": 9, fill: "#6b6f76" });
  label.textContent = opts.format ? opts.format(max) : `max ${max}`;
  s.append(label);
  const title = svg("title");
  title.textContent = opts.title || "";
  s.append(title);
  return s;
}

const color = (name) => getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();

function renderQueues(data) {
  const body = $("#queues tbody");
  const rows = data.queues.map((q) => {
    const tr = el("tr", { "data-queue": q.name, class: q.name === selected ? "selected" : "" },
      el("td", { class: "name", text: q.name }),
      el("td", { class: "num ready", text: q.ready }),
      el("td", { class: "num leased", text: q.leased }),
      el("td", { class: "num delayed", text: q.delayed }),
      el("td", { class: "num dead" + (q.dead > 0 ? " some" : ""), text: q.dead }),
      el("td", { class: "chart depth" }, chart(q.history, series, series.map(color), { title: "messages by state" })),
      el("td", { class: "chart rate" }, chart(q.history, ["rate"], [color("rate")],
        { area: true, title: "completed per second", format: (m) => `max ${m.toFixed(1)}/s` })),
    );
    if (q.error) tr.title = q.error;
    tr.addEventListener("click", () => select(q.name));
    return tr;
  });
  body.replaceChildren(...rows);
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Crew-Token": token },
    body: JSON.stringify(body),
  };
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function status(text, isError) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

async function refresh() {
  try {
    const data = await api("/api/overview");
    every = Math.max(1, data.every);
    // A queue that no longer holds any message leaves the store's list:
    // show the URL's own queue instead.
    if (selected === null || !data.queues.some((q) => q.name === selected)) {
      selected = data.queue;
      lastDead = null;
    }
    renderQueues(data);
    const q = data.queues.find((q) => q.name === selected);
    if (q && q.dead !== lastDead) await loadDead();
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#updated").textContent = "cannot reach crew ui: " + e.message;
  }
}

function select(name) {
  selected = name;
  lastDead = null;
  status("");
  refresh();
}

async function loadDead() {
  const name = selected;
  $("#dead-queue").textContent = name;
  let data;
  try {
    data = await api(`/api/queues/${encodeURIComponent(name)}/dead`);
  } catch (e) {
    status(e.message, true);
    $("#dead-letters tbody").replaceChildren();
    return;
  }
  if (name !== selected) return;
  lastDead = data.total;
  $("#dead-total").textContent = data.total > data.messages.length
    ? `(${data.messages.length} of ${data.total})` : `(${data.total})`;
  const rows = data.messages.map((m) => {
    const box = el("input", { type: "checkbox", value: m.id });
    box.addEventListener("change", updateSelection);
    const one = el("button", { class: "redrive-one", text: "Redrive" });
    one.addEventListener("click", () => act("redrive", { ids: [m.id] }, `message ${m.id}`));
    return el("tr", { "data-id": m.id },
      el("td", { class: "check" }, box),
      el("td", { class: "id", text: m.id }),
      el("td", { class: "reason", text: m.reason, title: m.reason }),
      el("td", { class: "num", text: m.attempts }),
      el("td", { text: new Date(m.at).toLocaleString(), title: m.at }),
      el("td", { class: "preview " + m.kind, text: m.preview, title: `${m.size} bytes${m.kind === "hex" ? ", binary: shown as hex" : ""}` }),
      el("td", { class: "act" }, one),
    );
  });
  $("#dead-letters tbody").replaceChildren(...rows);
  $("#no-dead").hidden = data.total > 0;
  $("#select-all").checked = false;
  updateSelection();
}

function checkedIDs() {
  return [...document.querySelectorAll("#dead-letters tbody input:checked")].map((b) => b.value);
}

function updateSelection() {
  $("#redrive-selected").disabled = checkedIDs().length === 0;
}

async function act(kind, body, what) {
  if (readOnly) return;
  if (kind === "purge" && !confirm(`Delete every dead letter of ${selected} for good?`)) return;
  try {
    const r = await api(`/api/queues/${encodeURIComponent(selected)}/${kind}`, body);
    status(kind === "purge" ? `Purged ${r.purged} dead letters.` : `Redrove ${r.moved} (${what}).`);
  } catch (e) {
    status(e.message, true);
  }
  lastDead = null;
  await refresh();
}

$("#select-all").addEventListener("change", (e) => {
  for (const b of document.querySelectorAll("#dead-letters tbody input")) b.checked = e.target.checked;
  updateSelection();
});
$("#redrive-selected").addEventListener("click", () => {
  const ids = checkedIDs();
  act("redrive", { ids }, `${ids.length} selected`);
});
$("#redrive-all").addEventListener("click", () => act("redrive", { all: true }, "all"));
$("#purge").addEventListener("click", () => act("purge", {}));

async function loop() {
  await refresh();
  setTimeout(loop, every * 1000);
}
loop();
