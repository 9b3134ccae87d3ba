# METADATA
# title: Public releases must not ship prohibited artifacts or balloon in size
# description: >-
#   A pre-publish gate for CI releases to a public registry. Denies the publish when the package contains a
#   prohibited artifact type (source maps, .env files, private keys, npm credentials, debug bundles) or is far
#   larger than the package's previous release.
# custom:
#   severity: high
#   mode: enforce
#   effects: [alert, deny]
#   attack: ["T1213 Data from Information Repositories", "T1552.001 Credentials In Files"]
package nhiguard.ci.release_artifacts

import rego.v1

params := data.nhiguard.params.ci.release_artifacts

is_public_release(ev) if {
	ev.action == "ci.release.publish_request"
	ev.release.access == "public"
}

# Reasons never echo strings from input (see cms/public_exposure.rego): counts and category names only.
matches(ev, pattern) := [f.path | some f in ev.release.files; regex.match(pattern, f.path)]

prohibited(ev) := {f |
	is_public_release(ev)
	# `some k, v in obj` inside a comprehension is misparsed by regopy 1.5.2: iterate keys instead.
	some category in object.keys(params.prohibited_files)
	paths := matches(ev, params.prohibited_files[category])
	count(paths) > 0
	f := {
		"rule": sprintf("prohibited_%s", [category]),
		"effect": "deny",
		"reason": sprintf("would publish %d %s file(s) to a public registry", [count(paths), category]),
	}
}

size_jump(ev) := {f |
	is_public_release(ev)
	# regopy 1.5.2 evaluates `null >= 3.0` as true (OPA: false); without a previous release there is no ratio.
	is_number(ev.context.size_ratio)
	ev.context.size_ratio >= params.max_size_ratio
	f := {
		"rule": "size_jump",
		"effect": "deny",
		"reason": sprintf("package is %.1fx the size of the previous release (limit %.1fx)", [ev.context.size_ratio, params.max_size_ratio]),
	}
}

findings(ev) := union({prohibited(ev), size_jump(ev)})
