"""Quality of the per-identity baselines on the labelled scenario (fixed seeds): behaviour, not speed."""

from bench.anomaly import quality
from nhiguard.models.anomaly import AnomalyModels


def test_auc_is_at_least_0_8_and_beats_a_trivial_baseline():
    q = quality(seed=11, n_identities=120, events_per_identity=200)
    assert q["anomaly_auc_warm"] >= 0.8, q
    assert q["anomaly_auc_warm"] > q["anomaly_auc_baseline_warm"] + 0.1, q
    assert all(auc >= 0.75 for auc in q["auc_by_kind_warm"].values()), q["auc_by_kind_warm"]


def test_score_before_learn_and_a_burst_does_not_teach_itself():
    from bench.labelled import labelled_events

    events = [ev for ev, _ in labelled_events(1, 120, anomaly_rate=0.0, seed=3)]
    m = AnomalyModels(warmup_events=30)
    for ev in events:
        score, warm, x = m.score(ev)
        m.learn(ev, x)
    assert warm and 0.0 <= score <= 1.0 and set(x) == {"hour", "target", "source", "action", "burst"}
    last = events[-1]
    from dataclasses import replace

    burst = [
        replace(last, event_id=f"b{i}", occurred_at_ms=last.occurred_at_ms + 1000 * (i + 1)) for i in range(8)
    ]
    scores = []
    for ev in burst:
        _, _, x = m.score(ev)
        scores.append(x["burst"])
        m.learn(ev, x)  # even if the core learned every burst event, the habit grows one step at a time
    assert scores[-1] > 0.5
