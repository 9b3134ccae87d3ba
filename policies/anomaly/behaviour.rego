# METADATA
# title: A credential used far outside its identity's habits, on several counts at once, is revoked
# description: >-
#   Second stage: evaluated only for events that break several habits of a warmed-up identity (the model
#   does not learn them), with the score, the surprise of each independent group of habits (when, what,
#   where, rate), the top features, the first stage's verdict and the rules whose REVOKE of the actor is in
#   force, in input.anomaly. The model's score is evidence of several habits broken at once, never of one.
#   A known identity whose event breaks at least min_groups groups, each at group_surprise or more, with a
#   score at or above revoke_score, on an event the rule policies let through, has its credential revoked (evidence: compromise, the credential looks to be in other
#   hands; decide also denies the request), and so is each such event while that REVOKE is in force. Other
#   activity scored at or above the model's threshold is alerted on, without a command.
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

# The groups of habits this event breaks. `some k, v` in a comprehension is misparsed by regopy 1.5.2:
# iterate the keys.
broken_habits(ev) := [g |
	some g in object.keys(ev.anomaly.groups)
	is_number(ev.anomaly.groups[g])
	ev.anomaly.groups[g] >= params.group_surprise
]

# Why each condition: warm, or there is no habit to break; known to the inventory, or the credential is not
# ours to revoke (an external publisher's account, or an identity the inventory rule already handles); let
# through by the rule policies, because an event they stopped is escalated by its own rule, and an identity
# whose events are denied never learns them, so they stay new to its baseline.
judgeable(ev) if {
	ev.anomaly.warm == true
	ev.identity.known == true
	ev.anomaly.rules_verdict == "allow"
	is_number(ev.anomaly.score)
}

# Several groups (min_groups, three of four: see policies/data.yaml), because one surprise (a release at
# night, a new runner, a first weekend) is ordinary for someone, and so are some pairs; three always include
# what it acts on or where from, as time and intensity alone change when a job runs, not whose hands the
# credential is in.
credential_misused(ev) if {
	judgeable(ev)
	ev.anomaly.score >= params.revoke_score
	count(broken_habits(ev)) >= params.min_groups
}

# While this rule's REVOKE of the credential is in force (the hour after it), a further event that breaks
# several habits (the model does not learn it) is the same hands at work: its request is refused too.
credential_misused(ev) if {
	judgeable(ev)
	"anomaly.behaviour.habits_broken" in ev.anomaly.revoked
	ev.anomaly.score >= params.episode_score
}

findings(ev) := {f |
	credential_misused(ev)
	f := {
		"rule": "habits_broken",
		"effect": "revoke",
		"evidence": "compromise",
		"reason": sprintf("%d independent habits broken at once (when, what, where, rate): credential likely in other hands", [count(broken_habits(ev))]),
	}
} | {f |
	ev.anomaly.warm == true
	is_number(ev.anomaly.score)
	ev.anomaly.score >= ev.anomaly.threshold
	not credential_misused(ev)
	# Worth a look, not evidence that the credential is in other hands.
	f := {"rule": "activity_anomalous", "effect": "alert", "evidence": "hygiene", "reason": "activity outside this identity's habits"}
}
