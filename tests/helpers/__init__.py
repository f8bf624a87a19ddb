"""Helpers shared by the test files: tiny models with hand-set weights (:mod:`.tiny`,
:mod:`.method_models`, :mod:`.metric_models`, :mod:`.tokens`), the command line's (:mod:`.cli`) and
Ray's (:mod:`.ray`). No test file imports another, nor ``conftest``."""
