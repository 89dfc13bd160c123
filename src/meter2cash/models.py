"""Every table, imported in one place so metadata (and Alembic) sees the whole schema."""

from meter2cash.cis.models import *  # noqa: F403
from meter2cash.cis.money_models import *  # noqa: F403
from meter2cash.db import Base
from meter2cash.integration.models import *  # noqa: F403
from meter2cash.mdm.models import *  # noqa: F403
from meter2cash.mdm.vee.models import *  # noqa: F403

metadata = Base.metadata
