# METADATA
# title: A credential used from outside the networks the inventory allows it revokes it
# description: >-
#   Applies to events of every source that log the client address a credential was used from (registry proxy
#   installs, requests and publishes). When the acting identity's inventory record declares the networks its
#   credential may be used from (`networks`: CIDRs, as an npm token's CIDR allow-list or a cloud key's
#   source-IP condition) and the address lies outside all of them, the credential is in use from somewhere it
#   may not be: it is revoked (evidence: compromise) and the request denied. Enrichment judges the address
#   (`input.identity.address_in_networks`), as regopy has no CIDR builtins. An address that is not an IP
#   address only alerts: the source's log, not the credential, is in question. Identities that declare no
#   networks, and events that carry no address, are not judged here.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, revoke]
#   attack: ["T1078 Valid Accounts", "T1528 Steal Application Access Token"]
package nhiguard.identity.networks

import rego.v1

findings(ev) := {f |
	ev.identity.address_in_networks == false
	f := {
		"rule": "outside_networks",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": "credential used from an address outside every network its inventory record allows: it is revoked",
	}
} | {f |
	ev.identity.address_unreadable == true
	f := {
		"rule": "address_unreadable",
		"effect": "alert",
		"evidence": "hygiene",
		"reason": "the client address of a network-scoped credential is not an IP address: it cannot be judged",
	}
}
