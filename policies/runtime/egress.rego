# METADATA
# title: A workload of an identity connects only where the identity's inventory record allows
# description: >-
#   Applies to outbound connections a runtime sensor saw (Tetragon process_connect or a connect kprobe, a
#   Falco alert on a connect) from a workload the inventory joins to an identity that declares its
#   allowed_destinations (hosts, URLs, IP addresses or CIDRs). Enrichment judges the destination
#   (input.identity.destination_allowed; regopy has no CIDR builtins). A connection outside them is denied
#   (the process is stopped). When the process is a dependency's install script, or one it started, and the
#   identity holds CI or publishing credentials (params.revoke_kinds), the identity's credentials are
#   revoked too (evidence: compromise): code that arrived with a dependency ran where the build's tokens are
#   readable and reached a destination the inventory says the build never reaches, which is what the axios
#   install script's remote-access tool did. Not harm: nothing shows the credential was used yet, only that
#   it is exposed to code talking to an unknown host. The networks listed are the whole address allow-list
#   (a sensor that sees only addresses, as Tetragon does, is judged by them); an install script's address
#   that cannot be judged (the identity lists host names only) alerts, so that the networks get listed.
#   Identities that declare no destinations, and workloads the inventory does not join, are not judged.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1195.002 Compromise Software Supply Chain", "T1071 Application Layer Protocol", "T1041 Exfiltration Over C2 Channel"]
package nhiguard.runtime.egress

import rego.v1

params := data.nhiguard.params.runtime.egress

# Function names are unique across the bundle (regopy 1.5.2): this policy's start with eg_.
# Reasons never echo strings from input: the decision record and its evidence carry the destination.
eg_outside(ev) if {
	ev.process.kind == "connect"
	ev.identity.destination_allowed == false
}

eg_install_script_credentials(ev) if {
	ev.process.install_script == true
	ev.identity.kind in params.revoke_kinds
}

findings(ev) := {f |
	eg_outside(ev)
	f := {
		"rule": "destination_not_allowed",
		"effect": "deny",
		"evidence": "hygiene",
		"reason": "connection to a destination outside the identity's allowed destinations",
	}
} | {f |
	eg_outside(ev)
	eg_install_script_credentials(ev)
	f := {
		"rule": "install_script_egress",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": "a dependency's install script connected outside the allowed destinations of an identity holding CI or publishing credentials: they are revoked",
	}
} | {f |
	ev.process.kind == "connect"
	ev.process.install_script == true
	ev.identity.destination_unjudged == true
	f := {
		"rule": "destination_unjudged",
		"effect": "alert",
		"evidence": "hygiene",
		"reason": "an install script connected to an address the identity's allowed destinations cannot judge (they list host names only)",
	}
}
