"""VEE: validation, estimation and editing of interval data.

Pure kernels over ``(channels, intervals)`` NumPy arrays, no database:

- :mod:`.types` (arrays, findings, rule results, the rules' context, runs) and :mod:`.codes`
  (the finding codes), on which every rule depends;
- :mod:`.rules` (the validation rules, one module per kind), :mod:`.evaluate` (a whole rule set:
  the one evaluation entry point), :mod:`.estimation` (filling gaps), :mod:`.learned` (the learned
  estimator);
- :mod:`.compiled` (the same rules and estimation compiled with Numba, called by
  :mod:`.evaluate` and :mod:`.estimation` only);
- :mod:`.ruleset.schema` (what a rule set configures).

Services, which take a Session and never commit: :mod:`.service` (a VEE run: :func:`.service.run_vee`),
:mod:`.candidates` (which channel-days a run validates), :mod:`.context` (what the rules need from
the database), :mod:`.ruleset.store` (packaged and stored rule sets, the choice per channel),
:mod:`.learned_store` (stored learned models), :mod:`.work_queue` (the exceptions work queue) with
:mod:`.audit`, :mod:`.rereads` (re-read requests to the head-end), :mod:`.reports`. Tables:
:mod:`.models`. :mod:`.research.accuracy` scores the estimators on real load profiles (not a
runtime service).
"""
