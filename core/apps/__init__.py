"""Applications built on the model and its runs; no other room imports them.

``control`` (model-predictive control from pixels) and ``control_run`` (``pivf control``: a trained
run acts on its task's live system); ``compare`` (``pivf compare``: one physics trained with several
integrators, laid out for TensorBoard); ``symetric`` (SyMetric: is a learned phase space the true one).
"""
