"""pivf's inside, in rooms read in this order, each importing only from the rooms before it:

``kernel`` (the plugin contracts, the model they make, the config that chooses them) and ``data``
(dataset tasks and their files) lean on each other, a task being a plugin and a model being trained on
a dataset, and form the bottom layer; ``training`` (a run and everything it writes) stands on them;
``apps`` (control, integrator sweeps, SyMetric) stand on runs. tests/test_public_api.py enforces it.
"""
