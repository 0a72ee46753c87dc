"""What the warm task server imports once (:mod:`refit.pipelines.warm_tasks`).

The modules every refit task imports (kfp's executor, refit's steps and the artifact types)
and the heavy ones some import (scikit-learn's metrics, scipy.stats, XGBoost, skops), so that a
forked task finds them loaded. Importing is all it does: nothing here starts a thread pool.
"""

import os

# what tasks see (kfp's executor sets it for the task): refit.components then loads only the
# artifact types, as in a task
os.environ["_KFP_RUNTIME"] = "true"

import kfp.dsl.executor_main  # noqa: F401
import scipy.stats  # noqa: F401
import sklearn.metrics  # noqa: F401
import skops.io  # noqa: F401
import xgboost  # noqa: F401

import refit.components.types
import refit.steps  # noqa: F401
