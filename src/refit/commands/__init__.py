"""The ``refit`` command's sub-commands, one module per area; each exposes ``register(app)``."""
