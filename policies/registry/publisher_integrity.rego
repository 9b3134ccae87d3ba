# METADATA
# title: Package versions must come from the package's established publisher
# description: >-
#   A new version is judged against the package's own publisher history (every earlier release's publisher
#   that was not denied), not only the previous release, so long-standing maintainers who take turns change
#   nothing. An e-mail or account no earlier release was published with, or provenance dropped, alone is
#   hygiene (an alert). A version is denied when it drops the trusted publishing of the release before it, when
#   a publisher new to the package adds a dependency (the axios pattern), when it adds install scripts or a
#   malicious new dependency (a package days old with install scripts, or one whose matching version was denied
#   for harm), or a dependency first published days ago. Installs of a denied version are denied; identities of
#   ours that installed a version denied for harm, before or after the denial, lose their credentials. Installs
#   of a package that only a denied version brings in, of a version of a package of ours that no allowed proxy
#   publish accounts for (dependency confusion, a version pushed by a denied publish), and of a version whose
#   looked-up document shows install scripts in a package days old are denied too.
# custom:
#   severity: critical
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1195.001 Compromise Software Dependencies and Development Tools"]
package nhiguard.registry.publisher_integrity

import rego.v1

params := data.nhiguard.params.registry.publisher_integrity

# Function names are unique across the bundle (regopy 1.5.2): this policy's start with pi_.
# A hook publish (a proxy publish has no publish facts: registry.proxy_publish judges it).
pi_history(ev) := h if {
	ev.action == "registry.package.publish"
	ev.publish.publisher
	h := ev.context.publisher_history
}

# Reasons never echo strings from input (see cms/public_exposure.rego).
pi_publisher(ev) := {f |
	h := pi_history(ev)
	cur := ev.publish.publisher
	some [rule, effect, evidence, why] in [
		["trusted_publishing_dropped", "deny", "compromise", "published with a token, the release before it used trusted publishing"],
		["provenance_dropped", "alert", "hygiene", "no provenance attestation, the release before it had one"],
		["publisher_new", "alert", "hygiene", "published by an account and e-mail no earlier release was published with"],
		["publisher_email_changed", "alert", "hygiene", "published with an e-mail no earlier release of this account used"],
		["publisher_changed_adds_dependency", "deny", "compromise", "a publisher new to the package adds a dependency"],
	]
	pi_applies(rule, h, cur, ev)
	f := {"rule": rule, "effect": effect, "evidence": evidence, "reason": why}
}

pi_applies("trusted_publishing_dropped", h, cur, _) if {
	h.previous.mechanism == "trusted_publishing"
	cur.mechanism != "trusted_publishing"
}

pi_applies("provenance_dropped", h, cur, _) if {
	h.previous.provenance == true
	not cur.provenance
}

pi_applies("publisher_new", h, cur, _) if pi_new_account(h, cur)

pi_applies("publisher_email_changed", h, cur, _) if pi_new_email(h, cur)

pi_applies("publisher_changed_adds_dependency", h, cur, ev) if {
	pi_changed(h, cur)
	count(ev.context.added_dependencies) > 0
}

# Trusted publishing binds a publish to the package's own workflow: moving to it is no new account.
pi_new_account(h, cur) if {
	h.releases > 0
	cur.mechanism != "trusted_publishing"
	not h.name_published
	not h.email_published
}

pi_new_email(h, cur) if {
	h.releases > 0
	h.name_published
	not h.email_published
	cur.email != ""
}

pi_changed(h, cur) if pi_new_account(h, cur)

pi_changed(h, cur) if pi_new_email(h, cur)

pi_dependencies(ev) := {f |
	pi_history(ev)
	some dep in ev.context.added_dependencies
	some [rule, evidence, why] in [
		["malicious_dependency_added", "harm", "adds a dependency that is days old and runs install scripts, or whose matching version was denied for harm"],
		["young_dependency_added", "hygiene", sprintf("adds a dependency first published less than %d days earlier", [params.min_dependency_age_days])],
	]
	pi_dependency_is(rule, dep)
	f := {"rule": rule, "effect": "deny", "evidence": evidence, "reason": why}
}

pi_dependency_is("malicious_dependency_added", dep) if dep.denied_grade == "harm"

pi_dependency_is("malicious_dependency_added", dep) if {
	dep.install_scripts > 0
	pi_young(dep.age_days)
}

pi_dependency_is("young_dependency_added", dep) if pi_young(dep.age_days)

# Unknown age (null) is not young; and regopy orders null against numbers unlike OPA.
pi_young(age) if {
	is_number(age)
	age < params.min_dependency_age_days
}

pi_scripts(ev) := {f |
	pi_history(ev)
	n := count(ev.context.added_install_scripts)
	n > 0
	f := {
		"rule": "install_script_added",
		"effect": "deny",
		"evidence": "harm",
		"reason": sprintf("adds %d install script(s) that run on npm install", [n]),
	}
}

pi_harmful(ev) := {f | some f in union({pi_dependencies(ev), pi_scripts(ev)}); f.evidence == "harm"}

# Identities of ours that installed a version denied for harm before the denial lose their credentials
# ("targets": nhiguard resolves context.prior_installers that are known identities).
pi_prior_installers(ev) := {f |
	count(pi_harmful(ev)) > 0
	n := count([i | some i in ev.context.prior_installers; i.known])
	n > 0
	f := {
		"rule": "installed_before_denial",
		"effect": "revoke",
		"evidence": "harm",
		"reason": sprintf("%d identities of ours installed this version before it was denied for harm", [n]),
		"targets": "prior_installers",
	}
}

pi_install(ev) := c if {
	ev.action == "registry.package.install"
	c := ev.context
}

# An install of a version already denied: the proxy served it. Denied for compromise or harm: the version is
# denied again at the proxy; for harm its install scripts ran under the installer's credential, which goes.
pi_installs(ev) := {f |
	c := pi_install(ev)
	some [when, rule, effect, evidence, why] in [
		["denied_compromise", "denied_version_installed", "deny", "compromise", "installed a version that was denied"],
		["denied_harm", "denied_version_installed", "deny", "harm", "installed a version that was denied for harm"],
		["denied_harm", "installed_harmful_version", "revoke", "harm", "installed a version denied for harm: its install scripts ran under this credential"],
		["denied_hygiene", "denied_version_installed", "alert", "hygiene", "installed a version that was denied for hygiene only"],
		["added_by_denied", "dependency_of_denied_version", "deny", "compromise", "installed a package that only a denied version brings in"],
		["unvouched", "unvouched_internal_version", "deny", "compromise", "installed a new version of a package published through our proxy that no allowed publish accounts for"],
		["young_scripts", "young_package_install_script", "deny", "harm", "installed a version with install scripts of a package first published days ago"],
		["young_scripts", "installed_harmful_version", "revoke", "harm", "installed a version with install scripts of a package first published days ago: they ran under this credential"],
	]
	pi_install_when(when, c)
	f := {"rule": rule, "effect": effect, "evidence": evidence, "reason": why}
}

pi_install_when("denied_compromise", c) if c.denied_grade == "compromise"

pi_install_when("denied_harm", c) if c.denied_grade == "harm"

pi_install_when("denied_hygiene", c) if c.denied_grade == "hygiene"

pi_install_when("added_by_denied", c) if c.added_by_denied in {"compromise", "harm"}

pi_install_when("unvouched", c) if c.unvouched_version == true

# Looked up before the core ran; an unavailable document says nothing (never a command on its own).
pi_install_when("young_scripts", c) if {
	c.lookup.status == "found"
	c.lookup.install_scripts > 0
	pi_young(c.lookup.package_age_days)
}

findings(ev) := union({pi_publisher(ev), pi_dependencies(ev), pi_scripts(ev), pi_prior_installers(ev), pi_installs(ev)})
