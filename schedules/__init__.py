"""Learning-rate decay laws on top of ``torch.optim.lr_scheduler``; imports only torch and the stdlib.

law = law_from_config(trial_config)        # {"schedule": "step", "gamma": 0.5, "warmup": 3, ...}
stepper = attach(optimizer, law)           # lr = base_lr * law(0)
for epoch ...: train; val = validate(); stepper.step(val)
"""

from schedules.laws import (
    LAWS,
    Constant,
    Cosine,
    Exponential,
    Inverse,
    Law,
    Plateau,
    Step,
    Warmup,
    law_config,
    law_from_config,
    law_params,
)
from schedules.plot import describe_laws, plot_laws
from schedules.stepper import Stepper, attach

__all__ = [
    "LAWS",
    "Constant",
    "Cosine",
    "Exponential",
    "Inverse",
    "Law",
    "Plateau",
    "Step",
    "Stepper",
    "Warmup",
    "attach",
    "describe_laws",
    "law_config",
    "law_from_config",
    "law_params",
    "plot_laws",
]
