"""Every domain's tables, imported so that Alembic and tests see one complete metadata."""

from portal.accounts import models as accounts_models
from portal.activity import models as activity_models
from portal.blocks import models as blocks_models
from portal.chat import models as chat_models
from portal.core.db import Base
from portal.remote import models as remote_models

metadata = Base.metadata

__all__ = ["accounts_models", "activity_models", "blocks_models", "chat_models", "metadata", "remote_models"]
