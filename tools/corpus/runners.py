"""What the cluster sees of each CI job on an in-cluster runner (one `Session` of out.py): the runner
controller creating and deleting the job's pod, the runner's service account reading its registry secret,
and the runtime sensor's events in the pod (Tetragon export lines or Falco alerts): the checkout's git fetch,
`npm ci` through Verdaccio, the repository's prepare script and its dependencies' install scripts.

A job that installs the malicious dependency runs its postinstall: the script (or the implant it drops)
calls home to a host outside the runner identity's allowed destinations (install_script_egress; the process
starts before are context). With Falco, an implant that changed its directory to / is no longer seen as an
install script's child (Falco reports no parent directory): denied, not revoked (README, Detection quality).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus import names
from tools.corpus.classes import Draws, label
from tools.corpus.estate import ARC_NS, SCALE_SET_LABEL, SCRIPTS, Estate, ScaleSet, k8s_suffix
from tools.corpus.k8s import CONTROLLERS, RUNTIME, emit_k8s, pod_ip
from tools.corpus.out import CONTEXT, Out, Session
from tools.corpus.runtime_formats import K8sCall, Pod, Proc, exec_id, falco, tetragon
from tools.scenarios._util import sha40, stable_hex, uuid4

RUNTIME_LABEL = label("ci_runner_runtime")
NEW_DESTINATION = label("new_allowed_destination")
EGRESS = label("install_script_egress")
BAD_DEP = label("malicious_new_dependency")
_RUNNER_IMAGE = "ghcr.io/actions/actions-runner:2.321.0"
_NODE, _SH, _GIT = "/usr/local/bin/node", "/bin/sh", "/usr/bin/git"
_C2_PORTS = (443, 8000, 8080, 8443)
_C2_WORDS = ("cdn-sync", "update-check", "telemetry", "metrics-api", "static-assets", "pkg-mirror")
_C2_TLDS = ("com", "net", "io", "top", "xyz")
# Falco: the default ruleset's package-manager rule, and the platform team's own rules for CI jobs.
_PKG_RULE = ("Launch Package Management Process in Container", "Error")
_SCRIPT_RULE = ("Package Lifecycle Script in CI Job", "Notice")
_OUT_RULE = ("Outbound Connection from CI Job", "Informational")
_BAD_OUT_RULE = ("Unexpected Outbound Connection Destination", "Warning")


class RunnerActivity:
    def __init__(self, out: Out, estates: dict[str, Estate], rng: random.Random) -> None:
        self.out, self.estates, self.rng = out, estates, rng
        d = Draws(rng, "ci_runner_runtime")
        self.download_share = d.uniform("download_share")
        self.egress = Draws(rng, "install_script_egress")
        self.added: dict[str, tuple[str, datetime, datetime]] = {}  # user -> (package, from, until)

    def emit(self) -> None:
        jobs = sorted((s for s in self.out.sessions if s.runner), key=lambda s: s.at)
        self._plan_new_destinations(jobs)
        for job in jobs:
            est = self.estates[job.org.slug]
            ss = est.scale_sets.get(job.user.name)
            if ss is not None:
                self.job(est, ss, job)

    # ------------------------------------------------------------------------------- new destinations
    def _plan_new_destinations(self, jobs: list[Session]) -> None:
        """A repository adds a package whose install script downloads from an allowed host its runner never
        reached: the first jobs after the change (a drawn window) are new_allowed_destination."""
        rng, cast = self.rng, self.out.cast
        d = Draws(rng, "new_allowed_destination")
        for _ in range(d.int("instances")):
            at = cast.start + (cast.end - cast.start) * d.uniform("from_fraction")
            candidates = []
            for job in jobs:
                est = self.estates[job.org.slug]
                ss = est.scale_sets.get(job.user.name)
                if job.at < at or ss is None or est.egress != "direct" or job.user.name in self.added:
                    continue
                new = [p for p, (_, dl) in SCRIPTS.items() if dl and p not in ss.scripts]
                if new:
                    candidates.append((job, rng.choice(new)))
            if candidates:
                job, pkg = candidates[0]  # the first job after the change
                until = job.at + timedelta(hours=d.uniform("hours"))
                self.added[job.user.name] = (pkg, job.at, until)

    # ------------------------------------------------------------------------------------------- a job
    def job(self, est: Estate, ss: ScaleSet, job: Session) -> None:
        rng = self.rng
        night = job.label == label("night_build")
        lab = job.label if night else RUNTIME_LABEL
        k8s_lab = job.label if night else CONTROLLERS
        pod = Pod(
            ARC_NS,
            f"{ss.user}-{ss.rs}-runner-{k8s_suffix(rng)}",
            {
                SCALE_SET_LABEL: ss.user,
                "actions.github.com/scale-set-namespace": ARC_NS,
                "app.kubernetes.io/component": "runner",
                "app.kubernetes.io/part-of": "gha-runner-scale-set",
            },
            job.address,
            _node(rng, est),
            _RUNNER_IMAGE,
            stable_hex(ss.user, job.at, n=64),
        )
        start = job.at - timedelta(seconds=rng.uniform(20, 45))
        arc = est.controllers[3]
        controller = K8sCall(arc.username, "create", "pods", ARC_NS, pod.name, "", pod_ip(rng, est, start))
        emit_k8s(self.out, rng, est, controller, start - timedelta(seconds=rng.uniform(5, 12)), k8s_lab)
        secret = K8sCall(
            f"system:serviceaccount:{ARC_NS}:{ss.user}",
            "get",
            "secrets",
            ARC_NS,
            f"{ss.user}-registry-token",
            source_ip=pod.ip,
            user_agent="kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47",
        )
        emit_k8s(self.out, rng, est, secret, start + timedelta(seconds=rng.uniform(1, 3)), k8s_lab)
        runner = _proc(
            rng, pod, "/home/runner/bin/Runner.Worker", "spawnclient 113 116", "/home/runner", 41, start
        )
        workdir = f"/home/runner/_work/{ss.repo}/{ss.repo}"
        t = self._checkout(est, pod, runner, workdir, start + timedelta(seconds=2), lab)
        step = f"-e /home/runner/_work/_temp/{uuid4(rng)}.sh"
        shell = _proc(rng, pod, "/usr/bin/bash", step, workdir, rng.randint(300, 900), max(t, job.at))
        npm = _proc(rng, pod, _NODE, "/usr/local/bin/npm ci", workdir, shell.pid + 3, job.at)
        self._exec(est, pod, npm, shell, job.at, lab, _PKG_RULE)
        registry = (est.verdaccio_ip, 4873, f"verdaccio.{est.slug}.internal")
        self._connect(est, pod, npm, shell, job.at + timedelta(milliseconds=300), registry, lab)
        t = job.end + timedelta(seconds=rng.uniform(1, 4))
        if ss.prepare:
            husky = _proc(rng, pod, _NODE, f"{workdir}/node_modules/.bin/husky", workdir, npm.pid + 40, t)
            self._exec(est, pod, husky, npm, t, lab, _SCRIPT_RULE)
            t += timedelta(seconds=rng.uniform(0.3, 2))
        scripts = list(ss.scripts)
        added = self.added.get(ss.user)
        if added is not None and job.at >= added[1]:
            scripts.append(added[0])
        for pkg in scripts:
            fresh = added is not None and pkg == added[0] and job.at < added[2]
            t = self._script(est, pod, npm, workdir, pkg, t, NEW_DESTINATION if fresh else lab, fresh)
        for name, _, tar in job.fetched:
            if tar == BAD_DEP:
                t = self._malicious(est, pod, npm, workdir, name, t)
        if est.sensor == "tetragon" and rng.random() < 0.5:
            # The tests talk to a server the job started on loopback (never judged: it never leaves the pod).
            tests = _proc(rng, pod, _NODE, "node_modules/.bin/jest --ci", workdir, npm.pid + 200, t)
            self._exec(est, pod, tests, shell, t, lab, _SCRIPT_RULE)
            for _ in range(rng.randint(1, 3)):
                t += timedelta(seconds=rng.uniform(0.5, 20))
                self._connect(
                    est, pod, tests, shell, t, ("127.0.0.1", rng.choice((3000, 4000, 5432)), ""), lab
                )
        done = t + timedelta(seconds=rng.uniform(20, 240))
        gone = K8sCall(arc.username, "delete", "pods", ARC_NS, pod.name, "", pod_ip(rng, est, done))
        emit_k8s(self.out, rng, est, gone, done, k8s_lab)

    def _checkout(
        self, est: Estate, pod: Pod, runner: Proc, workdir: str, at: datetime, lab: str
    ) -> datetime:
        rng = self.rng
        action = "/home/runner/_work/_actions/actions/checkout/v4/dist/index.js"
        node = _proc(rng, pod, "/home/runner/externals/node20/bin/node", action, workdir, runner.pid + 60, at)
        fetch = "-c protocol.version=2 fetch --no-tags --prune --no-recurse-submodules --depth=1 origin "
        ref = f"+{sha40(rng)}:refs/remotes/origin/main"
        git = _proc(rng, pod, _GIT, fetch + ref, workdir, node.pid + 4, at + timedelta(seconds=1))
        if est.sensor == "tetragon":  # Falco's rules do not fire on git
            self.out.emit(RUNTIME, pod.node, tetragon("exec", pod, git, node, git.start), git.start, lab, ())
        helper = "/usr/lib/git-core/git-remote-https"
        remote = _proc(rng, pod, helper, "origin https://github.com/", workdir, git.pid + 1, git.start)
        dest = _addr(rng, "140.82.112.0/20"), 443, "github.com"
        self._connect(est, pod, remote, git, git.start + timedelta(milliseconds=80), dest, lab)
        return git.start + timedelta(seconds=rng.uniform(1, 6))

    def _script(
        self, est: Estate, pod: Pod, npm: Proc, workdir: str, pkg: str, at: datetime, lab: str, fresh: bool
    ) -> datetime:
        """A dependency's install script; a download from its host when its binary is not cached."""
        rng = self.rng
        command, download = SCRIPTS[pkg]
        cwd = f"{workdir}/node_modules/{pkg}"
        sh = _proc(rng, pod, _SH, f"-c {command}", cwd, npm.pid + rng.randint(5, 60), at)
        script = _proc(rng, pod, _NODE, command.split(" ", 1)[1], cwd, sh.pid + 1, at)
        self._exec(est, pod, script, sh, at, lab, _SCRIPT_RULE)
        if download is not None and (fresh or rng.random() < self.download_share):
            dest = _addr(rng, download[1]), 443, download[0]
            self._connect(est, pod, script, sh, at + timedelta(milliseconds=rng.randint(80, 600)), dest, lab)
        return at + timedelta(seconds=rng.uniform(0.5, 8))

    def _malicious(self, est: Estate, pod: Pod, npm: Proc, workdir: str, pkg: str, at: datetime) -> datetime:
        """The malicious dependency's postinstall: `node setup.js` (context), maybe a dropped implant
        (context), then the call home, once or a few times (the attack records)."""
        rng, d = self.rng, self.egress
        cwd = f"{workdir}/node_modules/{pkg}"
        sh = _proc(rng, pod, _SH, "-c node setup.js", cwd, npm.pid + rng.randint(5, 60), at)
        setup = _proc(rng, pod, _NODE, "setup.js", cwd, sh.pid + 1, at)
        self._exec(est, pod, setup, sh, at, CONTEXT, _SCRIPT_RULE)
        caller, parent = setup, sh
        t = at + timedelta(seconds=rng.uniform(0.5, 3))
        if rng.random() < d.uniform("implant_share"):
            # Falco sees no parent directory: an implant that moved to / looks like any process.
            moved = est.sensor == "falco" and rng.random() < d.uniform("unlinked_share")
            name = rng.choice(("/tmp/.cache/ld.py", "/tmp/.X11-unix/.sysd", "/dev/shm/.node-gyp"))
            binary, args = ("/usr/bin/python3", name) if name.endswith(".py") else (name, "")
            implant = _proc(rng, pod, binary, args, "/" if moved else cwd, setup.pid + 7, t)
            self._exec(est, pod, implant, setup, t, CONTEXT, _SCRIPT_RULE)
            caller, parent = implant, setup
        host = f"{rng.choice(_C2_WORDS)}{rng.randint(2, 99)}.{rng.choice(_C2_TLDS)}"
        dest = names.public_ip(rng), rng.choice(_C2_PORTS), host if rng.random() < 0.5 else ""
        for _ in range(d.int("beacons")):
            t += timedelta(seconds=rng.uniform(1, 60))
            self._connect(est, pod, caller, parent, t, dest, EGRESS, bad=True)
        return t + timedelta(seconds=rng.uniform(1, 5))

    # ------------------------------------------------------------------------------------ sensor events
    def _exec(
        self, est: Estate, pod: Pod, proc: Proc, parent: Proc, at: datetime, lab: str, rule: tuple[str, str]
    ) -> None:
        if est.sensor == "tetragon":
            body = tetragon("exec", pod, proc, parent, at)
        else:
            body = falco(rule[0], rule[1], pod, proc, parent, at)
        self.out.emit(RUNTIME, pod.node, body, at, lab, ())

    def _connect(
        self,
        est: Estate,
        pod: Pod,
        proc: Proc,
        parent: Proc,
        at: datetime,
        dest: tuple[str, int, str],
        lab: str,
        bad: bool = False,
    ) -> None:
        """A connection; through the org's egress proxy when it has one (a process that honours the proxy
        settings: npm, git and the download scripts do; a dropper calls out directly)."""
        ip, port, host = dest
        local = ip.startswith((est.pod_prefix + ".", "127."))
        if est.egress == "proxy" and not bad and not local:
            ip, port, host = est.proxy_ip, 3128, f"proxy.{est.slug}.internal"
        if est.sensor == "tetragon":
            body = tetragon("connect", pod, proc, parent, at, (ip, port))
        else:
            rule = _BAD_OUT_RULE if bad else _OUT_RULE
            body = falco(rule[0], rule[1], pod, proc, parent, at, (ip, port, host))
        self.out.emit(RUNTIME, pod.node, body, at, lab, ())


def _proc(rng: random.Random, pod: Pod, binary: str, args: str, cwd: str, pid: int, start: datetime) -> Proc:
    return Proc(binary, args, cwd, pid, exec_id(rng, pod.node), start)


def _node(rng: random.Random, est: Estate) -> str:
    """One of the CI node pool's nodes, named as the org's Kubernetes flavour names them."""
    n = rng.randrange(4)
    if est.flavor == "eks":
        return f"ip-{est.pod_prefix.replace('.', '-')}-40-{10 + n}.{est.region}.compute.internal"
    if est.flavor == "gke":
        return f"gke-{est.cluster}-ci-pool-{stable_hex(est.cluster, n=8)}-{k8s_suffix(random.Random(n), 4)}"
    return f"aks-cipool-{stable_hex(est.cluster, n=8)}-vmss00000{n}"


def _addr(rng: random.Random, cidr: str) -> str:
    """An address in a published range (the providers' load balancers hand out many)."""
    base, bits = cidr.split("/")
    a, b, c, _ = (int(x) for x in base.split("."))
    span = 2 ** (32 - int(bits))
    n = rng.randrange(1, span - 1)
    value = (a << 24 | b << 16 | c << 8) + n
    return ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))
