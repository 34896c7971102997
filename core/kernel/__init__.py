"""The kernel: the plugin contracts, the model they make and the config that chooses them. With
``data`` it is the bottom layer: nothing here imports ``training`` or ``apps``.

Reading order: ``plugin`` (what every plugin class carries), ``hookspecs`` (the hooks a plugin module
implements), ``registry`` (discovery and lookup by name); the kinds ``physics``, ``integrator`` and
``model`` (encoders, decoders; ``velocity_fit``), the ``pipeline`` they make and ``inference``
(running it); ``objective`` (how a model is trained; ``losses``, ``recipes``); ``nn`` (network
pieces); ``config`` (the experiment config and its layers; ``explain``) and ``build`` (a config made
into plugins, a pipeline and a dataset). Shared by every room: ``errors`` (a user's mistake as one
line), ``atomic`` (file writes), ``paths`` (folders the user names), ``images`` (PNG figures).
"""
