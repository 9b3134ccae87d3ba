"""The fair baseline: a bare Faust app with the worker's topology and no decision.

Two agents, batched like the worker's (take_events with its batch size and window): the first consumes the
input topics, decodes each record (JSON) and forwards it by its key to a repartition topic; the second
consumes that, decodes again and produces one record per event to an output topic. Both produce through the
worker's own producer (streams/sink.py's OutputSink: idempotent, acks=all, lz4), as the worker does; Faust's
own `send` is slower than the whole worker (measured: ~700-1,000 events/s on two hops). The bench times the
output's append times, as it does the worker's decisions.

Run as a process: `python -m bench.two_hop BOOTSTRAP APP_ID HOP_TOPIC OUT_TOPIC TOPIC [TOPIC ...]`; it runs
until it is killed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import faust

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import faust_settings
from nhiguard.settings import load_settings
from nhiguard.streams.sink import OutputSink


def main(argv: list[str]) -> None:
    bootstrap, app_id, hop_name, out_name, *topics = argv
    settings = replace(load_settings(), bootstrap=bootstrap)
    app = faust.App(
        app_id,
        **faust_settings(settings),  # NHIGUARD_KAFKA_* credentials
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=1,
    )
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    source = app.topic(*topics, **raw)
    hop = app.topic(hop_name, partitions=1, **raw)
    sink = OutputSink(settings, AvroCodec(settings.schemas_dir))

    async def relay(stream: faust.StreamT, to: str) -> None:
        """Each event decoded (as the worker reads it) and produced on, a batch at a time."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            batch = []
            for e in events:
                json.loads(e.message.value)
                batch.append((e.message.key, e.message.value, []))
            sink.forward(to, batch)

    @app.agent(source)
    async def forward(stream: faust.StreamT) -> None:
        await relay(stream, hop_name)

    @app.agent(hop)
    async def emit(stream: faust.StreamT) -> None:
        await relay(stream, out_name)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
