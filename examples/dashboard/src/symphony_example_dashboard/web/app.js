// The demo dashboard. Every text comes from the host's results, so nothing is written as HTML:
// elements are built and filled with textContent.
"use strict";

let shown = null;

function el(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children || []) node.append(child);
  return node;
}

function table(id, headers, rows) {
  const target = document.getElementById(id);
  const head = el("tr", {}, headers.map((h) => el("th", { text: h })));
  target.replaceChildren(head, ...rows.map((cells) => el("tr", {}, cells)));
}

function cell(text, className) {
  return el("td", { text: text === null || text === undefined ? "-" : String(text), className: className || "" });
}

function minutes(value) {
  return value === null || value === undefined ? "-" : value.toFixed(1) + " min";
}

function percent(value) {
  return (value * 100).toFixed(1) + "%";
}

function renderTier(tier) {
  const section = document.getElementById("tier");
  section.hidden = false;
  section.replaceChildren(
    el("h2", { text: "Tier: " + tier.isolation }),
    el("p", { text: tier.summary }),
    el("p", { className: "muted", text: "Chosen because " + tier.why + "." })
  );
}

function renderExtensions(outcomes) {
  const running = outcomes.filter((o) => o.outcome === "running").length;
  document.getElementById("survived").textContent = outcomes.length
    ? "The host survived: " + running + " of " + outcomes.length + " examples running; the others failed alone, each with its reason."
    : "Starting the examples…";
  table(
    "extensions",
    ["extension", "kind", "outcome", "the host's reason, and what to do"],
    outcomes.map((o) => {
      const reason = el("td", {}, [document.createTextNode(o.message || "")]);
      if (o.hint) reason.append(el("div", { className: "hint", text: o.hint }));
      return [cell(o.id), cell(o.kind), cell(o.outcome, o.outcome), reason];
    })
  );
}

function renderConsent(decisions) {
  table(
    "consent",
    ["extension", "asks for", "its reason", "decision"],
    decisions.map((d) => [
      cell(d.extension),
      cell(d.permission),
      cell(d.reason),
      cell(d.granted ? "granted" : "refused: " + d.why, d.granted ? "granted" : "refused"),
    ])
  );
}

function renderPipeline(figures) {
  if (!figures || !figures.routes) return;
  document.getElementById("pipeline-summary").textContent =
    figures.flights_read.toLocaleString() + " flights read; " + figures.flights_clean.toLocaleString() +
    " flew; " + figures.flights_without_weather.toLocaleString() + " without a weather record; " +
    figures.routes + " routes. Built in " + figures.build_seconds.toFixed(2) + " s, run in " +
    figures.run_seconds.toFixed(2) + " s.";
  table(
    "routes",
    ["origin", "dest", "flights", "mean arr delay"],
    figures.worst_routes.map((r) => [cell(r.origin), cell(r.dest), cell(r.flights.toLocaleString(), "n"), cell(minutes(r.mean_arr_delay), "n")])
  );
  const top = Math.max(...figures.by_weather.map((r) => r.mean_dep_delay), 1);
  document.getElementById("weather").replaceChildren(
    ...figures.by_weather.map((r) => {
      const bar = el("div", { className: "bar" });
      bar.style.width = Math.max(2, (r.mean_dep_delay / top) * 260) + "px";
      return el("div", { className: "bar-row" }, [
        el("span", { className: "bar-label", text: r.condition }),
        bar,
        el("span", { text: minutes(r.mean_dep_delay) + " · " + percent(r.delayed_share) + " delayed 15+ min · " + r.flights.toLocaleString() + " flights" }),
      ]);
    })
  );
}

function digitCanvas(pixels) {
  const canvas = el("canvas", { width: 8, height: 8 });
  canvas.style.width = "48px";
  canvas.style.height = "48px";
  const context = canvas.getContext("2d");
  const image = context.createImageData(8, 8);
  pixels.forEach((value, i) => {
    const shade = 255 - value * 15;
    image.data.set([shade, shade, shade, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

function renderDigits(figures) {
  if (!figures || !figures.images) return;
  const progress = document.getElementById("digits-progress");
  progress.max = figures.images;
  progress.value = figures.read;
  document.getElementById("digits-summary").textContent =
    figures.read + " of " + figures.images + " held-out images read; " + figures.correct + " right" +
    (figures.accuracy === null ? "" : ": accuracy " + percent(figures.accuracy)) +
    " (scikit-learn measured " + percent(figures.build_accuracy) + " when the model was built). " +
    figures.estimator + " as ONNX, sha256 " + figures.model_sha256.slice(0, 12) + "…";
  table(
    "confusion",
    ["", ...Array.from({ length: 10 }, (_, d) => String(d))],
    figures.confusion.map((row, truth) => [
      el("th", { text: String(truth) }),
      ...row.map((count, guess) => cell(count || "", truth === guess ? "diagonal" : "")),
    ])
  );
  document.getElementById("misread").replaceChildren(
    ...figures.misread.map((item) =>
      el("div", { className: "digit" }, [
        digitCanvas(item.pixels),
        document.createTextNode(item.true + " → " + item.predicted + " (" + Math.round(item.confidence * 100) + "%)"),
      ])
    )
  );
}

function render(data) {
  renderTier(data.tier);
  renderExtensions(data.extensions || []);
  renderConsent(data.consent || []);
  renderPipeline(data.pipeline);
  renderDigits(data.digits);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const answer = await symphony.call("results", {});
    if (answer.available) {
      const text = JSON.stringify(answer.data);
      if (text !== shown) {
        shown = text;
        render(answer.data);
      }
      const done = answer.data.timings && answer.data.timings.total !== undefined;
      status.textContent = done ? "The demo has finished." : "The demo is running…";
    }
    status.classList.remove("error");
  } catch (error) {
    status.textContent = error.hint ? error.message + " — " + error.hint : error.message;
    status.classList.add("error");
  }
}

refresh();
setInterval(refresh, 1000);
