# METADATA
# title: Public releases must run where the inventory expects their publisher to run
# description: >-
#   A pre-publish gate check of where a release job runs (its GitHub Actions context, input.release.origin)
#   against the inventory: the identity's expected_publisher (repository, workflow, ref), its kind and its
#   allowed_destinations, and where the package's previous release ran. Denied: a request from pull-request
#   code (a fork's head, or a pull_request / pull_request_target run), from a ref the publisher does not
#   release from (a branch where tags are expected), or to a registry the identity may not publish to. A
#   request that is a publish by a workflow the inventory does not expect (another repository or workflow than
#   the expected publisher's, a workflow whose kind does not publish, or another repository than the
#   package's previous release) is denied and, because the run holds that workflow's credential, revokes it
#   (evidence: compromise). A pull_request run is denied, never revoked: it is unmerged code, and from a fork
#   it holds no credential of ours.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1195.002 Compromise Software Supply Chain", "T1078 Valid Accounts"]
package nhiguard.ci.release_origin

import rego.v1

params := data.nhiguard.params.ci.release_origin

# Function names are unique across the bundle (regopy 1.5.2 crashes on one name with two arities).
# Reasons never echo strings from input: they name what differs, the decision record carries the values.

# A gate that sends no GitHub context (origin null) is not judged here: `not` over a missing field is true.
gate_origin(ev) := ev.release.origin if {
	ev.action == "ci.release.publish_request"
	is_object(ev.release.origin)
}

# Code the repository has not merged: a pull request's run, or a head from a fork.
from_pull_request(o) if o.event_name in params.pull_request_events

from_pull_request(o) if o.fork == true

from_pull_request(o) if {
	o.head_repository != ""
	lower(o.head_repository) != lower(o.repository)
}

from_pull_request(o) if startswith(o.ref, "refs/pull/")

# A pull_request run is unmerged code under review: from a fork, GitHub gives it a read-only token and no
# secrets; from a branch of ours, its author already has write access. Asking to publish from it is stopped
# at the gate, but it is no evidence that a credential is in the wrong hands (gates that send no event
# payload do not say whether the head is a fork, so this does not depend on it).
holds_no_credential(o) if o.event_name == "pull_request"

expected_ref(ev) := ref if {
	ref := object.get(ev.identity, ["expected_publisher", "ref"], "")
	ref != ""
}

expected_ref(ev) := params.default_ref if object.get(ev.identity, ["expected_publisher", "ref"], "") == ""

# What a publish by a workflow the inventory does not expect looks like (known identities only: an unknown
# one is denied by identity.inventory, and has no credential on record).
unexpected_publisher(ev, o) := [why |
	ev.identity.known == true
	some [field, why] in [
		["repository", "runs in another repository than its expected publisher's"],
		["workflow", "runs another workflow than its expected publisher's"],
	]
	want := object.get(ev.identity, ["expected_publisher", field], "")
	want != ""
	lower(want) != lower(o[field])
]

non_publisher_kind(ev) if {
	ev.identity.known == true
	ev.identity.kind != "package_publisher"
	not ev.identity.expected_publisher
}

other_repository(ev, o) if {
	prev := ev.context.previous_release.repository
	is_string(prev)
	prev != ""
	lower(prev) != lower(o.repository)
}

registry_host(url) := lower(split(trim_prefix(trim_prefix(url, "https://"), "http://"), "/")[0])

destination_allowed(ev) if {
	some d in ev.identity.allowed_destinations
	registry_host(d) == registry_host(ev.release.registry)
}

denials(ev) := {f |
	o := gate_origin(ev)
	some [rule, why] in [
		["pull_request_code", "release requested from pull-request code the repository has not merged"],
		["ref_not_expected", "release requested from a ref the publisher does not release from"],
		["unexpected_publisher", "release requested from another repository or workflow than the inventory's expected publisher"],
		["publisher_kind", "release requested by an identity whose kind does not publish"],
		["other_repository", "release requested from another repository than the package's previous release"],
		["destination_not_allowed", "release to a registry outside the identity's allowed destinations"],
	]
	deniable(rule, ev, o)
	f := {"rule": rule, "effect": "deny", "evidence": "hygiene", "reason": why}
}

deniable("pull_request_code", _, o) if from_pull_request(o)

deniable("ref_not_expected", ev, o) if {
	is_string(o.ref)
	not glob.match(expected_ref(ev), ["/"], o.ref)
}

deniable("unexpected_publisher", ev, o) if count(unexpected_publisher(ev, o)) > 0

deniable("publisher_kind", ev, _) if non_publisher_kind(ev)

deniable("other_repository", ev, o) if other_repository(ev, o)

deniable("destination_not_allowed", ev, _) if {
	count(ev.identity.allowed_destinations) > 0
	not destination_allowed(ev)
}

# The same request, as evidence about the credential: the run holds it, and it publishes where the inventory
# does not expect it to. The denial above stops the request; this revokes the credential.
misused(ev) := {f |
	o := gate_origin(ev)
	ev.identity.known == true # an unknown workflow has no credential on record (identity.inventory denies it)
	not holds_no_credential(o)
	some rule in ["unexpected_publisher", "publisher_kind", "other_repository"]
	deniable(rule, ev, o)
	f := {
		"rule": "publisher_credential_misused",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": "a publish by a workflow the inventory does not expect: its credential is revoked",
	}
}

findings(ev) := union({denials(ev), misused(ev)})
