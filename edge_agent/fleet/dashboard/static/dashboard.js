// The dashboard page: follows /api/events (server-sent events, one "fleet" document per refresh), keeps each
// agent's rounds, and draws the graph, tables and uPlot charts. When the stream breaks, the last state stays up.
"use strict";

(function () {
  const PALETTE = ["#3b6fd8", "#d8553b", "#2e9e5b", "#9b4fd1", "#d8a23b", "#1fa3b8", "#c23b8f", "#6b7a1f",
                   "#5a5a5a", "#e07b00", "#0d6e6e", "#8c2d2d"];
  const PHASES = ["average", "jacobian", "transfer", "evolve", "score", "total"];
  const rounds = new Map(); // agent id -> Map(round -> point)
  const charts = new Map(); // element id -> {plot, key}
  let lostSince = null;

  const $ = (id) => document.getElementById(id);
  const clock = (iso) => (iso ? iso.slice(11, 19) + "Z" : "-");
  const mb = (bytes) => (bytes === null || bytes === undefined ? "-"
                         : bytes >= 1e9 ? (bytes / 1e9).toFixed(2) + " GB" : (bytes / 1e6).toFixed(3) + " MB");
  const mbit = (bits) => (bits === null || bits === undefined ? "-" : (bits / 1e6).toFixed(2) + " Mbit/s");
  const fixed = (value, digits) => (value === null || value === undefined ? "-" : value.toFixed(digits));
  const colour = (i) => PALETTE[i % PALETTE.length];

  function order(a, b) {
    const split = (id) => { const m = /^(.*)-(\d+)$/.exec(id); return m ? [m[1], +m[2]] : [id, -1]; };
    const [sa, na] = split(a), [sb, nb] = split(b);
    return sa < sb ? -1 : sa > sb ? 1 : na - nb;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.floor(seconds);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function setFeed(state, text) {
    const feed = $("feed");
    feed.className = "feed " + state;
    feed.textContent = text;
    document.body.classList.toggle("lost", state === "lost");
  }

  function merge(history) {
    for (const [agent, points] of Object.entries(history)) {
      if (!rounds.has(agent)) rounds.set(agent, new Map());
      const held = rounds.get(agent);
      if (points.length && held.size && points[points.length - 1].round < Math.max(...held.keys())) held.clear();
      for (const point of points) held.set(point.round, point);
    }
  }

  function cell(row, text, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (title) td.title = title;
    row.appendChild(td);
    return td;
  }

  function renderTotals(doc) {
    const t = doc.totals;
    $("run").textContent = doc.run || "any";
    $("discovery").textContent = doc.discovery === "peers" ? "--peers" : "mDNS";
    $("updated").textContent = clock(doc.time);
    $("round").textContent = t.next_round === null ? "-" : String(t.next_round);
    $("agents-count").textContent = t.agents + " of " + t.members;
    $("gone-count").textContent = String(t.gone);
    $("mean-accuracy").textContent = fixed(t.mean_accuracy, 3);
    $("wire-sent").textContent = mb(t.wire_sent_bytes);
    $("uptime").textContent = duration(t.uptime_s);
  }

  function renderLinks(doc) {
    const body = $("links").tBodies[0];
    body.replaceChildren();
    for (const edge of doc.graph.edges) {
      const row = body.insertRow();
      row.className = edge.state === "ok" ? "link" : "link missing";
      row.dataset.a = edge.a;
      row.dataset.b = edge.b;
      row.dataset.lastRoundBytes = String(edge.last_round_bytes);
      cell(row, edge.a + " \u2194 " + edge.b);
      cell(row, edge.state === "ok" ? "ok" : "missing: " + (edge.reason || "?"));
      cell(row, mb(edge.round_bytes));
      cell(row, mb(edge.last_round_bytes));
      cell(row, mbit(edge.last_round_bits_per_s));
      cell(row, mb(edge.total_bytes));
    }
    if (!doc.graph.edges.length) cell(body.insertRow(), "no links yet");
  }

  function renderAgents(doc) {
    const body = $("agents").tBodies[0];
    body.replaceChildren();
    const gone = new Map(doc.gone.map((g) => [g.id || g.address, g]));
    const rows = doc.agents.map((a) => [a, null]);
    for (const [id, lost] of gone) rows.push([doc.last_answers[id] || { id: id, address: lost.address }, lost]);
    rows.sort((x, y) => order(x[0].id, y[0].id));
    for (const [a, lost] of rows) {
      const row = body.insertRow();
      row.className = lost ? "agent gone" : "agent";
      row.dataset.agent = a.id;
      cell(row, a.id);
      if (lost) cell(row, "gone since " + clock(lost.since), lost.reason);
      else cell(row, a.state + (a.phase ? ", " + a.phase : ""));
      cell(row, a.next_round === undefined ? "-" : String(a.next_round));
      cell(row, fixed(a.last_accuracy, 4));
      cell(row, a.last_round_seconds ? a.last_round_seconds.total.toFixed(2) : "-");
      cell(row, a.peak_rss_mb === undefined ? "-" : a.peak_rss_mb.toFixed(1) + " MiB");
      cell(row, a.security === "mtls" ? "mutual TLS" : a.security === "insecure" ? "plaintext" : "-");
      cell(row, a.address || "-");
    }
  }

  function svg(tag, attributes, parent) {
    const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    if (parent) parent.appendChild(element);
    return element;
  }

  function renderTopology(doc) {
    const root = $("topology");
    root.replaceChildren();
    const nodes = doc.graph.nodes;
    const cx = 280, cy = 190, radius = nodes.length > 1 ? 140 : 0;
    const where = new Map(nodes.map((n, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, nodes.length);
      return [n.id, [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)]];
    }));
    const heaviest = Math.max(1, ...doc.graph.edges.map((e) => e.last_round_bytes));
    for (const edge of doc.graph.edges) {
      if (!where.has(edge.a) || !where.has(edge.b)) continue;
      const [x1, y1] = where.get(edge.a), [x2, y2] = where.get(edge.b);
      svg("line", { x1: x1, y1: y1, x2: x2, y2: y2, "class": edge.state === "ok" ? "edge" : "edge missing",
                    "stroke-width": 1.5 + 6 * (edge.last_round_bytes / heaviest) }, root);
      // the label sits beside its line's middle, pushed away from the centre so labels of a ring do not meet
      const [mx, my] = [(x1 + x2) / 2, (y1 + y2) / 2];
      const away = Math.hypot(mx - cx, my - cy) || 1;
      const label = svg("text", { x: mx + 18 * (mx - cx) / away, y: my + 18 * (my - cy) / away + 4,
                                  "text-anchor": "middle", "class": "edge-label" }, root);
      label.textContent = edge.state === "ok" ? mb(edge.last_round_bytes) + " \u00b7 " + mbit(edge.last_round_bits_per_s)
                                              : "missing";
    }
    for (const node of nodes) {
      const [x, y] = where.get(node.id);
      const group = svg("g", { "class": "node " + node.state, "data-agent": node.id }, root);
      svg("circle", { cx: x, cy: y, r: 16 }, group);
      const name = svg("text", { x: x, y: y + 32, "text-anchor": "middle" }, group);
      name.textContent = node.id;
      const detail = svg("text", { x: x, y: y + 45, "text-anchor": "middle", "class": "detail" }, group);
      detail.textContent = node.state === "gone" ? "gone since " + clock(node.since)
                         : node.state === "unseen" ? "not heard" : "";
    }
  }

  // Chart data: x = the union of rounds, one series per key, null where a key has no value for a round.
  function series(keys, valueOf) {
    const xs = new Set();
    for (const agent of rounds.keys()) for (const r of rounds.get(agent).keys()) xs.add(r);
    const x = [...xs].sort((a, b) => a - b);
    return [x, ...keys.map((key) => x.map((r) => { const v = valueOf(key, r); return v === undefined ? null : v; }))];
  }

  function draw(elementId, keys, data, yLabel) {
    const element = $(elementId);
    const width = Math.max(280, element.clientWidth || 500);
    const key = keys.join("|");
    let chart = charts.get(elementId);
    if (!chart || chart.key !== key) {
      if (chart) chart.plot.destroy();
      const opts = {
        width: width, height: 220, scales: { x: { time: false } }, legend: { live: false },
        series: [{ label: "round" }, ...keys.map((k, i) => ({ label: k, stroke: colour(i), width: 2,
                                                               spanGaps: true, points: { size: 4 } }))],
        axes: [{ label: "round", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { label: yLabel, size: 60 }],
      };
      chart = { plot: new uPlot(opts, data, element), key: key };
      charts.set(elementId, chart);
    } else {
      chart.plot.setData(data);
      if (Math.abs(chart.plot.width - width) > 4) chart.plot.setSize({ width: width, height: 220 });
    }
  }

  function point(agent, r) {
    const held = rounds.get(agent);
    return held ? held.get(r) : undefined;
  }

  function renderCharts() {
    const agents = [...rounds.keys()].sort(order);
    draw("chart-accuracy", agents, series(agents, (a, r) => { const p = point(a, r); return p && p.accuracy; }),
         "test accuracy");
    draw("chart-rss", agents, series(agents, (a, r) => { const p = point(a, r); return p && p.rss_mb; }), "MiB");
    draw("chart-seconds", agents, series(agents, (a, r) => { const p = point(a, r); return p && p.seconds.total; }),
         "seconds");
    // A link's MB per round as its lower id counts it (the other end's record when that one has none).
    const pairs = new Set();
    for (const agent of agents) for (const p of rounds.get(agent).values()) {
      for (const peer of Object.keys(p.links_mb)) pairs.add([agent, peer].sort(order).join(" \u2194 "));
    }
    const links = [...pairs].sort();
    draw("chart-links", links, series(links, (pair, r) => {
      const [a, b] = pair.split(" \u2194 ");
      const mine = point(a, r), theirs = point(b, r);
      if (mine && mine.links_mb[b] !== undefined) return mine.links_mb[b];
      return theirs ? theirs.links_mb[a] : undefined;
    }), "MB");
    const holder = $("phase-charts");
    for (const agent of agents) {
      const id = "phases-" + agent.replace(/[^A-Za-z0-9_-]/g, "_");
      if (!$(id)) {
        const box = document.createElement("div");
        const title = document.createElement("h3");
        title.textContent = agent;
        const chart = document.createElement("div");
        chart.id = id;
        chart.className = "chart";
        box.append(title, chart);
        holder.appendChild(box);
      }
      draw(id, PHASES, series(PHASES, (phase, r) => { const p = point(agent, r); return p && p.seconds[phase]; }),
           "seconds");
    }
  }

  function render(doc) {
    renderTotals(doc);
    renderTopology(doc);
    renderLinks(doc);
    renderAgents(doc);
    renderCharts();
  }

  function follow() {
    const events = new EventSource("/api/events");
    events.addEventListener("fleet", (event) => {
      const doc = JSON.parse(event.data);
      merge(doc.history);
      render(doc);
      lostSince = null;
      setFeed("live", "live, every " + doc.interval_s + " s");
    });
    events.onerror = () => {  // the browser reconnects by itself; until then the last state stays up
      if (lostSince === null) lostSince = new Date().toISOString();
      setFeed("lost", "dashboard unreachable since " + clock(lostSince) + ": showing the last state");
    };
  }

  window.addEventListener("DOMContentLoaded", follow);
})();
