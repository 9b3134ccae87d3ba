"""Every family of event facts; each is a policy input key and a field of the AuditEvent schema
(schemas/nhiguard.AuditEvent.avsc)."""

from __future__ import annotations

from nhiguard.decision.access_facts import PlatformAccess
from nhiguard.decision.cluster_facts import CloudCall, K8sRequest
from nhiguard.decision.facts import CmsChange, EventFacts, ReleaseRequest
from nhiguard.decision.process_facts import ProcessActivity
from nhiguard.decision.proxy_facts import ProxyPublish, ProxyRequest
from nhiguard.decision.registry_facts import Install, Publish
from nhiguard.decision.workflow_facts import WorkflowJob, WorkflowRun

FAMILIES: tuple[type[EventFacts], ...] = (
    CmsChange,
    ReleaseRequest,
    Publish,
    Install,
    ProxyPublish,
    ProxyRequest,
    WorkflowRun,
    WorkflowJob,
    K8sRequest,
    CloudCall,
    ProcessActivity,
    PlatformAccess,
)
