"""Schedules as code (tenant): export an install's schedules, apply a document back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from extsched.api.deps import Ctx, Reader, Writer
from extsched.api.openapi import raises
from extsched.api.schemas import ApplyIn, ApplyOut, ExportOut, ScheduleDocOut
from extsched.errors import FeatureDisabled, InstallDisabled, NotInstalled, QuotaExceeded
from extsched.services import schedule_code

router = APIRouter(prefix="/api/v1", tags=["schedules"])


@router.get(
    "/extensions/{extension_id}/schedules/export",
    response_model=ExportOut,
    response_model_exclude_unset=True,
)
@raises(NotInstalled, FeatureDisabled)
async def export_schedules(ctx: Ctx, p: Reader, extension_id: uuid.UUID) -> ExportOut:
    """The install's schedules as a document that ``apply`` takes back unchanged."""
    name, entries = await schedule_code.export(ctx, p, extension_id)
    return ExportOut(extension=name, schedules=[ScheduleDocOut(**e) for e in entries])


@router.post("/extensions/{extension_id}/schedules/apply", response_model=ApplyOut)
@raises(NotInstalled, FeatureDisabled, InstallDisabled, QuotaExceeded)
async def apply_schedules(ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: ApplyIn) -> ApplyOut:
    """Make the install's schedules match the document, all or nothing (``dry_run``: only
    report). Entries match schedules by name, case-insensitively; ``prune`` deletes the rest."""
    entries = [
        schedule_code.Entry(
            name=s.name,
            endpoint=s.endpoint,
            values=s.model_dump(exclude_unset=True, exclude={"name", "endpoint"}),
        )
        for s in body.schedules
    ]
    report = await schedule_code.apply(
        ctx, p, extension_id, entries, prune=body.prune, dry_run=body.dry_run
    )
    return ApplyOut(**vars(report))
