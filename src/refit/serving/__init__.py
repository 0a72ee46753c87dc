"""The local model server: registry versions over KServe's V2 (Open Inference) protocol.

The embedded mode's deployment target serves refit's registry the way KServe serves a cluster:
the V2 endpoints (``/v2/models/{name}/infer``, health and metadata), a traffic split between the
``champion`` alias and the canary that the rollout controller writes to the registry, and
Prometheus metrics per revision for the rollout checks. ``refit serve-model --store URI --model
NAME`` starts it.

It is a small FastAPI app, not KServe's own Python model server: the ``kserve`` package cannot be
installed beside refit, because kfp pins ``kubernetes<31`` and the kserve SDK needs a newer
kubernetes client (it breaks with the versions kfp allows).

Modules:

- `refit.serving.protocol`: V2 request decoding and checking (pure);
- `refit.serving.tables`: a checked request turned into the model's feature table (pure);
- `refit.serving.outputs`: V2 answers and model metadata (pure);
- `refit.serving.routing`: the rollout state and the seeded champion/canary split;
- `refit.serving.faults`: fault injection for canary drills (off by default);
- `refit.serving.metrics`: the Prometheus metrics (names are a contract with the checks);
- `refit.serving.shadow`: shadow copies answered by the challenger in a child process, off the
  response path, and compared with the champion's answers;
- `refit.serving.feedback`: A/B feedback events, appended to a JSON Lines file;
- `refit.serving.server`: `ModelServer`, answering each endpoint, and `ModelCache`;
- `refit.serving.app`: the HTTP app, `create_app`.
"""

from refit.serving.app import create_app
from refit.serving.faults import Fault, check_faults, parse_fault, parse_faults
from refit.serving.metrics import REQUEST_DURATION, REQUESTS, TRAFFIC_PERCENT, ServingMetrics
from refit.serving.outputs import model_metadata, predict_outputs
from refit.serving.protocol import (
    InferRequest,
    InputTensor,
    RequestLimits,
    RequestTooLarge,
    parse_infer_request,
)
from refit.serving.routing import (
    CANARY_STATE_KEY,
    RolloutState,
    TrafficRouter,
    choose_version,
    parse_canary_state,
    read_rollout_state,
)
from refit.serving.server import ModelCache, ModelServer
from refit.serving.tables import request_to_table

__all__ = [
    "CANARY_STATE_KEY",
    "REQUESTS",
    "REQUEST_DURATION",
    "TRAFFIC_PERCENT",
    "Fault",
    "InferRequest",
    "InputTensor",
    "ModelCache",
    "ModelServer",
    "RequestLimits",
    "RequestTooLarge",
    "RolloutState",
    "ServingMetrics",
    "TrafficRouter",
    "check_faults",
    "choose_version",
    "create_app",
    "model_metadata",
    "parse_canary_state",
    "parse_faults",
    "parse_fault",
    "parse_infer_request",
    "predict_outputs",
    "read_rollout_state",
    "request_to_table",
]
