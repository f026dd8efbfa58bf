// The dashboard's own script: polled fragments, the fleet's filter and sort, the chart.
// Everything else is server-rendered HTML.
"use strict";

function poll(el) {
  const every = Number(el.dataset.every || 5) * 1000;
  setInterval(async () => {
    const r = await fetch(el.dataset.poll, {credentials: "same-origin"});
    if (r.status === 401) { location.assign("/ui/login"); return; }
    if (r.ok) { el.innerHTML = await r.text(); applyFilter(); }
  }, every);
}

function applyFilter() {
  const input = document.getElementById("filter");
  if (!input) return;
  const words = input.value.trim().toLowerCase();
  for (const row of document.querySelectorAll(input.dataset.filter + " tr")) {
    row.hidden = words !== "" && !row.textContent.toLowerCase().includes(words);
  }
}

function sortable(table) {
  table.querySelectorAll("th[data-sort]").forEach((th, col) => {
    th.addEventListener("click", () => {
      const up = th.dataset.dir !== "up";
      th.dataset.dir = up ? "up" : "down";
      const body = table.tBodies[0];
      const key = (tr) => tr.cells[col] ? tr.cells[col].dataset.value || "" : "";
      const rows = [...body.rows].sort((a, b) => th.dataset.sort === "num"
        ? Number(key(a)) - Number(key(b)) : key(a).localeCompare(key(b)));
      if (!up) rows.reverse();
      rows.forEach((tr) => body.appendChild(tr));
    });
  });
}

function chart(box) {
  const select = document.getElementById("series");
  const note = document.getElementById("chart-note");
  let span = "1h", plot = null, range = [0, 1];
  async function draw() {
    if (!select.value) await moreSeries();
    if (!select.value) { note.textContent = "No readings to chart yet."; return; }
    const [sensor, quantity] = select.value.split("|");
    const q = new URLSearchParams({sensor, quantity, span});
    const r = await fetch(box.dataset.series + "?" + q, {credentials: "same-origin"});
    if (!r.ok) return;
    const s = await r.json();
    const data = [s.x, s.min, s.mean, s.max];
    range = [s.since, s.until];
    box.dataset.points = String(s.x.length);
    note.textContent = s.x.length + " points (min, mean, max per bucket) over " + span;
    if (plot && plot.series[2].label === quantity) { plot.setData(data); return; }  // rescales x too
    if (plot) plot.destroy();
    const band = {stroke: "#9bb", width: 1, dash: [4, 4]};
    plot = new uPlot({
      width: Math.min(box.clientWidth || 320, 900), height: 260,
      series: [{}, {label: "min", ...band}, {label: quantity, stroke: "#06c", width: 2}, {label: "max", ...band}],
      scales: {x: {time: true, range: () => range}},
    }, data, box);
  }
  // A page opened before the device's first reading has no series to offer: take them
  // from the page as the server renders it now, so the chart starts without a reload.
  async function moreSeries() {
    const r = await fetch(location.href, {credentials: "same-origin"});
    if (!r.ok) return;
    const page = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = page.getElementById("series");
    if (fresh) select.replaceChildren(...Array.from(fresh.options, (o) => document.importNode(o, true)));
  }
  select.addEventListener("change", () => { if (plot) { plot.destroy(); plot = null; } draw(); });
  document.querySelectorAll("button.span").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("button.span").forEach((o) => o.classList.toggle("on", o === b));
    span = b.dataset.span; draw();
  }));
  draw();
  setInterval(draw, Number(box.dataset.every || 5) * 1000);
}

document.querySelectorAll("[data-poll]").forEach(poll);
document.querySelectorAll("table.sortable").forEach(sortable);
const filter = document.getElementById("filter");
if (filter) filter.addEventListener("input", applyFilter);
const box = document.getElementById("chart");
if (box) chart(box);
