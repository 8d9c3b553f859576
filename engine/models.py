"""Database tables of the engine: deployments, people, children, instances, open tasks, history.

Everything that finds work (inboxes, due timers, message routing) reads the indexed projection
tables here, never the serialized workflow state.

The tables are defined by concern, and every name is importable from here: the declarative base and
column types (`modelbase`), people, schools and children (`peopletables`), deployments, instances,
tasks and the history (`processtables`), and the oversight projections, PEPs and the PP+ ledger
(`oversighttables`). Importing this module registers them all on `Base.metadata` (Alembic's env too).
"""

from __future__ import annotations

from .modelbase import (  # noqa: F401 - the tables, importable as engine.models
    Base,
    JSONData,
    OrderedJSON,
    UTCDateTime,
)
from .oversighttables import (  # noqa: F401 - the tables, importable as engine.models
    PepProjection,
    PpplusEntry,
    QualityEntry,
)
from .peopletables import (  # noqa: F401 - the tables, importable as engine.models
    AccessGrant,
    CaseTeamMember,
    Child,
    Role,
    School,
    SchoolTeacher,
    SignInFailure,
    User,
    UserRole,
)
from .processtables import (  # noqa: F401 - the tables, importable as engine.models
    Attachment,
    Deployment,
    DeploymentFile,
    Event,
    Incident,
    Instance,
    Notification,
    OpenTask,
    ProcessDefinition,
    TaskDraft,
    TaskLink,
)
