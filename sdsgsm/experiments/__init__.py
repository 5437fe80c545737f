"""The experiments: the single-image attack, benchmark, sweep, transfer, defence grid, robust-training lab,
patch training, the Learn computations and the figure grid's data, on one shared runner
(:mod:`sdsgsm.experiments.runner`). They run models; drawing is left to :mod:`sdsgsm.render`."""
