"""What the SOC reads, through a real worker on a real broker: soc.alerts keyed by alert id, a window's alert
sent again as it grows, and the same alerts after a SIGKILL and restart as the decision core gives in
process; every alert also an OCSF Detection Finding on soc.findings.ocsf that validates against the OCSF
schema; and `nhiguard alerts tail` showing them, piped and on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections import defaultdict

import jsonschema
import pytest
from confluent_kafka import Consumer

from nhiguard import ocsf
from nhiguard.avro import AvroCodec, alert_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401 (a fixture)
from tools import REPO_ROOT
from tools.demo import produce_records, worker_env
from tools.scenarios import default_params, generate, inventory

pytestmark = pytest.mark.integration
BURST = "cms.public_exposure.restricted_content_public"


def read_all(settings, topic, timeout=20.0):
    """Every record of `topic` from the start, as (key, value), until nothing new comes for a while."""
    c = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"soc-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out, quiet = [], time.monotonic() + timeout
    try:
        while time.monotonic() < quiet:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.key().decode(), m.value()))
                quiet = time.monotonic() + 5
    finally:
        c.close()
    return out


def _offline(settings, records):
    """The alerts the decision core gives in process for the same records at the same coordinates (one
    partition per topic: each identity's events reach the worker in the order produced)."""
    params = default_params()
    core = DecisionCore(settings, load_bundle(settings.policies_dir), Inventory.load_dict(inventory(params)))
    topics = {"audit.cms": settings.topics.cms, "audit.ci": settings.topics.ci}
    topics |= {"audit.registry": settings.topics.registry, "audit.runtime": settings.topics.runtime}
    offsets: dict[str, int] = defaultdict(int)
    raws = []
    for r in records:
        topic = topics[r.topic]
        raws.append(RawRecord(topic, 0, offsets[topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[topic] += 1
    final = {}
    for i in range(0, len(raws), 500):
        for a in core.process(raws[i : i + 500]).alerts:
            final[a.alert_id] = a
    return final


@pytest.mark.parametrize("pipeline", [1], indirect=True)
def test_after_sigkill_and_restart_the_soc_gets_the_alerts_and_findings_of_a_run_without_a_kill(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    records = generate(default_params(), ordinary=3000)
    reference = _offline(settings, records)
    assert any(a.rule == BURST and a.count > 20 for a in reference.values())
    produce_records(settings.bootstrap, records, settings.topics)
    first = start(NHIGUARD_BATCH_MAX=20, NHIGUARD_SESSION_TIMEOUT_S=8)
    # Killed inside the exposure burst: its window's alert has been sent, and the window goes on growing.
    partial = collect(
        settings,
        len(records),
        timeout=180,
        stop_when=lambda o: any(a["rule"] == BURST and a["count"] >= 5 for a in o["alerts"]),
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert len(partial["seen"]) < len(records), "kill must land mid-stream"
    start(NHIGUARD_BATCH_MAX=20, NHIGUARD_SESSION_TIMEOUT_S=8)
    out = collect(settings, len(records), timeout=300)
    assert len(out["seen"]) == len(records)

    codec = AvroCodec(settings.schemas_dir)
    versions = defaultdict(list)
    deadline = time.monotonic() + 60
    while True:  # alerts may trail their decisions: read until the last version of each is there
        alerts = read_all(settings, settings.topics.alerts)
        latest = {}
        for key, value in alerts:
            a = codec.decode(value)
            assert key == a["alert_id"], "the alerts topic is keyed by alert id"
            latest[key] = a
        if {k: a["count"] for k, a in latest.items()} == {k: a.count for k, a in reference.items()}:
            break
        assert time.monotonic() < deadline, "the worker's alerts never matched the run without a kill"
    for key, value in alerts:
        versions[key].append(codec.decode(value)["count"])
    # At least once: the batches after the last checkpoint are decided again, so a version the killed worker
    # sent may be followed by an earlier count once more; the last version is the whole window, and the
    # versions before it only ever count fewer events (README, For the SOC).
    assert all(v[-1] == max(v) for v in versions.values())
    assert any(len(set(v)) > 1 for v in versions.values()), "windows that grew were sent again"
    spanned = {a["alert_id"] for a in partial["alerts"]} & {k for k, v in versions.items() if v[-1] > min(v)}
    assert spanned, "some window was open across the kill"
    for key, a in reference.items():
        want = codec.decode(codec.encode("Alert", alert_record(a)))
        assert latest[key] == want, key

    validator = jsonschema.Draft202012Validator(
        json.loads(
            (
                REPO_ROOT / "schemas" / "ocsf" / f"detection_finding-{ocsf.OCSF_VERSION}.schema.json"
            ).read_text()
        )
    )
    findings = {}
    for key, value in read_all(settings, settings.topics.ocsf):
        finding = json.loads(value)
        assert not list(validator.iter_errors(finding)) and finding["finding_info"]["uid"] == key
        findings[key] = finding
    assert findings == {k: ocsf.detection_finding(a) for k, a in reference.items()}

    # nhiguard alerts tail, as the SOC runs it: piped, what the topic holds now (the latest version of each
    # alert that passes the filters, one line each); on a terminal, the live table, coloured, until Ctrl-C.
    env = worker_env(settings) | {"COLUMNS": "220", "TERM": "xterm-256color"}
    tail = [sys.executable, "-m", "nhiguard.streams.cli", "alerts", "tail"]
    piped = subprocess.run(
        [*tail, "--until-end", "--rule", "cms.public_exposure.*", "--severity", "high"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr.decode()
    text = piped.stdout.decode()
    want = {k for k, a in reference.items() if a.rule.startswith("cms.public_exposure.")}
    assert want and {k for k in reference if k in text} == want
    assert len(text.splitlines()) == len(want) and "\x1b[" not in text
    every = f"{len(reference)} alerts".encode()  # the caption, once it has read them all
    screen = _on_a_terminal([*tail, "--from-start"], env, until=lambda out: every in out)
    assert b"\x1b[" in screen and b"REVOKE" in screen and b"critical" in screen


def _on_a_terminal(cmd, env, until, timeout=90.0):
    """Run `cmd` on a pseudo-terminal until its screen shows `until`, then Ctrl-C: it must exit 0."""
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    # As a terminal's foreground job has it: Ctrl-C's default disposition. A harness started in the
    # background by a shell without job control runs with SIGINT ignored, which the child would inherit.
    p = subprocess.Popen(
        cmd,
        env=env,
        stdin=sub,
        stdout=sub,
        stderr=sub,
        close_fds=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(sub)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while not until(out) and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    out += os.read(main, 65536)
                except OSError:  # the process is gone
                    break
        assert until(out), out[-2000:]
        p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:  # read on: a full terminal blocks its writer
            if select.select([main], [], [], 0.2)[0]:
                try:
                    out += os.read(main, 65536)
                except OSError:
                    break
        assert p.wait(5) == 0
    finally:
        if p.poll() is None:
            p.kill()
        os.close(main)
    return out
