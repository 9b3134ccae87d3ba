"""`nhiguard` command line: worker, replay, eval, identities, policy, commands, verify, gate, alerts, …"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from nhiguard.settings import SettingsError, load_settings
from nhiguard.streams import alerts, backtest, enforce, gate, ingest, redrive, replay, report, serve


def _worker(args: argparse.Namespace) -> int:
    from nhiguard.policy.bundle import BundleError
    from nhiguard.signing import SigningError
    from nhiguard.streams.app import run_worker

    settings = load_settings()
    inventory = Path(args.identities) if args.identities else settings.identities_file
    if inventory:
        # A convenience for one-box setups: the inventory lives on the identities topic either way.
        from nhiguard.streams.identities import load_identities

        loaded, _ = load_identities(settings, inventory)
        logging.getLogger("nhiguard.worker").info("loaded %d identities from %s", loaded, inventory)
    try:
        run_worker(settings)
    except BundleError as exc:
        logging.getLogger("nhiguard.worker").error("policy bundle refused: %s", exc)
        return 2
    except SigningError as exc:
        logging.getLogger("nhiguard.worker").error("not started: %s", exc)
        return 2
    return 0


def _eval(args: argparse.Namespace) -> int:
    from nhiguard.streams.evaluate import run_eval

    return run_eval(
        load_settings(),
        [Path(f) for f in args.files],
        Path(args.identities) if args.identities else None,
        Path(args.policies) if args.policies else None,
        Path(args.summary_json) if args.summary_json else None,
        args.registry,
        Path(args.registry_docs) if args.registry_docs else None,
    )


def _policy_test(args: argparse.Namespace) -> int:
    from nhiguard.policy.bundle import BundleError
    from nhiguard.policy.cases import run_cases
    from nhiguard.policy.engines.opa import OpaBinaryEvaluator, OpaError, find_opa
    from nhiguard.policy.engines.pool import trial_run

    settings = load_settings()
    root = Path(args.dir) if args.dir else settings.policies_dir
    engines = ["regopy", "opa"] if args.engine == "both" else [args.engine]
    opa = None
    try:
        # nhiguard ships no OPA: find one before the (slower) trial; if there is none, say so in one line.
        if "opa" in engines:
            opa = find_opa(Path(args.opa) if args.opa else None, settings.opa_binary)
    except OpaError as exc:
        print(f"nhiguard policy test: {exc}", file=sys.stderr)
        return 2
    try:
        # Compile and query it in a throwaway process first: a bundle that crashes the engine must not take
        # this command down with it.
        bundle = trial_run(root, with_cases=False)
    except BundleError as exc:
        print(f"FAIL bundle {root}: {exc}")
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            evaluator = None  # regopy in process: the bundle has already survived its trial
            if engine == "opa" and opa is not None:
                evaluator = OpaBinaryEvaluator(opa, bundle, Path(tmp) / "bundle")
            try:
                engine_results = run_cases(bundle, evaluator)
            except OpaError as exc:
                print(f"nhiguard policy test: {exc}", file=sys.stderr)
                return 2
            for r in engine_results:
                results.append(r)
                mark = "PASS" if r.passed else "FAIL"
                print(f"{mark} [{engine}] {r.policy_id}: {r.name}" + (f" -- {r.detail}" if r.detail else ""))
    failed = sum(not r.passed for r in results)
    print(
        f"{len(results) - failed} passed, {failed} failed ({' and '.join(engines)}, bundle {bundle.revision})"
    )
    return 1 if failed or not results else 0


def _policy_publish(args: argparse.Namespace) -> int:
    from nhiguard.signing import SigningError, load_signer
    from nhiguard.streams.bundles import publish_bundle

    settings = load_settings()
    root = Path(args.dir) if args.dir else settings.policies_dir
    try:
        signer = load_signer(Path(args.key), args.kid) if args.key else None
    except SigningError as exc:
        print(f"nhiguard policy publish: nothing published: {exc}", file=sys.stderr)
        return 2
    revision = publish_bundle(settings, root, signer)
    signed = f"signed by key {signer.kid}" if signer else "UNSIGNED"
    print(f"published bundle {revision} ({signed}) from {root} to {settings.topics.bundles}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from nhiguard.streams.verify import run_verify

    if args.file and args.topic:
        print("nhiguard verify: give a FILE or --topic, not both", file=sys.stderr)
        return 2
    if args.dump and not args.topic:
        print("nhiguard verify: --dump goes with --topic", file=sys.stderr)
        return 2
    keys = Path(args.keys) if args.keys else None
    return run_verify(load_settings(), keys, args.file, args.topic, args.dump)


def _keys(args: argparse.Namespace) -> int:
    from nhiguard.streams.verify import run_keys_jwks, run_keys_new

    if args.keys_command == "new":
        return run_keys_new(Path(args.file), args.kid)
    return run_keys_jwks([Path(f) for f in args.files], args.kid)


def _add_signing(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    v = sub.add_parser(
        "verify",
        parents=[SANDBOX],
        help="check the Ed25519 signatures of command records (exit 0 all valid, 1 any bad, 2 error)",
    )
    v.add_argument(
        "file", nargs="?", metavar="FILE", help="NDJSON records (as --dump writes them), - for stdin"
    )
    v.add_argument(
        "--keys", metavar="JWKS_FILE", help="the trusted public keys (default NHIGUARD_COMMAND_KEYS)"
    )
    v.add_argument("--topic", metavar="T", help="read topic T from the start to its current end instead")
    v.add_argument("--dump", metavar="OUT", help="with --topic: also write the records read to OUT (NDJSON)")
    v.set_defaults(func=_verify)
    k = sub.add_parser("keys", help="Ed25519 signing keys and the JWKS enforcement points trust")
    k_sub = k.add_subparsers(dest="keys_command", required=True)
    kn = k_sub.add_parser("new", help="write a new private key (PEM, 0600) and print its public JWK")
    kn.add_argument("file")
    kn.add_argument("--kid", help="key id (default: the key's RFC 7638 thumbprint)")
    kn.set_defaults(func=_keys)
    kj = k_sub.add_parser(
        "jwks", help="print a JWKS of these private keys' public halves and these JWKS' keys"
    )
    kj.add_argument("files", nargs="+", metavar="FILE")
    kj.add_argument(
        "--kid", help="key id for a single private key given (default: its JWK kid or thumbprint)"
    )
    kj.set_defaults(func=_keys)


def _identities_load(args: argparse.Namespace) -> int:
    from nhiguard.streams.identities import load_identities

    settings = load_settings()
    try:
        loaded, removed = load_identities(settings, Path(args.file), prune=args.prune)
    except (ValueError, OSError) as exc:
        print(f"nothing loaded: {exc}", file=sys.stderr)
        return 2
    print(
        f"{loaded} identities written to {settings.topics.identities} on {settings.bootstrap}"
        + (f"; {removed} not in the file removed" if args.prune else "")
    )
    return 0


def _identities_delete(args: argparse.Namespace) -> int:
    from nhiguard.streams.identities import publish

    settings = load_settings()
    publish(settings, [], list(args.ids))
    print(
        f"{len(args.ids)} tombstone(s) written to {settings.topics.identities}: unknown from the next event"
    )
    return 0


def _commands_held(args: argparse.Namespace) -> int:
    from nhiguard.streams.held import run_held

    return run_held(load_settings())


def _topics_create(_args: argparse.Namespace) -> int:
    from nhiguard.streams.topics import ensure_topics

    settings = load_settings()
    ensure_topics(settings)
    print(f"topics present on {settings.bootstrap} (replication factor {settings.replication_factor})")
    return 0


def _commands_release(args: argparse.Namespace) -> int:
    from nhiguard.streams.held import run_release

    return run_release(load_settings(), list(args.ids), args.all, args.by)


def _add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser(
        "commands", help="REVOKEs the circuit breaker held (enforcement.held), and their release"
    )
    cmd_sub = cmd.add_subparsers(dest="commands_command", required=True)
    ch = cmd_sub.add_parser(
        "held", parents=[SANDBOX], help="list the commands still held, with their ids, reasons and evidence"
    )
    ch.set_defaults(func=_commands_held)
    cr = cmd_sub.add_parser(
        "release",
        parents=[SANDBOX],
        help="send held commands to enforcement.commands (same command id) and record the release",
    )
    cr.add_argument("ids", nargs="*", metavar="COMMAND_ID")
    cr.add_argument("--all", action="store_true", help="release every command still held")
    cr.add_argument("--by", help="who releases them (default: NHIGUARD_OPERATOR, else the user name)")
    cr.set_defaults(func=_commands_release)


def _registry_args(p: argparse.ArgumentParser) -> None:
    # Without either, no network: registry documents the recording does not carry are not looked up.
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--registry", metavar="URL", help="look up registry documents the stream did not carry here"
    )
    g.add_argument(
        "--registry-docs",
        metavar="DIR",
        help="recorded registry documents instead: <name>.json each (a scoped name's / written %%2f)",
    )


# Every command that talks to Kafka takes --sandbox (NHIGUARD_SANDBOX): the sandbox's topics and app id.
SANDBOX = argparse.ArgumentParser(add_help=False)
SANDBOX.add_argument(
    "--sandbox",
    metavar="PREFIX",
    help="work in the sandbox PREFIX: its topics and app id are under PREFIX. (history: decided on the "
    "events' own times, never on the live topics)",
)


def build_parser() -> argparse.ArgumentParser:
    """Every command and its arguments (main runs the one given; the README's snippets are checked here)."""
    parser = argparse.ArgumentParser(prog="nhiguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser(
        "worker", parents=[SANDBOX], help="run the Faust worker (KAFKA_BOOTSTRAP, NHIGUARD_* configure it)"
    )
    w.add_argument(
        "--identities", help="load this inventory file (YAML, JSON or CSV) to the identities topic first"
    )
    w.set_defaults(func=_worker)
    replay.add_parser(sub, _registry_args, SANDBOX)
    ev = sub.add_parser(
        "eval",
        help="detection quality on labelled recordings (replay files whose lines carry "
        "label attack[:class] or benign[:class]): per class and overall",
    )
    ev.add_argument("files", nargs="+", metavar="FILE")
    ev.add_argument("--identities", help="identity inventory file")
    ev.add_argument("--policies", help="policy bundle directory (default: the configured policies/)")
    ev.add_argument("--summary-json", metavar="OUT", help="also write the figures as JSON here")
    _registry_args(ev)
    ev.set_defaults(func=_eval)
    ids = sub.add_parser("identities", help="the identity inventory on the compacted identities topic")
    ids_sub = ids.add_subparsers(dest="identities_command", required=True)
    il = ids_sub.add_parser(
        "load",
        parents=[SANDBOX],
        help="validate a YAML, JSON or CSV inventory and write every identity in it (upsert)",
    )
    il.add_argument("file")
    il.add_argument("--prune", action="store_true", help="also remove identities the file does not list")
    il.set_defaults(func=_identities_load)
    idl = ids_sub.add_parser(
        "delete", parents=[SANDBOX], help="remove identities (tombstones): unknown from the next event"
    )
    idl.add_argument("ids", nargs="+", metavar="ID")
    idl.set_defaults(func=_identities_delete)
    pol = sub.add_parser("policy", help="policy bundle tools")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True)
    pt = pol_sub.add_parser("test", help="run every policy's cases through the engine, like `opa test`")
    pt.add_argument("dir", nargs="?", help="bundle directory (default: the configured policies/)")
    pt.add_argument(
        "--engine",
        choices=("regopy", "opa", "both"),
        default="regopy",
        help="regopy (the worker's engine, default), the real OPA (parity), or both",
    )
    pt.add_argument(
        "--opa",
        metavar="PATH",
        help="the OPA binary for --engine opa|both (default: NHIGUARD_OPA_BINARY, else opa on PATH)",
    )
    pt.set_defaults(func=_policy_test)
    pp = pol_sub.add_parser(
        "publish",
        parents=[SANDBOX],
        help="write a bundle to the compacted policy.bundles topic; workers "
        "with NHIGUARD_POLICY_SOURCE=topic prove and activate it",
    )
    pp.add_argument("dir", nargs="?", help="bundle directory (default: the configured policies/)")
    pp.add_argument(
        "--key", metavar="FILE", help="sign the bundle with this Ed25519 private key (PEM or JWK)"
    )
    pp.add_argument("--kid", help="the key's id (default: its JWK kid, else its thumbprint)")
    pp.set_defaults(func=_policy_publish)
    _add_commands(sub)
    _add_signing(sub)
    backtest.add_parser(sub, _registry_args)
    ingest.add_parser(sub, SANDBOX)
    serve.add_parser(sub, [SANDBOX])
    enforce.add_parser(sub, [SANDBOX])
    gate.add_parser(sub)
    alerts.add_parser(sub, SANDBOX)
    redrive.add_parser(sub, SANDBOX)
    report.add_parser(sub)
    tp = sub.add_parser("topics", help="topic administration")
    tp_sub = tp.add_subparsers(dest="topics_command", required=True)
    tc = tp_sub.add_parser(
        "create",
        parents=[SANDBOX],
        help="create the topics the worker needs (as it does at start), e.g. with an admin's credentials",
    )
    tc.set_defaults(func=_topics_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if getattr(args, "sandbox", None):
        # Read by every load_settings() of this command, and inherited by what it starts.
        os.environ["NHIGUARD_SANDBOX"] = args.sandbox
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a configuration nhiguard cannot use: one line, not a traceback
        print(f"nhiguard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
