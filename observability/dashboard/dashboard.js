// The built-in lag page: polls /lag (the current verdict) and /lag/history (series), draws SVG.
// Hand-written on purpose: no library, no CDN, so it works on a closed network.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 600, HEIGHT = 200, LEFT = 48, RIGHT = 8, TOP = 8, BOTTOM = 22;
  var PALETTE = ["#1c7ed6", "#2f9e44", "#f08c00", "#ae3ec9", "#e03131", "#0c8599", "#5c940d", "#d6336c",
                 "#3b5bdb", "#e8590c", "#495057", "#66a80f"];
  // Served next to /dashboard; strip the page's own path so a path prefix (proxy) keeps working.
  var BASE = window.location.pathname.replace(/\/dashboard.*$/, "");
  var pollMs = 2000;

  function byId(id) { return document.getElementById(id); }

  function formatSeconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return s.toFixed(2) + " s";
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function formatCount(n) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString("en-US");
  }

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // series: [{name, values}] aligned with times (unix seconds); null values leave gaps.
  function drawChart(svg, times, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var legend = document.querySelector('[data-legend-for="' + svg.id + '"]');
    if (legend) legend.innerHTML = "";
    var all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); }); });
    if (times.length === 0 || all.length === 0) {
      svg.appendChild(el("text", {"class": "empty", x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle"}, "waiting for samples…"));
      svg.setAttribute("data-points", "0");
      return;
    }
    var t0 = times[0], t1 = times[times.length - 1];
    var span = Math.max(t1 - t0, 1);
    var top = Math.max.apply(null, all);
    top = top > 0 ? top * 1.1 : 1;
    function x(t) { return LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT); }
    function y(v) { return TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM); }

    svg.appendChild(el("line", {"class": "axis", x1: LEFT, y1: HEIGHT - BOTTOM, x2: WIDTH - RIGHT, y2: HEIGHT - BOTTOM}));
    svg.appendChild(el("line", {"class": "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: HEIGHT - BOTTOM}));
    [0, 0.5, 1].forEach(function (f) {
      var v = top / 1.1 * f;
      svg.appendChild(el("text", {"class": "tick", x: LEFT - 4, y: y(v) + 3, "text-anchor": "end"},
                         v >= 100 ? Math.round(v).toString() : v.toFixed(1)));
    });
    svg.appendChild(el("text", {"class": "tick", x: LEFT, y: HEIGHT - 6}, "-" + Math.round(span) + " s"));
    svg.appendChild(el("text", {"class": "tick", x: WIDTH - RIGHT, y: HEIGHT - 6, "text-anchor": "end"}, "now"));

    var drawn = 0;
    series.forEach(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      var d = "", pen = false, points = 0;
      s.values.forEach(function (v, j) {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? " L " : " M ") + x(times[j]).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
        points += 1;
      });
      if (points === 1) d += " h 2";  // a lone point still shows
      svg.appendChild(el("path", {"class": "series", d: d.trim(), stroke: colour,
                                  "data-series": s.name, "data-points": points}));
      drawn += points;
      if (legend) {
        var item = document.createElement("span");
        var swatch = document.createElement("i");
        swatch.style.background = colour;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(s.name));
        legend.appendChild(item);
      }
    });
    svg.setAttribute("data-points", String(drawn));
  }

  function renderVerdict(lag) {
    byId("group-name").textContent = lag.group;
    var badge = byId("group-status");
    badge.textContent = lag.status;
    badge.setAttribute("data-status", lag.status);
    byId("group-reason").textContent = lag.reason;
    byId("members").textContent = lag.members;
    byId("offset-lag").textContent = formatCount(lag.offset_lag);
    byId("time-lag").textContent = formatSeconds(lag.time_lag_s);
    byId("dead-letters").textContent = formatCount(lag.dead_letter_records);
    byId("updated").textContent = new Date(lag.evaluated_at * 1000).toLocaleTimeString();

    var rows = byId("partitions").querySelector("tbody");
    rows.innerHTML = "";
    lag.partitions.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-partition", p.topic + ":" + p.partition);
      [p.table || "", p.topic, p.partition].forEach(function (v) {
        var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      var status = document.createElement("td");
      var chip = document.createElement("span");
      chip.className = "status"; chip.textContent = p.status; chip.setAttribute("data-status", p.status);
      status.appendChild(chip); tr.appendChild(status);
      [formatCount(p.offset_lag), formatSeconds(p.time_lag_s), formatCount(p.committed_offset),
       formatCount(p.log_end_offset)].forEach(function (v) {
        var td = document.createElement("td"); td.className = "num"; td.textContent = v; tr.appendChild(td);
      });
      var why = document.createElement("td"); why.textContent = p.reason; tr.appendChild(why);
      rows.appendChild(tr);
    });
  }

  function renderTables(lag, history) {
    var cards = byId("tables");
    cards.innerHTML = "";
    var rates = {};
    history.tables.forEach(function (t) {
      var known = t.apply_rate.filter(function (v) { return v !== null; });
      rates[t.topic] = known.length ? known[known.length - 1] : null;
    });
    lag.tables.forEach(function (t) {
      var card = document.createElement("div");
      card.className = "card";
      card.setAttribute("data-status", t.status);
      card.setAttribute("data-table", t.table);
      card.innerHTML = '<h3><span class="name"></span><span class="status"></span></h3><dl>' +
        "<dt>offset lag</dt><dd data-field=\"offset_lag\"></dd><dt>time lag</dt><dd data-field=\"time_lag\"></dd>" +
        "<dt>apply rate</dt><dd data-field=\"apply_rate\"></dd><dt>topic</dt><dd></dd></dl>";
      card.querySelector(".name").textContent = t.table;
      var chip = card.querySelector(".status");
      chip.textContent = t.status; chip.setAttribute("data-status", t.status);
      card.querySelector('[data-field="offset_lag"]').textContent = formatCount(t.offset_lag);
      card.querySelector('[data-field="time_lag"]').textContent = formatSeconds(t.time_lag_s);
      var rate = rates[t.topic];
      card.querySelector('[data-field="apply_rate"]').textContent = rate === null || rate === undefined ? "–" : rate.toFixed(1) + " /s";
      card.querySelector("dd:last-child").textContent = t.topic;
      cards.appendChild(card);
    });
  }

  function renderHistory(history) {
    var times = history.times;
    function tables(field) { return history.tables.map(function (t) { return {name: t.table, values: t[field]}; }); }
    function partitions(field) {
      return history.partitions.map(function (p) { return {name: (p.table || p.topic) + "/" + p.partition, values: p[field]}; });
    }
    drawChart(byId("chart-table-offset-lag"), times, tables("offset_lag"));
    drawChart(byId("chart-table-time-lag"), times, tables("time_lag_s"));
    drawChart(byId("chart-apply-rate"), times, tables("apply_rate"));
    drawChart(byId("chart-dead-letters"), times, [{name: "dead-letter topic", values: history.dead_letter_records}]);
    drawChart(byId("chart-partition-offset-lag"), times, partitions("offset_lag"));
    drawChart(byId("chart-partition-time-lag"), times, partitions("time_lag_s"));
  }

  function getJson(path) {
    return fetch(BASE + path, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(path + " answered " + r.status);
      return r.json();
    });
  }

  function refresh() {
    Promise.all([getJson("/lag"), getJson("/lag/history")]).then(function (both) {
      var lag = both[0], history = both[1];
      if (history.sample_interval_s) pollMs = Math.max(1000, Math.min(history.sample_interval_s * 1000, 5000));
      renderVerdict(lag);
      renderTables(lag, history);
      renderHistory(history);
      byId("error").hidden = true;
      document.body.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function (e) {
      byId("error").hidden = false;
      byId("error").textContent = "cannot refresh: " + e.message;
    }).then(function () {
      window.setTimeout(refresh, pollMs);
    });
  }

  refresh();
})();
