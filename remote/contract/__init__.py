"""The contract between the two roles: what crosses from the training machine to the uploader.

Both roles import from this package; ``local`` imports nothing else from ``remote``. Standard
library only, Python >= 3.9, because the training machine has nothing more.

- :mod:`.manifest`    Contract 1, the eval manifest (models, run ids, the original tool's rules)
- :mod:`.outbox`      Contract 2, the outbox (bundle names, index, acks, which bundles follow seq N)
- :mod:`.tree`        how a results tree is laid out (``<model_dir>/checkpoint-<step>/metrics.*``)
- :mod:`.names`       the name of every bookkeeping file either role keeps
- :mod:`.files`       atomic writes, locks and digests, the same on both sides
- :mod:`.options`     every command-line option of both roles: one flag, one environment variable
- :mod:`.exit_codes`  what every exit code of both roles means
"""
