# METADATA
# title: Non-public CMS content must not become publicly reachable
# description: >-
#   Denies a change that makes CMS content marked non-public (restricted tags such as internal, draft,
#   confidential, embargoed: the adapter lists them in cms.restricted_tags) publicly reachable, by an upload to
#   the public asset host or by publishing; the DENY names the asset or the entry. Revokes the credential of an
#   identity whose restricted exposures within a window reach the window's threshold and far exceed its own
#   typical day (evidence of compromise: the credential no longer does what it is for). Unmarked content
#   reachable before a publish is ordinary when it is media (catalog images published a minute later); an
#   unmarked document is alerted on, without a command.
# custom:
#   severity: high
#   mode: enforce
#   effects: [alert, deny, revoke]
#   attack: ["T1530 Data from Cloud Storage", "T1567 Exfiltration Over Web Service"]
package nhiguard.cms.public_exposure

import rego.v1

params := data.nhiguard.params.cms.public_exposure

# Reasons never interpolate strings: regopy 1.5.2 emits strings from input (and some derived from them)
# unescaped, so a quote in an asset name would break the whole query. Reasons carry counts and this policy's
# own text; the decision record carries the event (its tags, its entity).
restricted_exposure(ev) if {
	ev.cms.publicly_reachable == true
	count(ev.cms.restricted_tags) > 0
}

exposure_route(via) := "by a default-public upload, without a publish" if {
	via == "upload"
} else := "by publishing" if {
	via == "publish"
} else := "while already public"

restricted_public(ev) := {f |
	restricted_exposure(ev)
	f := {
		"rule": "restricted_content_public",
		"effect": "deny",
		"evidence": "hygiene",
		"reason": sprintf("content with %d non-public tag(s) made publicly reachable %s", [count(ev.cms.restricted_tags), exposure_route(ev.cms.via)]),
	}
}

media_file(ev) if {
	some prefix in params.media_types
	startswith(lower(ev.cms.content_type), prefix)
}

# Unmarked and not tagged public, reachable before any publish: ordinary for media, worth a look for documents.
default_public_upload(ev) := {f |
	ev.cms.exposed_without_publish == true
	count(ev.cms.restricted_tags) == 0
	not media_file(ev)
	f := {
		"rule": "default_public_upload",
		"effect": "alert",
		"evidence": "hygiene",
		"reason": "an unmarked document is reachable by public URL before any publish (default-public upload)",
	}
}

# The identity's restricted exposures per minute (index 0: this event's minute, this event included), and its
# typical day, come from its state (enrichment); windows, thresholds and the factor are data.
exposure_rate(ev) := {f |
	restricted_exposure(ev)
	typical := ev.context.exposure_typical_day
	is_number(typical) # regopy: null >= n is true
	some window in params.exposure_windows
	n := sum(array.slice(ev.context.exposure_minutes, 0, window.minutes))
	n >= window.threshold
	n > params.beyond_typical_day * typical
	f := {
		"rule": "exposure_rate",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": sprintf("%d restricted items made public by this identity within %d minutes (threshold %d; its typical day: %d)", [n, window.minutes, window.threshold, typical]),
	}
}

findings(ev) := union({restricted_public(ev), default_public_upload(ev), exposure_rate(ev)})
