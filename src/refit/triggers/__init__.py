"""The trigger service (``refit serve-triggers``): monitoring hooks and a scheduler start runs.

* ``config``: models, policies, limits (a JSON/YAML file).
* ``auth``: bearer token or HMAC signature; the secret from ``REFIT_HOOK_TOKEN(_FILE)``.
* ``payloads``: Alertmanager v4, GCS Pub/Sub push, generic bodies -> events.
* ``state``: SQLite state (dedupe, cooldowns, policy state, runs).
* ``service``: dedupe, policy decision, cooldown, in-flight limit, launch, audit.
* ``inputs``: the pipeline's inputs (compiled spec): run parameters checked, per-run arguments.
* ``launchers``: kfp, local (kfp.local), log.
* ``app``: the FastAPI app.
"""
