# METADATA
# title: Sensitive actions need an identity the inventory knows, in force and allowed to do them
# description: >-
#   Applies to events of every source. An identity the inventory does not know (never registered, or removed
#   with a tombstone), one past its expiry, or one acting outside its allowed actions may not publish, release
#   or expose anything: the request is denied and the SOC alerted. Other actions by unknown identities are
#   decided and recorded (enrichment marks them unknown), not denied: inventories lag reality.
# custom:
#   severity: high
#   mode: enforce
#   effects: [alert, deny]
#   attack: ["T1078.004 Valid Accounts: Cloud Accounts"]
package nhiguard.identity.inventory

import rego.v1

# Function names are unique across the bundle (regopy 1.5.2 crashes on one name with two arities).
# Shared with policies/anomaly: what counts as sensitive is data (policies/data.yaml).
sensitive(ev) if {
	some prefix in data.nhiguard.params.sensitive_actions
	startswith(ev.action, prefix)
}

# An upload or change that makes content publicly reachable is an exposure, whatever its action is called.
sensitive(ev) if ev.cms.exposed_without_publish == true

findings(ev) := {f |
	sensitive(ev)
	some [rule, why] in [
		["unknown_identity", "sensitive action by an identity the inventory does not know"],
		["expired_identity", "sensitive action by an identity past its expiry"],
		["action_not_allowed", "sensitive action outside the identity's allowed actions"],
	]
	violated(rule, ev.identity)
	f := {"rule": rule, "effect": "deny", "reason": why}
}

violated("unknown_identity", identity) if {
	identity.known == false
	identity.kind == "unknown" # not "human", and not "external" (a public registry's own accounts)
}

violated("expired_identity", identity) if identity.expired == true

violated("action_not_allowed", identity) if identity.action_allowed == false
