"""The HTML of `nhiguard report` (streams/report.py): one page, nothing loaded from anywhere.

Every string from the decisions file goes through `html.escape` here, or, for the timeline, into a JSON data
block (`<`, `>` and `&` written as \\u escapes, so no `</script>` can end it) that the page's script reads
with JSON.parse and draws with textContent and SVG attributes, never as markup. The Content-Security-Policy
allows only that one script (by its hash) and inline styles: no request to any source, and no other script
runs even if something slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from nhiguard.streams.outcomes import COLUMNS

SEVERITY_CLASS = {"critical": "sev-critical", "high": "sev-high", "medium": "sev-medium", "low": "sev-low"}

CSS = """
:root { --allow: #9aa3ad; --deny: #d9480f; --revoke: #862e9c; --ink: #1f2933; --line: #d8dee4; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  margin: 0 24px 48px; background: #fff; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted { color: #616e7c; } code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace;
  font-size: 12px; overflow-wrap: anywhere; }
.figures span { display: inline-block; margin-right: 18px; }
.legend span { margin-right: 14px; } .legend svg { vertical-align: middle; }
.lane { display: grid; grid-template-columns: minmax(220px, 26%) 1fr; align-items: center;
  border-bottom: 1px solid var(--line); min-height: 26px; }
.lane .who { font: 12px ui-monospace, Menlo, monospace; overflow-wrap: anywhere; padding: 2px 8px 2px 0; }
.lane > svg, .axis > svg { width: 100%; display: block; overflow: visible; }
.axis { display: grid; grid-template-columns: minmax(220px, 26%) 1fr; font-size: 11px; color: #616e7c; }
.mark.allow { stroke: var(--allow); stroke-width: 1; } .mark.deny { fill: var(--deny); }
.mark.revoke { fill: var(--revoke); } .mark.revoke-cmd { fill: none; stroke: var(--revoke); stroke-width: 2; }
.baseline { stroke: var(--line); }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--line); }
th { background: #f5f7fa; font-weight: 600; } td.n { text-align: right; } td.t { white-space: nowrap; }
.sev-critical { background: #c92a2a; color: #fff; } .sev-high { color: #c92a2a; font-weight: 600; }
.sev-medium { color: #e67700; } .sev-low { color: #1971c2; }
.v-REVOKE { color: var(--revoke); font-weight: 600; } .v-DENY { color: var(--deny); font-weight: 600; }
.v-HELD { color: #e67700; font-weight: 600; }
details { margin: 4px 0; } summary { cursor: pointer; }
ul.ev { margin: 2px 0; padding-left: 18px; }
"""

# Drawn after load from the data block: one lane per identity, a tick per event, a dot per DENY, a diamond
# per REVOKE verdict and a ring per REVOKE command issued. Strings go in as textContent, never as markup.
SCRIPT = """
(function () {
  "use strict";
  // The SVG namespace of the legend's inline SVG: the page holds no URL of its own, not even this one.
  var NS = document.querySelector(".legend svg").namespaceURI, H = 26;
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var lanes = data.lanes, root = document.getElementById("lanes"), own = document.getElementById("own-scale");
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function when(t) { return new Date(t).toISOString().slice(0, 16).replace("T", " "); }
  function span(evs) {
    var lo = evs[0][0], hi = evs[evs.length - 1][0];
    return hi > lo ? [lo, hi] : [lo - 60000, hi + 60000];
  }
  var all = [];
  lanes.forEach(function (l) { all.push(l.events[0], l.events[l.events.length - 1]); });
  all.sort(function (a, b) { return a[0] - b[0]; });
  // x positions in percent of the lane (no viewBox: marks keep their shape at any width); a mark is a
  // nested SVG placed at its x, so its shape is drawn around 0.
  function pct(t, s) { return (0.8 + 98.4 * (t - s[0]) / (s[1] - s[0])).toFixed(3) + "%"; }
  function lane(l, scale) {
    var row = document.createElement("div"), who = document.createElement("div");
    row.className = "lane"; row.setAttribute("data-identity", l.identity);
    who.className = "who"; who.textContent = l.identity; who.title = l.identity;
    row.appendChild(who);
    var svg = el("svg", {height: H}, row);
    el("line", {x1: "0", x2: "100%", y1: H / 2, y2: H / 2, "class": "baseline"}, svg);
    var s = scale || span(l.events);
    l.events.forEach(function (e) {
      var at = el("svg", {x: pct(e[0], s), y: 0, overflow: "visible"}, svg), m;
      if (e[1] === 2) {
        m = el("path", {d: "M0 5L8 13L0 21L-8 13Z", "class": "mark revoke"}, at);
      } else if (e[1] === 1) {
        m = el("circle", {cx: 0, cy: 13, r: 5, "class": "mark deny"}, at);
      } else {
        m = el("line", {x1: 0, x2: 0, y1: 7, y2: 19, "class": "mark allow"}, at);
      }
      el("title", {}, m).textContent = e[3];
      for (var i = 0; i < e[2]; i++) {
        var ring = el("circle", {cx: 0, cy: 13, r: 11, "class": "mark revoke-cmd"}, at);
        el("title", {}, ring).textContent = "REVOKE command issued: " + e[3];
      }
    });
    return row;
  }
  function axis(scale) {
    var row = document.createElement("div"), label = document.createElement("div");
    row.className = "axis"; label.textContent = scale ? "UTC, one scale for all" : "UTC, each its own scale";
    row.appendChild(label);
    var svg = el("svg", {height: 16}, row);
    if (scale) {
      [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
        var t = el("text", {x: pct(scale[0] + f * (scale[1] - scale[0]), scale), y: 12, "font-size": 11,
          "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle"}, svg);
        t.textContent = when(scale[0] + f * (scale[1] - scale[0]));
      });
    }
    return row;
  }
  function draw() {
    root.textContent = "";
    if (!lanes.length) { root.textContent = "no decided events"; return; }
    var scale = own.checked ? null : span(all);
    root.appendChild(axis(scale));
    var quiet = [];
    lanes.forEach(function (l) {
      var flagged = l.events.some(function (e) { return e[1] > 0 || e[2] > 0; });
      if (flagged) { root.appendChild(lane(l, scale)); } else { quiet.push(l); }
    });
    if (quiet.length) {
      var d = document.createElement("details"), s = document.createElement("summary");
      s.textContent = quiet.length + " identities with only ALLOW";
      d.appendChild(s);
      quiet.forEach(function (l) { d.appendChild(lane(l, scale)); });
      root.appendChild(d);
    }
    root.setAttribute("data-drawn", String(lanes.length));
  }
  own.addEventListener("change", draw);
  draw();
})();
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _time(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"
    except (ValueError, OverflowError, OSError):  # a time no calendar holds (year 10000): shown, not fatal
        return str(ms)


def _cls(value: Any) -> str:
    """A class attribute for a verdict or command kind: quoted, and only a known name (else none)."""
    v = str(value)
    return f' class="v-{v}"' if v in ("ALLOW", "DENY", "REVOKE", "ALERT", "HELD", "deadletter") else ""


def _json_block(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _counts(d: dict[str, Any]) -> str:
    return ", ".join(f"{_e(k)} {_e(v)}" for k, v in d.items()) or "none"


def _header(o: dict[str, Any]) -> str:
    return (
        f"<h1>nhiguard backtest report</h1><p class=muted>{_e(o['source'])}: {o['records']} records from "
        f"{_e(', '.join(o['files']))}; bundle {_e(', '.join(o['revisions']) or '-')}</p>"
        f"<p class=figures><span>verdicts: {_counts(o['verdicts'])}</span>"
        f"<span>commands: {_counts(o['commands'])}</span>"
        f"<span>dead letters: {_counts(o['deadletters'])}</span></p>"
    )


LEGEND = (
    '<p class="legend muted">'
    '<span><svg width=12 height=16><line x1=6 x2=6 y1=2 y2=14 class="mark allow"/></svg> event</span>'
    '<span><svg width=12 height=16><circle cx=6 cy=8 r=5 class="mark deny"/></svg> DENY</span>'
    '<span><svg width=18 height=18><path d="M9 1L17 9L9 17L1 9Z" class="mark revoke"/></svg> REVOKE</span>'
    '<span><svg width=26 height=26><circle cx=13 cy=13 r=11 class="mark revoke-cmd"/></svg> REVOKE command '
    "issued</span> (hover a mark for its time, rule and reason)</p>"
)


def _evidence(ev: dict[str, list[str]]) -> str:
    items = [f"<li><b>{_e(k)}</b>: <span class=mono>{_e(', '.join(vs))}</span></li>" for k, vs in ev.items()]
    return f"<ul class=ev>{''.join(items)}</ul>" if items else ""


def _alert_row(a: dict[str, Any]) -> str:
    events = "".join(
        f"<li>{_e((x.get('event_time') or '')[:19].replace('T', ' '))} <span{_cls(x.get('verdict'))}>"
        f"{_e(x.get('verdict'))}</span> {_e(x.get('reason'))} <span class=muted>({_e(x.get('file'))}:"
        f"{_e(x.get('line'))})</span></li>"
        for x in a["events"]
    )
    more = (
        f"<li class=muted>… {a['count'] - len(a['events'])} more</li>"
        if a["count"] > len(a["events"])
        else ""
    )
    commands = f"{a['commands']} command(s): <span class=mono>{_e(' '.join(a['command_ids']))}</span>"
    return (
        f"<tr data-alert='{_e(a['alert_id'])}'><td class='{SEVERITY_CLASS.get(a['severity'].lower(), '')}'>"
        f"{_e(a['severity'])}</td><td{_cls(a['verdict'])}>{_e(a['verdict'])}</td>"
        f"<td class=mono>{_e(a['identity'])}</td><td><b>{_e(a['rule'])}</b><br>{_e(a['title'])}"
        f"<br><span class=muted>{_e(', '.join(a['attack']))}</span></td><td class=n>{a['count']}</td>"
        f"<td class=t>{_time(a['first_ms'])}<br>{_time(a['last_ms'])}</td><td>{_e(a['reason'])}"
        f"<details><summary>evidence, events, commands</summary>{_evidence(a['evidence'])}"
        f"<ul class=ev>{events}{more}</ul><p>{commands if a['commands'] else 'no command'}</p>"
        f"<p class='muted mono'>alert {_e(a['alert_id'])}</p></details></td></tr>"
    )


def _alerts(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "<section id=alerts><h2>Alerts</h2><p>none</p></section>"
    head = "".join(
        f"<th>{h}</th>"
        for h in ("severity", "verdict", "identity", "rule", "events", "first / last (UTC)", "latest reason")
    )
    rows = "".join(_alert_row(a) for a in alerts)
    return (
        f"<section id=alerts><h2>Alerts ({len(alerts)})</h2><p class=muted>Per identity and rule in "
        "event-time windows, with the worker's alert ids; evidence capped as on the alerts topic.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _diff(diff: dict[str, Any] | None) -> str:
    if diff is None:
        return ""
    verdicts = "".join(f"<li>{_e(k)}: {n}</li>" for k, n in diff["verdicts"].items()) or "<li>none</li>"
    commands = (
        "".join(f"<li>{_e(k)}: {_counts(v)}</li>" for k, v in diff["commands"].items()) or "<li>none</li>"
    )
    out = [
        f"<section id=diff><h2>Policy diff: bundle {_e(diff['revision'])} against baseline "
        f"{_e(diff['baseline_revision'])}</h2><p>{diff['records_changed']} records changed.</p>"
        f"<p>Verdicts (baseline → bundle):</p><ul>{verdicts}</ul><p>Commands:</p><ul>{commands}</ul>"
    ]
    if diff["command_changes"]:
        rows = "".join(
            f"<tr><td>{_e(c['change'])}</td><td{_cls(c['kind'])}>{_e(c['kind'])}</td>"
            f"<td class=mono>{_e(c['target'])}</td><td class=mono>{_e(c['identity'])}</td>"
            f"<td>{_e(', '.join(c['policies']))}</td><td>{_e(c['event_time'] or '-')}</td>"
            f"<td>{_e(c['baseline_event_time'] or '-')}</td></tr>"
            for c in diff["command_changes"]
        )
        head = "".join(
            f"<th>{h}</th>" for h in ("change", "kind", "target", "identity", "policy", "bundle", "baseline")
        )
        out.append(f"<table class=changes><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for what, rows in (("policy", diff["policies"]), ("identity", diff["identities"])):
        cols = [c for c in COLUMNS if any(r.get(c) for r in rows.values())]
        if not rows:
            continue
        head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols)
        body = "".join(
            f"<tr><td class=mono>{_e(k)}</td>"
            + "".join(f"<td class=n>{r.get(c, 0)}</td>" for c in cols)
            + "</tr>"
            for k, r in rows.items()
        )
        out.append(
            f"<h3>Per {what}</h3><table><thead><tr><th>{what}</th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    return "".join(out) + "</section>"


def _deadletters(dead: list[dict[str, Any]], total: int) -> str:
    if not total:
        return ""
    rows = "".join(
        f"<tr><td class=mono>{_e(x.get('file'))}:{_e(x.get('line'))}</td><td>{_e(x.get('reason'))}</td>"
        f"<td class=mono>{_e(x.get('detail', ''))}</td></tr>"
        for x in dead
    )
    first = f", the first {len(dead)}" if total > len(dead) else ""
    return (
        f"<section id=deadletters><h2>Dead letters ({total}{first})</h2><table><thead><tr><th>where</th>"
        f"<th>reason</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def page(
    overview: dict[str, Any],
    timeline: dict[str, Any],
    alerts: list[dict[str, Any]],
    diff: dict[str, Any] | None,
    dead: list[dict[str, Any]],
) -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'"
    )
    total_dead = sum(overview["deadletters"].values())
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>nhiguard report: {_e(overview['source'])}</title><style>{CSS}</style></head><body>"
        f"{_header(overview)}<section id=timeline><h2>Timeline per identity</h2>{LEGEND}"
        "<label><input type=checkbox id=own-scale> each identity on its own time scale</label>"
        "<div id=lanes><noscript>The timeline is drawn by the page's script.</noscript></div></section>"
        f"{_alerts(alerts)}{_diff(diff)}{_deadletters(dead, total_dead)}"
        f'<script type="application/json" id=report-data>{_json_block(timeline)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
