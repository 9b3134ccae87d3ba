# METADATA
# title: Package versions must come from the package's established publisher
# description: >-
#   A new version published by another mechanism or identity than the package's previous release (a token
#   instead of CI trusted publishing, provenance dropped, a changed maintainer e-mail), or one that adds a
#   dependency first published days ago or adds install scripts, is denied for installation. Identities of ours
#   that installed such a version, before or after the denial, have their credentials revoked.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1195.001 Compromise Software Dependencies and Development Tools"]
package nhiguard.registry.publisher_integrity

import rego.v1

params := data.nhiguard.params.registry.publisher_integrity

is_publish(ev) if ev.action == "registry.package.publish"

changed(ev) := {f |
	is_publish(ev)
	prev := ev.publish.previous
	cur := ev.publish.publisher
	# Reasons never echo strings from input (see cms/public_exposure.rego).
	some [rule, why] in [
		["trusted_publishing_dropped", "published with a token, the previous release used trusted publishing"],
		["provenance_dropped", "no provenance attestation, the previous release had one"],
		["publisher_email_changed", "publisher e-mail differs from the previous release's"],
	]
	applies(rule, prev, cur)
	f := {"rule": rule, "effect": "deny", "evidence": "hygiene", "reason": why}
}

applies("trusted_publishing_dropped", prev, cur) if {
	prev.mechanism == "trusted_publishing"
	cur.mechanism != "trusted_publishing"
}

applies("provenance_dropped", prev, cur) if {
	prev.provenance
	not cur.provenance
}

applies("publisher_email_changed", prev, cur) if {
	prev.email != ""
	cur.email != prev.email
}

young_dependency(ev) := {f |
	is_publish(ev)
	some dep in object.keys(ev.context.added_dependency_age_days)
	age := ev.context.added_dependency_age_days[dep]
	is_number(age) # unknown age (null) does not fire; and regopy orders null against numbers unlike OPA
	age < params.min_dependency_age_days
	f := {
		"rule": "young_dependency_added",
		"effect": "deny",
		"reason": sprintf("adds a dependency first published %.1f days earlier (minimum %d)", [age, params.min_dependency_age_days]),
	}
}

install_scripts(ev) := {f |
	is_publish(ev)
	count(ev.publish.added_install_scripts) > 0
	f := {
		"rule": "install_script_added",
		"effect": "deny",
		"reason": sprintf("adds %d install script(s) that run on npm install", [count(ev.publish.added_install_scripts)]),
	}
}

denied(ev) := union({changed(ev), young_dependency(ev), install_scripts(ev)})

# Identities of ours that installed the version before it was denied lose their credentials
# ("targets": nhiguard resolves context.prior_installers that are known identities).
prior_installers(ev) := {f |
	count(denied(ev)) > 0
	n := count([i | some i in ev.context.prior_installers; i.known])
	n > 0
	f := {
		"rule": "installed_denied_version",
		"effect": "revoke",
		"evidence": "harm",
		"reason": sprintf("%d identities of ours installed this version before it was denied", [n]),
		"targets": "prior_installers",
	}
}

# An install of a version that was already denied: the proxy served it, so the installer's credential goes.
late_install(ev) := {f |
	ev.action == "registry.package.install"
	ev.context.version_denied
	f := {
		"rule": "installed_denied_version",
		"effect": "revoke",
		"evidence": "harm",
		"reason": "installed a version that was already denied",
	}
}

findings(ev) := union({denied(ev), prior_installers(ev), late_install(ev)})
