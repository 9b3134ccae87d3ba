# METADATA
# title: A registry publish by an identity the inventory does not expect to publish that way revokes it
# description: >-
#   Applies to package publishes reported by any registry source (registry.package.publish). When the acting
#   identity is one of ours and its inventory record says it does not publish (its kind is not
#   package_publisher and it names no expected_publisher: an install or deploy token), or names an
#   expected_publisher mechanism (trusted_publishing or token) other than the one the publish used, the
#   publish is a credential used where the inventory does not expect it: the version is denied and the
#   credential revoked (evidence: compromise). Publishers outside the organisation (external) and unknown
#   identities are judged elsewhere (registry.publisher_integrity, identity.inventory). Release requests at the
#   gate are judged by ci.release_origin.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1078 Valid Accounts", "T1195.002 Compromise Software Supply Chain"]
package nhiguard.identity.expected_publisher

import rego.v1

# Function names are unique across the bundle (regopy 1.5.2 crashes on one name with two arities).
publishes_as_ours(ev) if {
	startswith(ev.action, "registry.package.publish")
	ev.identity.known == true
}

not_a_publisher(ev) if {
	ev.identity.kind != "package_publisher"
	not ev.identity.expected_publisher
}

# Only the mechanisms a registry reports are compared, so a source that names none (or another word) for how
# a version was published never counts as a mismatch.
other_mechanism(ev) if {
	known := {"trusted_publishing", "token"}
	want := ev.identity.expected_publisher.mechanism
	got := ev.publish.publisher.mechanism
	want in known
	got in known
	want != got
}

unexpected(ev) := [why |
	some [rule, why] in [
		["kind", "a publish by an identity whose inventory record does not publish"],
		["mechanism", "a publish by another mechanism than the inventory expects of this identity"],
	]
	expectation_broken(rule, ev)
]

expectation_broken("kind", ev) if not_a_publisher(ev)

expectation_broken("mechanism", ev) if other_mechanism(ev)

findings(ev) := {f |
	publishes_as_ours(ev)
	some why in unexpected(ev)
	f := {"rule": "unexpected_publish", "effect": "deny", "reason": why}
} | {f |
	publishes_as_ours(ev)
	count(unexpected(ev)) > 0
	f := {
		"rule": "publish_credential_misused",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": "a publish the inventory does not expect of this identity: its credential is revoked",
	}
}
