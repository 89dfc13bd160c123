"""VEE: validation rules, estimation and the service that stores validated channel-days.

Kernels (:mod:`.rules`, :mod:`.estimation`) are pure NumPy; :mod:`.service` talks to the database.
"""

from meter2cash.mdm.vee.config import RuleSet
from meter2cash.mdm.vee.rules import RULE_CODES, Finding, RuleContext, evaluate

__all__ = ["RULE_CODES", "Finding", "RuleContext", "RuleSet", "evaluate"]
