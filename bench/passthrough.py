"""The baseline: a bare Faust agent that only decodes (JSON) and counts, on the same topics and broker.

Run as a process: `python -m bench.passthrough RESULT_FILE BOOTSTRAP APP_ID N TOPIC [TOPIC ...]`. Writes one
JSON object with the seconds from the first to the N-th event to RESULT_FILE, then exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import faust

from nhiguard.kafka_clients import faust_settings
from nhiguard.settings import load_settings


def main(argv: list[str]) -> None:
    result_file, bootstrap, app_id, n, *topics = argv
    want = int(n)
    app = faust.App(
        app_id,
        **faust_settings(replace(load_settings(), bootstrap=bootstrap)),  # NHIGUARD_KAFKA_* credentials
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(*topics, value_serializer="raw", key_serializer="raw")
    state = {"count": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.StreamT) -> None:
        async for value in stream:
            json.loads(value)
            if state["count"] == 0:
                state["first"] = time.perf_counter()
            state["count"] += 1
            if state["count"] == want:
                seconds = time.perf_counter() - state["first"]
                with open(result_file, "w") as f:
                    json.dump({"events": want, "seconds": seconds}, f)
                os._exit(0)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
