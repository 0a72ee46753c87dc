"""The trigger service (``refit serve-triggers``): monitoring hooks and a scheduler start runs.

* ``config``: models, policies, limits (a JSON/YAML file).
* ``auth``: bearer token or HMAC signature; the secret from ``REFIT_HOOK_TOKEN(_FILE)``.
* ``payloads``: Alertmanager v4, GCS Pub/Sub push, generic bodies -> events.
* ``state``: SQLite state (dedupe, cooldowns, policy state, runs).
* ``service``: dedupe, policy decision, cooldown, in-flight limit, launch, audit.
* ``inputs``: the pipeline's inputs (compiled spec): run parameters checked, per-run arguments.
* ``launchers``: kfp, local (kfp.local), log.
* ``streaming``: the Page-Hinkley detectors of ``/hooks/stream``.
* ``http``: what the routes share (bounded authenticated reads, counted errors, decision lock).
* ``hooks``: the event hooks; ``approvals``: the approve and reject routes.
* ``app``: the FastAPI app (``/runs``, health, metrics).
"""
