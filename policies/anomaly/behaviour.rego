# METADATA
# title: A sensitive action far outside the identity's own habits revokes its credential
# description: >-
#   Second stage: evaluated only for events the identity's behavioural model flags (warmed up, and scored at
#   or above the model's threshold), with the score and its top features in input.anomaly. A sensitive action
#   (publish, release, exposure; the list is policies/data.yaml sensitive_actions) scored at or above
#   revoke_score is denied and the credential revoked; other flagged activity is alerted on, without a command.
# custom:
#   severity: high
#   mode: enforce
#   effects: [alert, revoke]
#   attack: ["T1078 Valid Accounts"]
package nhiguard.anomaly.behaviour

import rego.v1

params := data.nhiguard.params.anomaly.behaviour

# Function names are unique across the bundle: regopy 1.5.2 crashes compiling two packages that define a
# function of the same name with different arities.
anomalous_sensitive(ev) if {
	ev.anomaly.score >= params.revoke_score
	some prefix in data.nhiguard.params.sensitive_actions
	startswith(ev.action, prefix)
}

anomalous_sensitive(ev) if {
	ev.anomaly.score >= params.revoke_score
	ev.cms.exposed_without_publish == true
}

findings(ev) := {f |
	ev.anomaly.warm == true
	is_number(ev.anomaly.score)
	anomalous_sensitive(ev)
	f := {"rule": "sensitive_action_anomalous", "effect": "revoke", "evidence": "compromise", "reason": "sensitive action far outside this identity's baseline"}
} | {f |
	ev.anomaly.warm == true
	is_number(ev.anomaly.score)
	not anomalous_sensitive(ev)
	f := {"rule": "activity_anomalous", "effect": "alert", "reason": "activity outside this identity's baseline"}
}
