"""`nhiguard report`: the alerts it rebuilds from a backtest's decisions are the core's, everything from the
input is escaped, and a file it cannot read is one line, exit 2. (The page in a real browser:
tests/integration/test_report_browser.py.)"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.cli import main
from nhiguard.streams.reader import read_inputs
from nhiguard.streams.replayfile import write_replay
from nhiguard.streams.report import alerts_of, load, run_report
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, write_inventory

POLICIES = REPO_ROOT / "policies"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """The demo stream's decisions (its incidents and some ordinary work), against a baseline bundle with a
    higher burst threshold; and the stream and inventory."""
    tmp = tmp_path_factory.mktemp("report")
    stream, ids = tmp / "stream.ndjson", tmp / "identities.yaml"
    write_replay(list(generate(default_params(), ordinary=200)), stream)
    write_inventory(default_params(), ids)
    baseline = tmp / "baseline"
    shutil.copytree(POLICIES, baseline)
    data = baseline / "data.yaml"
    data.write_text(data.read_text().replace("{minutes: 10, threshold: 10}", "{minutes: 10, threshold: 30}"))
    out = tmp / "decisions.jsonl"
    argv = ["backtest", str(stream), "--identities", str(ids), "--decisions-out", str(out)]
    assert main([*argv, "--baseline-policies", str(baseline)]) == 0
    return out, stream, ids


def test_the_alerts_rebuilt_from_the_decisions_are_the_cores(decided):
    out, stream, ids = decided
    settings = load_settings(env={})
    core = DecisionCore(settings, load_bundle(POLICIES), Inventory.load(ids), body_time=True)
    run = decide_items(core, read_inputs([stream], settings.topics))
    rebuilt = {a["alert_id"]: a for a in alerts_of(load(out))}
    assert rebuilt.keys() == run.alerts.keys() and len(rebuilt) > 5
    for aid, alert in run.alerts.items():
        mine = rebuilt[aid]
        assert (mine["identity"], mine["rule"], mine["count"], mine["verdict"]) == (
            alert.identity,
            alert.rule,
            alert.count,
            alert.verdict,
        )
        assert (mine["first_ms"], mine["last_ms"]) == (alert.first_seen_ms, alert.last_seen_ms)
        assert mine["evidence"] == alert.evidence
        assert (tuple(mine["command_ids"]), mine["commands"]) == (alert.command_ids, alert.command_ids_total)
        assert (mine["severity"], mine["title"], tuple(mine["attack"])) == (
            alert.severity,
            alert.title,
            alert.attack,
        )


def _hostile(decided, tmp_path) -> tuple[str, str]:
    """The decisions with one identity renamed to markup, and markup in its reasons and evidence."""
    out, _, _ = decided
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    victim = next(x["identity"] for x in lines if any(c["kind"] == "REVOKE" for c in x["commands"]))
    for x in lines:
        if x["identity"] == victim:
            x["identity"] = HOSTILE
            for f in x["findings"]:
                f["reason"] = "</script>" + HOSTILE
                f["evidence"]["tags"] = [HOSTILE]
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = tmp_path / "report.html"
    assert main(["report", str(path), "-o", str(page)]) == 0
    return page.read_text(), victim


def test_identities_reasons_and_evidence_are_escaped_and_the_page_loads_nothing(decided, tmp_path):
    html, _ = _hostile(decided, tmp_path)
    # Two scripts, the data block and the page's own; no markup from the input, in the page or the data.
    assert len(re.findall(r"<script", html)) == 2 and html.count("</script>") == 2
    markup, data = re.fullmatch(
        r'(.*)<script type="application/json" id=report-data>(.*?)</script>.*', html, re.S
    ).groups()
    assert "<img" not in markup and 'onerror="' not in markup
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in markup  # shown, as text
    assert "<" not in data and ">" not in data and HOSTILE in json.loads(data)["lanes"][0]["identity"]
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert (
        csp and "default-src 'none'" in csp.group(1) and "'unsafe-inline'" not in csp.group(1).split(";")[1]
    )
    # Nothing the page itself names is fetched: no tag with a src or href, no url() or @import.
    assert not re.search(r"<[^>]*\b(src|href)\s*=|url\(|@import", markup)


def test_the_diff_is_on_the_page_when_the_backtest_had_a_baseline(decided, tmp_path):
    out, stream, ids = decided
    page = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(page)]) == 0
    html = page.read_text()
    assert "id=diff" in html and "earlier" in html and "cms.public_exposure" in html
    plain = tmp_path / "plain.jsonl"
    assert main(["backtest", str(stream), "--identities", str(ids), "--decisions-out", str(plain)]) == 0
    assert main(["report", str(plain), "-o", str(page)]) == 0
    assert "id=diff" not in page.read_text() and "id=alerts" in page.read_text()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json\n", "not JSON"),
        ('{"a": 1}\n', "not a line of `nhiguard backtest --decisions-out`"),
        ('{"verdict": "ALLOW", "commands": [], "findings": []}\n', "not a line"),  # no identity
    ],
)
def test_a_file_that_is_no_decisions_file_is_one_line_exit_2(tmp_path, capsys, content, says):
    path = tmp_path / "d.jsonl"
    path.write_text('{"verdict": "deadletter", "commands": [], "findings": [], "reason": "x"}\n' + content)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nhiguard report: {path}:2: ") and says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
    assert main(["report", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r.html")]) == 2
    assert "cannot read" in capsys.readouterr().err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_line_is_a_page_or_one_line_exit_2_never_a_traceback(decided, tmp_path, data):
    out, _, _ = decided
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    flagged = [i for i, x in enumerate(lines) if x["commands"] or "baseline_verdict" in x]
    line = lines[data.draw(st.sampled_from(flagged))]
    # Down a path of the line's own keys and indexes, replace what is there by any JSON value.
    holder: Any = line
    key = data.draw(st.sampled_from(sorted(line)))
    while isinstance(holder[key], (dict, list)) and holder[key] and data.draw(st.booleans()):
        holder = holder[key]
        key = data.draw(st.sampled_from(sorted(holder) if isinstance(holder, dict) else range(len(holder))))
    holder[key] = data.draw(JSON_VALUES)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code = run_report(path, tmp_path / "r.html")
    assert code in (0, 2)


def test_a_verdict_or_time_no_report_knows_is_text_not_an_attribute_or_a_traceback(decided, tmp_path):
    out, _, _ = decided
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    i = next(i for i, x in enumerate(lines) if x["commands"] and x.get("alert_ids"))
    lines[i]["verdict"] = "DENY x style=position:fixed;inset:0"  # an attribute, were it written unquoted
    lines[i]["event_time"] = "9999-12-31T23:59:59-12:00"  # past year 9999 in UTC
    hostile = tmp_path / "d.jsonl"
    hostile.write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = tmp_path / "r.html"
    assert main(["report", str(hostile), "-o", str(page)]) == 0
    html = page.read_text()
    assert "style=position" not in html.replace("DENY x style=position:fixed;inset:0", "")
    assert "class=v-" not in html and "DENY x style=position:fixed;inset:0" in html  # shown as text
