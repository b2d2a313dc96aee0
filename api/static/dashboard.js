// flopledger dashboard: reads /v1/stats, then refreshes it whenever the SSE feed
// (/v1/events/stream) announces new log records. Plain JS, no build step.
"use strict";

const PIPELINE = ["submitted", "claimed", "result_committed", "verified", "rejected",
                  "settled", "expired", "refunded"];
const FINAL_STATES = new Set(["settled", "refunded", "expired"]);
const REFRESH_DEBOUNCE_MS = 300;
const RECONNECT_MS = 2000;
const SHORT_ID = 10;

let refreshTimer = null;
let lastPosition = 0;

function el(id) { return document.getElementById(id); }

function short(text) { return text.length > SHORT_ID ? text.slice(0, SHORT_ID) + "…" : text; }

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function row(cells) {
  const tr = document.createElement("tr");
  cells.forEach((c) => tr.appendChild(c));
  return tr;
}

function header(names) {
  const tr = document.createElement("tr");
  names.forEach((n) => { const th = document.createElement("th"); th.textContent = n; tr.appendChild(th); });
  return tr;
}

function fmt(n) { return Number(n).toLocaleString("en-US"); }

function renderPipeline(byState) {
  const box = el("pipeline");
  box.replaceChildren();
  PIPELINE.forEach((state) => {
    const div = document.createElement("div");
    div.className = "stage" + (FINAL_STATES.has(state) ? " final" : "") +
      (state === "rejected" ? " failed" : "");
    div.id = "state-" + state;
    const count = document.createElement("b");
    count.textContent = fmt(byState[state] || 0);
    div.appendChild(count);
    div.appendChild(document.createTextNode(state.replace("_", " ")));
    box.appendChild(div);
  });
}

function renderNodes(nodes) {
  const box = el("nodes");
  box.replaceChildren();
  const regions = {};
  nodes.forEach((n) => { (regions[n.region] = regions[n.region] || []).push(n); });
  Object.keys(regions).sort().forEach((region) => {
    const div = document.createElement("div");
    div.className = "region";
    div.dataset.region = region;
    const title = document.createElement("h3");
    title.textContent = `${region} (${regions[region].length})`;
    const table = document.createElement("table");
    table.appendChild(header(
      ["node", "gpu", "state", "stake", "reputation", "trust", "jobs ok/bad"],
    ));
    regions[region].forEach((n) => {
      const trust = n.trust === null ? "–" : `${Math.round(n.trust * 100)}%`;
      const reputation = n.reputation_bps == null ? "–" : `${(n.reputation_bps / 100).toFixed(1)}%`;
      table.appendChild(row([
        cell(short(n.id)), cell(n.gpu_class), cell(n.state, "state-" + n.state),
        cell(fmt(n.stake), "num"), cell(reputation, "num"), cell(trust, "num"),
        cell(`${n.jobs_verified}/${n.jobs_rejected}`, "num"),
      ]));
    });
    div.append(title, table);
    box.appendChild(div);
  });
}

function renderPairs(id, pairs) {
  const table = el(id);
  table.replaceChildren();
  pairs.forEach(([name, value]) => table.appendChild(row([cell(name), cell(fmt(value), "num")])));
}

function renderThroughput(buckets, bucketS) {
  const svg = el("throughput");
  svg.replaceChildren();
  el("bucket-s").textContent = bucketS;
  const max = Math.max(1, ...buckets.map((b) => b.settled));
  const width = 300 / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    const h = (b.settled / max) * 76;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", String(i * width + 1));
    rect.setAttribute("y", String(80 - h));
    rect.setAttribute("width", String(Math.max(1, width - 2)));
    rect.setAttribute("height", String(h));
    svg.appendChild(rect);
  });
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", "2");
  label.setAttribute("y", "89");
  label.textContent = `max ${max} per bucket`;
  svg.appendChild(label);
}

function renderLog(log) {
  el("log-position").textContent = fmt(log.position);
  el("sealed-size").textContent = fmt(log.sealed_size);
  el("sealed-root").textContent = log.sealed_root ? short(log.sealed_root) : "–";
  const table = el("anchors");
  table.replaceChildren(header(["size", "root", "solana signature", "slot"]));
  log.anchors.forEach((a) => table.appendChild(row([
    cell(fmt(a.size), "num"), cell(short(a.root)), cell(short(a.chain_signature)),
    cell(fmt(a.slot), "num"),
  ])));
}

function renderEvents(events) {
  const table = el("events");
  table.replaceChildren(header(["position", "stream", "event", "subject"]));
  events.forEach((e) => table.appendChild(row([
    cell(fmt(e.position), "num"), cell(e.stream_type), cell(e.event_type), cell(short(e.stream_id)),
  ])));
}

function render(stats) {
  el("count-nodes").textContent = fmt(stats.nodes.length);
  el("count-validators").textContent = fmt(stats.validators.length);
  el("count-jobs").textContent = fmt(stats.jobs_total);
  el("count-settled").textContent = fmt(stats.jobs_by_state.settled || 0);
  el("ledger-deposited").textContent = fmt(stats.ledger.deposited);
  el("ledger-escrow").textContent = fmt(stats.ledger.escrow_held);
  renderPipeline(stats.jobs_by_state);
  renderNodes(stats.nodes);
  const v = stats.verification;
  renderPairs("verification", [
    ["verdicts passed", v.verdicts_passed], ["verdicts failed", v.verdicts_failed],
    ["jobs verified", v.jobs_verified], ["jobs rejected", v.jobs_rejected],
    ["attestations verified", v.attestations_verified],
    ["attestations rejected", v.attestations_rejected],
  ]);
  const l = stats.ledger;
  renderPairs("ledger", [
    ["deposited", l.deposited], ["withdrawn", l.withdrawn], ["held in escrow", l.escrow_held],
    ["paid to providers", l.paid_to_providers], ["paid to validators", l.paid_to_validators],
    ["paid to treasury", l.paid_to_treasury], ["refunded", l.refunded], ["slashed", l.slashed],
  ]);
  renderThroughput(stats.throughput, stats.throughput_bucket_s);
  renderLog(stats.log);
  renderEvents(stats.recent_events);
  lastPosition = stats.log.position;
  document.body.dataset.position = String(lastPosition);
}

async function refresh() {
  refreshTimer = null;
  const response = await fetch("/v1/stats", { cache: "no-store" });
  if (!response.ok) return;
  render(await response.json());
}

function scheduleRefresh() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_DEBOUNCE_MS);
}

function connect() {
  const source = new EventSource(`/v1/events/stream?from=${lastPosition + 1}`);
  source.onopen = () => {
    el("live-badge").textContent = "live";
    el("live-badge").className = "badge on";
    document.body.dataset.live = "1";
  };
  source.addEventListener("record", scheduleRefresh);
  source.onerror = () => {
    el("live-badge").textContent = "reconnecting…";
    el("live-badge").className = "badge off";
    document.body.dataset.live = "0";
    source.close();
    setTimeout(connect, RECONNECT_MS);
  };
}

refresh().finally(connect);
