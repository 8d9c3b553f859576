// A bar chart drawn below each table marked `data-chart` (Chart.js), from the figures in that table:
// the table stays on the page as the source of truth and is what screen readers read; the chart is
// a picture of it (an image with a name, described as the table above), and without JavaScript the
// table alone is there.
//
// What a table declares (webui/templates/oversight/*, ledger/*):
//   data-chart="stacked" | "grouped"   how several series are drawn (one series: either)
//   data-chart-title="…"               the chart's accessible name
//   data-chart-label="…"               the bar's name when a row has no row header (a single row)
//   data-chart-format="pounds"         values are pounds (ticks and tooltips as £1,234)
//   <th data-series="#1d70b8">         each column charted, with its colour (its text names the series)
//   <td data-value="12">               each charted figure (a cell without it counts as 0)
// A bar whose cell holds a link opens that link when clicked (the figure's children); the same link is
// in the table for the keyboard and screen readers.

import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const PALETTE = ["#1d70b8", "#00703c", "#d4351c", "#f47738", "#4c2c92", "#28a197", "#505a5f"];
const TEXT = "#0b0c0c";

function text(node) {
  return (node ? node.textContent : "").replace(/\s+/g, " ").trim();
}

// A bar's name in lines of at most `width` characters (Chart.js draws an array as lines), so that
// a long name is not cut off on a narrow screen.
function wrap(label, width) {
  const lines = [];
  for (const word of label.split(" ")) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + word.length < width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines.length > 1 ? lines : label;
}

function money(value) {
  return `£${value.toLocaleString("en-GB", { maximumFractionDigits: 2 })}`;
}

// The table's series (columns) and bars (rows): {labels, datasets, links}.
function read(table) {
  const header = table.tHead ? table.tHead.rows[0] : null;
  if (!header) return null;
  const series = [];
  Array.from(header.cells).forEach((cell, index) => {
    if (cell.hasAttribute("data-series")) series.push({ index, name: text(cell), colour: cell.dataset.series });
  });
  const rows = Array.from(table.tBodies).flatMap((body) => Array.from(body.rows))
    .filter((row) => row.querySelector("td[data-value]"));
  if (!series.length || !rows.length) return null;
  const labels = rows.map((row) => text(row.querySelector("th[scope=row]")) || table.dataset.chartLabel || "");
  const links = series.map(() => []);
  const datasets = series.map((s, n) => ({
    label: s.name,
    backgroundColor: s.colour || PALETTE[n % PALETTE.length],
    data: rows.map((row, r) => {
      const cell = row.cells[s.index];
      const link = cell ? cell.querySelector("a[href]") : null;
      links[n][r] = link ? link.href : null;
      const value = cell ? Number(cell.dataset.value) : 0;
      return Number.isFinite(value) ? value : 0;
    }),
  }));
  return { labels, datasets, links };
}

function draw(table, index) {
  const found = read(table);
  if (!found) return;
  const stacked = table.dataset.chart === "stacked";
  const pounds = table.dataset.chartFormat === "pounds";
  const id = table.id || `chart-table-${index}`;
  table.id = id;

  const figure = document.createElement("figure");
  figure.className = "app-chart";
  const frame = document.createElement("div");
  frame.className = "app-chart__frame";
  const width = table.offsetWidth < 600 ? 14 : 30;
  found.labels = found.labels.map((label) => wrap(label, width));
  const lines = Math.max(1, ...found.labels.map((label) => (Array.isArray(label) ? label.length : 1)));
  const perBar = Math.max(stacked || found.datasets.length === 1 ? 34 : 16 * found.datasets.length + 14, 18 * lines + 8);
  frame.style.height = `${Math.max(140, found.labels.length * perBar + (found.datasets.length > 1 ? 90 : 50))}px`;
  const canvas = document.createElement("canvas");
  const caption = document.createElement("figcaption");
  caption.className = "govuk-body-s";
  caption.id = `${id}-chart-description`;
  const title = table.dataset.chartTitle || text(table.caption);
  caption.textContent = `${title}: a chart of the table “${text(table.caption)}” above, which holds the same figures.`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", title);
  canvas.setAttribute("aria-describedby", caption.id);
  canvas.textContent = caption.textContent; // shown only where a canvas cannot be
  frame.appendChild(canvas);
  figure.append(frame, caption);
  (table.closest(".app-table-scroll") || table).after(figure);

  Chart.defaults.font.family = getComputedStyle(table).fontFamily;
  Chart.defaults.font.size = 14;
  Chart.defaults.color = TEXT;
  const format = (value) => (pounds ? money(value) : value.toLocaleString("en-GB"));
  new Chart(canvas, {
    type: "bar",
    data: { labels: found.labels, datasets: found.datasets },
    options: {
      indexAxis: "y",
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { stacked, beginAtZero: true, ticks: { precision: 0, callback: format }, grid: { color: "#b1b4b6" } },
        y: { stacked, grid: { display: false } },
      },
      plugins: {
        legend: { display: found.datasets.length > 1, position: "top", align: "start",
          labels: { boxWidth: 16, color: TEXT } },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${format(item.parsed.x)}` } },
      },
      onHover: (event, elements) => {
        const link = elements.length && found.links[elements[0].datasetIndex][elements[0].index];
        event.native.target.style.cursor = link ? "pointer" : "default";
      },
      onClick: (_event, elements) => {
        const link = elements.length && found.links[elements[0].datasetIndex][elements[0].index];
        if (link) window.location.assign(link);
      },
    },
  });
}

document.querySelectorAll("table[data-chart]").forEach(draw);
