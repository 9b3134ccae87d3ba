"""Each org's AWS account as CloudTrail records it (the cloud_ci_roles class): the deploy role every deploy
workflow run assumes by GitHub OIDC from a GitHub-hosted runner (another address every run), the artifact
role the in-cluster CI jobs use through the cluster's NAT gateway, a legacy IAM user whose access key a
nightly backup uses from the office, and people at the console (Identity Center sessions).

Deploy runs and CI jobs are read back from what was emitted (their workflow_run deliveries, out.sessions);
only benign ones get cloud calls, so an attack's class keeps exactly the records it had.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.corpus import clock
from tools.corpus.classes import Draws, label
from tools.corpus.estate import Estate
from tools.corpus.k8s import RUNTIME
from tools.corpus.out import CI, Out
from tools.corpus.runtime_formats import AwsCall, assumed_role, cloudtrail, iam_user, web_identity_user
from tools.scenarios._util import stable_hex

CLOUD = label("cloud_ci_roles")
NEW_ADDRESS = label("cloud_new_address")
GITHUB_OIDC = "token.actions.githubusercontent.com"
_HOSTED_PREFIXES = (20, 40, 52, 13, 4, 23)  # where GitHub-hosted runners' addresses come from (Azure)
_SDK = "aws-sdk-js/3.717.0 ua/2.1 os/linux#6.8.0-1017-azure lang/js md/nodejs#20.18.1 api/{api}#3.717.0"
_BOTO = "Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.1.119 md/arch#x86_64 lang/python#3.12.8"
_CLI = "aws-cli/2.22.26 md/awscrt#0.23.4 ua/2.0 os/linux#5.15.0-130-generic md/arch#x86_64 lang/python#3.12.6"
_BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/18.2 Safari/605.1.15"
_CONSOLE = ("ec2.DescribeInstances", "logs.FilterLogEvents", "ecs.DescribeServices", "s3.ListBuckets")


def completed_runs(out: Out) -> Iterator[tuple[str, dict[str, Any], datetime]]:
    """(label, workflow_run, started) of every completed workflow run emitted so far."""
    for r in list(out.records):
        if r.topic != CI or r.header("X-GitHub-Event") != "workflow_run":
            continue
        body = json.loads(r.value)
        run = body.get("workflow_run") or {}
        if body.get("action") == "completed" and run.get("conclusion") == "success":
            started = datetime.strptime(run["run_started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            yield r.label or "", run, started


def _key(prefix: str, *parts: object) -> str:
    return prefix + stable_hex(*parts, n=16).upper()


class CloudActivity:
    def __init__(self, out: Out, estates: dict[str, Estate], rng: random.Random) -> None:
        self.out, self.estates, self.rng = out, estates, rng
        self.d = Draws(rng, "cloud_ci_roles")

    def emit(self) -> None:
        for lab, run, started in completed_runs(self.out):
            est = self.estates.get(run["repository"]["full_name"].split("/")[0])
            if est is not None and run["path"].endswith("deploy.yml") and lab.startswith("benign:"):
                self.deploy(est, run, started + timedelta(seconds=self.rng.uniform(30, 90)))
        share = self.d.uniform("artifact_call_share")
        for job in self.out.sessions:
            if job.runner and job.label.startswith("benign:") and self.rng.random() < share:
                self.artifacts(self.estates[job.org.slug], job.address, job.at, job.end, job.label)
        cast = self.out.cast
        for est in self.estates.values():
            hour = self.d.uniform("backup_local_hour")
            for day in range(clock.days(cast)):
                self.backup(est, clock.at_local(cast, est.org, day, hour + self.rng.uniform(0, 0.2)))
                if clock.is_workday(cast, day):
                    for _ in range(clock.count(self.rng, self.d.uniform("console_per_workday"))):
                        self.console(est, clock.work_time(self.rng, cast, est.org, day))

    def _emit(
        self, est: Estate, call: AwsCall, at: datetime, who: dict[str, Any], ip: str, ua: str, lab: str
    ) -> None:
        body = cloudtrail(self.rng, call, at, who, est.account, est.aws_region, ip, ua)
        self.out.emit(RUNTIME, est.account, body, at, lab, ())

    def deploy(self, est: Estate, run: dict[str, Any], at: datetime) -> None:
        """configure-aws-credentials assumes the deploy role with the run's OIDC token; the job pushes the
        image to ECR (the GitOps controller rolls it out)."""
        rng = self.rng
        repo = run["repository"]["full_name"]
        ip = ".".join(
            str(n) for n in (rng.choice(_HOSTED_PREFIXES), rng.randint(0, 255), rng.randint(0, 255))
        )
        ip += f".{rng.randint(1, 254)}"
        provider = f"arn:aws:iam::{est.account}:oidc-provider/{GITHUB_OIDC}"
        subject = f"repo:{repo}:ref:refs/heads/{run['head_branch']}"
        role = est.role("gha-deploy")
        assume = AwsCall("sts.amazonaws.com", "AssumeRoleWithWebIdentity", False, role)
        agent = "aws-sdk-nodejs/2.1692.0 linux/v20.18.1 configure-aws-credentials-for-github-actions"
        self._emit(est, assume, at, web_identity_user(provider, subject), ip, agent, CLOUD)
        who = assumed_role(est.account, "gha-deploy", "GitHubActions", _key("ASIA", run["id"]), provider)
        image = f"arn:aws:ecr:{est.aws_region}:{est.account}:repository/{repo.split('/')[1]}"
        calls = (
            AwsCall("sts.amazonaws.com", "GetCallerIdentity", True),
            AwsCall("ecr.amazonaws.com", "GetAuthorizationToken", True),
            AwsCall("ecr.amazonaws.com", "PutImage", False, image),
        )
        t = at
        for call in calls:
            t += timedelta(seconds=rng.uniform(1, 40))
            api = call.source.split(".")[0]
            self._emit(est, call, t, who, ip, _SDK.format(api=api), CLOUD)

    def artifacts(self, est: Estate, pod_ip: str, start: datetime, end: datetime, lab: str) -> None:
        """A CI job restores its build cache from S3 and saves it back (S3 data events), with the artifact
        role's session credentials (IRSA: a session per pod): through the cluster's NAT gateway, or, where
        the VPC has an S3 gateway endpoint, from the pod's private address. S3 asks KMS for the bucket key
        with the same credentials: CloudTrail logs those calls from `s3.amazonaws.com`, no address at all."""
        rng = self.rng
        session = f"botocore-session-{int(start.timestamp())}"
        who = assumed_role(est.account, "ci-artifacts", session, _key("ASIA", est.slug, start))
        bucket = f"arn:aws:s3:::{est.slug}-ci-cache/npm/{stable_hex(start, n=12)}.tgz"
        key = f"arn:aws:kms:{est.aws_region}:{est.account}:key/{stable_hex(est.slug, 'kms', n=32)}"
        night = lab == label("night_build")
        for name, at in (("GetObject", start), ("PutObject", end + timedelta(seconds=rng.uniform(5, 60)))):
            ip = pod_ip if est.s3_endpoint else est.nat_at(rng, at)
            moved = est.nat_move
            fresh = moved is not None and moved[0] <= at < moved[0] + timedelta(days=2) and ip == moved[1]
            tag = lab if night else NEW_ADDRESS if fresh else CLOUD
            call = AwsCall("s3.amazonaws.com", name, name == "GetObject", bucket, data_event=True)
            body = cloudtrail(rng, call, at, who, est.account, est.aws_region, ip, _BOTO)
            if est.s3_endpoint:
                body |= {"vpcEndpointId": est.s3_endpoint, "vpcEndpointAccountId": est.account}
            self.out.emit(RUNTIME, est.account, body, at, tag, ())
            kms = AwsCall(
                "kms.amazonaws.com", "Decrypt" if name == "GetObject" else "GenerateDataKey", True, key
            )
            t = at + timedelta(milliseconds=rng.randint(20, 300))
            body = cloudtrail(
                rng,
                kms,
                t,
                who | {"invokedBy": "s3.amazonaws.com"},
                est.account,
                est.aws_region,
                "s3.amazonaws.com",
                "s3.amazonaws.com",
            )
            self.out.emit(RUNTIME, est.account, body, t, lab if night else CLOUD, ())

    def backup(self, est: Estate, at: datetime) -> None:
        rng = self.rng
        who = iam_user(est.account, "svc-backup-sync", _key("AKIA", est.slug, "backup"))
        ip = est.office[0]
        self._emit(est, AwsCall("sts.amazonaws.com", "GetCallerIdentity", True), at, who, ip, _CLI, CLOUD)
        t = at
        for i in range(self.d.int("backup_objects")):
            t += timedelta(seconds=rng.uniform(5, 120))
            key = f"arn:aws:s3:::{est.slug}-backups/{at:%Y-%m-%d}/part-{i:03d}.tar.zst"
            call = AwsCall("s3.amazonaws.com", "PutObject", False, key, data_event=True)
            self._emit(est, call, t, who, ip, _CLI, CLOUD)

    def console(self, est: Estate, at: datetime) -> None:
        """A person signs in through Identity Center and looks around (a person: no NHI rule)."""
        rng = self.rng
        login = rng.choice(est.admins)
        role = f"AWSReservedSSO_ReadOnlyAccess_{stable_hex(est.account, 'ro', n=16)}"
        who = assumed_role(
            est.account, f"aws-reserved/sso.amazonaws.com/{role}", login, _key("ASIA", login, at)
        )
        ip = est.office[0]
        body = cloudtrail(
            rng,
            AwsCall("signin.amazonaws.com", "ConsoleLogin", False),
            at,
            who,
            est.account,
            est.aws_region,
            ip,
            _BROWSER,
        )
        body["eventType"] = "AwsConsoleSignIn"
        self.out.emit(RUNTIME, est.account, body, at, CLOUD, ())
        t = at
        for _ in range(rng.randint(1, 4)):
            t += timedelta(seconds=rng.uniform(10, 300))
            service, name = rng.choice(_CONSOLE).split(".")
            body = cloudtrail(
                rng,
                AwsCall(f"{service}.amazonaws.com", name, True),
                t,
                who,
                est.account,
                est.aws_region,
                ip,
                "AWS Internal",
            )
            body["sessionCredentialFromConsole"] = "true"
            self.out.emit(RUNTIME, est.account, body, t, CLOUD, ())
