"""The fuzzer's settings (docs/design.md, "Untrusted inputs").

Two Hypothesis profiles, chosen by $GLMIX_FUZZ:

- `short` (the default; `make test`): derandomized (a fixed seed: the same draws on every run),
  few examples per test, no example database. It adds a few seconds to the suite.
- `long` (`make fuzz`): random draws, $GLMIX_FUZZ_EXAMPLES examples per test (default 2000),
  failures kept in .hypothesis/ and replayed first next time. A finding becomes a regression
  test (an @example on the test that found it, or a plain test beside the module's own).
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))  # fuzz_helpers (pytest runs --import-mode=importlib)

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]
settings.register_profile("short", max_examples=15, derandomize=True, database=None,
                          deadline=None, print_blob=True, suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=int(os.environ.get("GLMIX_FUZZ_EXAMPLES", 2000)),
                          deadline=None, print_blob=True, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("GLMIX_FUZZ", "short"))
