"""`nhiguard verify` (check the signatures of command records) and `nhiguard keys` (make a signing key,
build a JWKS). The checks are nhiguard.signing's `verify_record`, which an enforcement point calls itself.

Records come from a topic (read from the start to its end offsets as of now) or from a file of NDJSON lines,
one record each, as `--topic T --dump FILE` writes them:
    {"topic": "enforcement.commands", "partition": 0, "offset": 12,
     "key_b64": "...", "value_b64": "...", "headers": [["nhiguard-sig", "<base64>"], ...]}
Only `value_b64` is required (standard base64); `headers` is a list of [key, base64 value or null] pairs, so a
repeated header stays visible. Exit 0: every record validly signed; 1: any unsigned, altered or signed by a
key the JWKS does not hold (one line each); 2: an error (unreadable input, bad JWKS), in one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nhiguard.avro import AvroCodec
from nhiguard.settings import Settings
from nhiguard.signing import Jwks, Signer, SigningError, load_signer, new_key_pem, verify_record


class InputError(Exception):
    """Records that cannot be read: exit 2."""


@dataclass(frozen=True)
class Record:
    where: str  # topic[partition]@offset, or the file line
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    key: bytes | None = None

    def dump(self, topic: str, partition: int, offset: int) -> str:
        def b64(b: bytes | None) -> str | None:
            return None if b is None else base64.b64encode(b).decode()

        return json.dumps(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key_b64": b64(self.key),
                "value_b64": b64(self.value),
                "headers": [[k, b64(v)] for k, v in self.headers],
            }
        )


def _b64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string or null")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{what} is not base64: {exc}") from exc


def _parse_line(line: str, where: str) -> Record:
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict) or "value_b64" not in doc:
            raise ValueError('expected a JSON object with "value_b64"')
        headers = doc.get("headers") or []
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) for h in headers
        ):
            raise ValueError('"headers" must be a list of [key, base64 value] pairs')
        pairs = [(k, _b64(v, f"header {k!r}")) for k, v in headers]
        if "topic" in doc:
            where = f"{where} ({doc.get('topic')}[{doc.get('partition')}]@{doc.get('offset')})"
        return Record(where, _b64(doc["value_b64"], "value_b64"), pairs)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc


def read_file(stream: IO[str], name: str) -> Iterator[Record]:
    try:
        for n, line in enumerate(stream, 1):
            if line.strip():
                yield _parse_line(line, f"{name}:{n}")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}") from exc


def read_topic(
    settings: Settings, topic: str, dump: IO[str] | None, timeout_s: float = 60.0
) -> Iterator[Record]:
    """Every record of the topic, from the start of each partition to its end as of now."""
    from nhiguard.streams.topics import TopicReadError, read_to_end

    try:
        for msg in read_to_end(settings, topic, "verify", timeout_s):
            where = f"{topic}[{msg.partition()}]@{msg.offset()}"
            rec = Record(where, msg.value(), msg.headers() or [], msg.key())
            if dump is not None:
                dump.write(rec.dump(topic, msg.partition(), msg.offset()) + "\n")
            yield rec
    except TopicReadError as exc:
        raise InputError(str(exc)) from exc


def _command_id(codec: AvroCodec, value: bytes | None) -> str:
    try:
        return f" command {codec.decode(value or b'')['command_id']}"
    except Exception:  # not a command record: the signature verdict is what counts
        return ""


def verify_records(records: Iterator[Record], jwks: Jwks, codec: AvroCodec, out: IO[str]) -> int:
    """Print one line per record that fails and a summary; 0 if every record is valid, else 1."""
    counts: Counter[str] = Counter()
    total = 0
    for rec in records:
        total += 1
        verdict = verify_record(rec.value, rec.headers, jwks)
        if verdict.ok:
            counts[f"valid (key {verdict.kid})"] += 1
            continue
        counts["bad"] += 1
        print(f"BAD {rec.where}{_command_id(codec, rec.value)}: {verdict.reason}", file=out)
    summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    print(f"{total} record(s){': ' + summary if summary else ''}", file=out)
    return 1 if counts["bad"] else 0


def run_verify(
    settings: Settings, keys: Path | None, file: str | None, topic: str | None, dump: str | None
) -> int:
    where = keys or settings.command_keys
    if where is None:
        print("nhiguard verify: give --keys JWKS_FILE (or set NHIGUARD_COMMAND_KEYS)", file=sys.stderr)
        return 2
    try:
        jwks = Jwks.load(where)
        codec = AvroCodec(settings.schemas_dir)
        if topic is not None:
            with open(dump, "w") if dump else open(os.devnull, "w") as sink:
                return verify_records(
                    read_topic(settings, topic, sink if dump else None), jwks, codec, sys.stdout
                )
        if file in (None, "-"):
            return verify_records(read_file(sys.stdin, "stdin"), jwks, codec, sys.stdout)
        with open(file, encoding="utf-8") as stream:  # type: ignore[arg-type]
            return verify_records(read_file(stream, file), jwks, codec, sys.stdout)  # type: ignore[arg-type]
    except (SigningError, InputError) as exc:
        print(f"nhiguard verify: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"nhiguard verify: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
    return 2


def run_keys_new(out: Path, kid: str | None) -> int:
    """Write a new Ed25519 private key (PEM, mode 0600) and print its public JWK (with the key id)."""
    pem = new_key_pem()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite a key
    except OSError as exc:
        print(f"nhiguard keys new: cannot create {out}: {exc.strerror}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    signer = load_signer(out, kid)
    print(json.dumps(signer.jwk()))
    return 0


def run_keys_jwks(paths: list[Path], kid: str | None) -> int:
    """A JWKS of the public halves of these private keys and the keys of these JWKS files (rotation: the new
    key and the old ones still trusted), on stdout."""
    keys: dict[str, Any] = {}
    try:
        for path in paths:
            text = path.read_bytes() if path.exists() else b""
            if text.lstrip().startswith(b"{") and b'"keys"' in text:
                keys.update({k["kid"]: k for k in Jwks.load(path).document()["keys"]})
            else:
                signer: Signer = load_signer(path, kid if len(paths) == 1 else None)
                keys[signer.kid] = signer.jwk()
    except SigningError as exc:
        print(f"nhiguard keys jwks: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"keys": list(keys.values())}, indent=2))
    return 0
