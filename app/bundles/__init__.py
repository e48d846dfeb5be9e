"""Bundle export and import (the format is ``tempoflow.bundle``; see docs/bundles.md).

An import is planned from reads (:func:`plan_import`: every error at once, nothing
written), then applied in the caller's transaction (:func:`apply_import`); the route
commits, then syncs the Temporal Schedules of the workflows whose latest version changed.
"""

from app.bundles.apply import Published, apply_import
from app.bundles.export import export_bundle
from app.bundles.model import ImportContext, Plan
from app.bundles.plan import plan_import

__all__ = ["ImportContext", "Plan", "Published", "apply_import", "export_bundle", "plan_import"]
