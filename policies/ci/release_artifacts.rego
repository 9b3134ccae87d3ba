# METADATA
# title: Public releases must not ship prohibited artifacts or balloon in size
# description: >-
#   A pre-publish gate for CI releases to a public registry. Denies the publish when the package contains a
#   prohibited artifact type (source maps, .env files, private keys, npm credentials, debug bundles) or is far
#   larger than the package's previous release. Files a pattern matches that are not what it prohibits are
#   exempt by name and size (harmless_files): environment templates such as .env.example, and TypeScript
#   declaration maps (*.d.ts.map). A packaging mistake is hygiene: the release is stopped, no credential goes.
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

# A file the category's pattern matches that is not what it prohibits: a harmless name, and small (a 40 MB
# "types.d.ts.map" is not a declaration map). Sizes come from `npm pack`; guard them (regopy orders null).
harmless_file(category, f) if {
	regex.match(params.harmless_files[category], f.path)
	is_number(f.size)
	f.size <= params.harmless_max_bytes
}

# Reasons never echo strings from input (see cms/public_exposure.rego): counts and category names only. The
# files are named by their indices into release.files ("select"): nhiguard copies their paths as evidence.
prohibited_indices(ev, category) := [i |
	# `some i, f in arr` inside a comprehension is misparsed by regopy 1.5.2 (Invalid collection): index it.
	some i
	f := ev.release.files[i]
	regex.match(params.prohibited_files[category], f.path)
	not harmless_file(category, f)
]

prohibited(ev) := {f |
	is_public_release(ev)
	# `some k, v in obj` inside a comprehension is misparsed by regopy 1.5.2: iterate keys instead.
	some category in object.keys(params.prohibited_files)
	idx := prohibited_indices(ev, category)
	count(idx) > 0
	f := {
		"rule": sprintf("prohibited_%s", [category]),
		"effect": "deny",
		"evidence": "hygiene",
		"reason": sprintf("would publish %d %s file(s) to a public registry", [count(idx), category]),
		"show": ["package", "version", "access", "registry", "files"],
		"select": {"files": idx},
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
		"evidence": "hygiene",
		"reason": sprintf("package is %.1fx the size of the previous release (limit %.1fx)", [ev.context.size_ratio, params.max_size_ratio]),
	}
}

findings(ev) := union({prohibited(ev), size_jump(ev)})
