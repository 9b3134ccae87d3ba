# METADATA
# title: Publishes through the registry proxy only by the inventory's publishers, their expected way
# description: >-
#   A publish through the registry proxy (Verdaccio `PUT /<package>`, a dist-tag moved, a change to the package
#   document), accepted or only tried, by an identity the inventory does not know or does not allow to publish,
#   or by one whose expected publisher is another mechanism than the proxy's token publishes, is denied: the
#   proxy withdraws what it put there. A known identity that did publish what its inventory record does not
#   allow (a CI install token pushing a package) shows its credential in the wrong hands: it is revoked.
# custom:
#   severity: high
#   mode: enforce
#   attack: ["T1195.002 Compromise Software Supply Chain", "T1078.004 Valid Accounts: Cloud Accounts"]
#   effects: [alert, deny, revoke]
package nhiguard.registry.proxy_publish

import rego.v1

# Function names are unique across the bundle (regopy 1.5.2): this policy's start with pp_.
pp_publish(ev) := p if {
	ev.action == "registry.package.publish"
	p := ev.proxy_publish
}

# Reasons never echo strings from input (see cms/public_exposure.rego).
findings(ev) := {f |
	p := pp_publish(ev)
	some [rule, effect, why] in [
		["publisher_not_allowed", "deny", "published through the registry proxy by an identity the inventory does not allow to publish"],
		["publisher_credential_misused", "revoke", "a known credential published through the registry proxy, which its inventory record does not allow"],
		["publish_mechanism_unexpected", "deny", "published through the registry proxy by an identity whose expected publisher is another mechanism"],
		["publish_mechanism_unexpected", "revoke", "a credential expected to publish another way published through the registry proxy"],
	]
	pp_violates(rule, effect, ev.identity, p)
	f := {"rule": rule, "effect": effect, "evidence": "compromise", "reason": why}
}

pp_violates("publisher_not_allowed", "deny", identity, _) if identity.known == false

pp_violates("publisher_not_allowed", "deny", identity, _) if identity.action_allowed == false

pp_violates("publisher_credential_misused", "revoke", identity, p) if {
	identity.known == true
	identity.action_allowed == false
	p.accepted == true
}

pp_violates("publish_mechanism_unexpected", "deny", identity, _) if pp_other_mechanism(identity)

pp_violates("publish_mechanism_unexpected", "revoke", identity, p) if {
	pp_other_mechanism(identity)
	p.accepted == true
}

# The proxy takes token publishes only: an identity expected to publish by trusted publishing (its CI
# workflow's OIDC) does not publish here.
pp_other_mechanism(identity) if {
	identity.known == true
	m := object.get(identity, ["expected_publisher", "mechanism"], "")
	m != ""
	m != "token"
}
