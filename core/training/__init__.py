"""Training: a run and everything it writes. It imports the kernel and ``data``, never ``apps``.

Reading order: ``train`` (the loop: resume, rollback, multi-process) and its pieces: ``run_state``
(the counters a checkpoint carries), ``stop_rules`` (when a run stops), ``nonfinite`` (the NaN guard),
``optim`` (optimisers, TF-style RMSprop), ``distributed`` (torchrun), ``devices``, ``progress``; what
a run writes: ``runs`` (its directory), ``checkpoints``, ``run_log`` (losses, TensorBoard),
``report`` (learned parameters, figures), ``verdict`` (its last line); then ``evaluate`` (using a
finished run: re-evaluation, rollouts).
"""
