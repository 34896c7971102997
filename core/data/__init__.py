"""Datasets: tasks that simulate and render video of physical systems, and the files they live in.

``task`` (the plugin contract), ``balls`` (balls on black, PAIG's look), ``simulate`` (the reference
solver), ``render`` (anti-aliased drawing), ``sampling``, ``names`` (parameters in file names),
``npz`` (the PAIG file layout), ``generate`` (writing and caching), ``dataset`` (loading),
``frames`` (stored video as model input), ``preview`` (a PNG of a dataset), ``nuisance`` (what a
real camera adds: noise, blur, shake, drifts, clutter, an occluder, compression).
"""
