"""Every table, imported in one place so metadata (and Alembic) sees the whole schema."""

from meter2cash.audit.models import *  # noqa: F403
from meter2cash.cis.billing.models import *  # noqa: F403
from meter2cash.cis.collections.models import *  # noqa: F403
from meter2cash.cis.ledger.models import *  # noqa: F403
from meter2cash.cis.orders.models import *  # noqa: F403
from meter2cash.cis.parties.models import *  # noqa: F403
from meter2cash.cis.payments.models import *  # noqa: F403
from meter2cash.cis.prepaid.models import *  # noqa: F403
from meter2cash.cis.tariffs.models import *  # noqa: F403
from meter2cash.db import Base
from meter2cash.events.models import *  # noqa: F403
from meter2cash.integration.scheduler_models import *  # noqa: F403
from meter2cash.mdm.commands.models import *  # noqa: F403
from meter2cash.mdm.events.models import *  # noqa: F403
from meter2cash.mdm.hes_inbox import *  # noqa: F403
from meter2cash.mdm.models import *  # noqa: F403
from meter2cash.mdm.network_models import *  # noqa: F403
from meter2cash.mdm.usage.models import *  # noqa: F403
from meter2cash.mdm.vee.models import *  # noqa: F403
from meter2cash.notify.models import *  # noqa: F403
from meter2cash.workforce.models import *  # noqa: F403

metadata = Base.metadata
