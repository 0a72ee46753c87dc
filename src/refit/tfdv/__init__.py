"""The TFDV engine: everything that runs TensorFlow Data Validation or exists only for it.

refit's SDK environment never imports TensorFlow: TFDV runs in its own interpreter
(``REFIT_TFDV_PYTHON``). :mod:`refit.tfdv.client` drives the standalone :mod:`refit.tfdv.worker`
script there; :mod:`refit.tfdv.engine` turns its outputs into a validation result
(:class:`refit.validation.engines.EngineResult`) and adds the checks TFDV leaves to the caller;
:mod:`refit.tfdv.drift` judges feature drift with TFDV's drift comparators. The TFDV file
formats refit's native engine also reads and writes (statistics, schema, anomalies, drift
comparators) live in :mod:`refit.validation`. Why TFDV is optional and out of process:
docs/decisions/0004-native-statistics-tfdv-optional.md.
"""
