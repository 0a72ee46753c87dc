"""KFP component: apply the retrain policy to a window."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def decide_retrain(
    snapshot: Input[Dataset],
    drift: Input[Artifact],
    store_uri: str,
    model_name: str,
    target: str,
    policy_json: str,
    now: str = "",
    run_label: str = "",
) -> NamedTuple("Outputs", [("retrain", bool), ("reasons", str)]):
    """Decide whether to retrain; ``reasons`` is a JSON list of readable strings."""
    import json
    from collections import namedtuple

    from refit import steps

    with open(drift.path, encoding="utf-8") as f:
        drift_result = json.load(f)
    out = steps.decide_retrain(
        snapshot.path,
        drift_result,
        store_uri,
        model_name,
        target,
        json.loads(policy_json),
        now=now or steps.utc_now(),
        run_label=run_label,
    )
    return namedtuple("Outputs", ["retrain", "reasons"])(out.retrain, json.dumps(out.reasons))
