# METADATA
# title: Non-public CMS content must not become publicly reachable
# description: >-
#   Denies any change that makes a CMS asset or entry tagged as non-public (draft, internal, confidential,
#   restricted, embargoed) publicly reachable, and any upload that is reachable by URL before it was ever
#   published (a default-public upload). Revokes the credential of an identity that exposes content in a burst.
# custom:
#   severity: high
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1530 Data from Cloud Storage", "T1567 Exfiltration Over Web Service"]
package nhiguard.cms.public_exposure

import rego.v1

params := data.nhiguard.params.cms.public_exposure

# Reasons never interpolate strings: regopy 1.5.2 emits strings from input (and some derived from them)
# unescaped, so a quote in an asset name would break the whole query. The event record carries the details.
restricted_tags(ev) := {t | some t in params.restricted_tags; t in ev.cms.tags}

restricted_public(ev) := {f |
	ev.cms.publicly_reachable
	tags := restricted_tags(ev)
	count(tags) > 0
	f := {
		"rule": "restricted_content_public",
		"effect": "deny",
		"evidence": "hygiene",
		"reason": sprintf("content with %d non-public tag(s) would become publicly reachable", [count(tags)]),
	}
}

default_public_upload(ev) := {f |
	ev.cms.exposed_without_publish
	f := {
		"rule": "default_public_upload",
		"effect": "deny",
		"reason": "reachable by public URL without ever being published (default-public upload)",
	}
}

exposure_burst(ev) := {f |
	is_number(ev.context.exposures_10m) # regopy: null >= n is true
	ev.context.exposures_10m >= params.burst_threshold
	f := {
		"rule": "exposure_burst",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": sprintf("%d unpublished assets exposed by this identity within 10 minutes (threshold %d)", [ev.context.exposures_10m, params.burst_threshold]),
	}
}

findings(ev) := union({restricted_public(ev), default_public_upload(ev), exposure_burst(ev)})
