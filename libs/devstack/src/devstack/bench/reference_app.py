"""The FastAPI reference of issue 9: the monolith MedStation replaces, reading one patient.

Written the way such an app usually is: SQLAlchemy's async ORM over psycopg, a session
per request from a dependency, `session.get` by primary key, a pydantic response model.
Only the bench runs it, under uvicorn with one worker:
`uvicorn --factory devstack.bench.reference_app:create_app` (bench.reference).

FastAPI is a bench-only dependency (requirements-bench.txt, installed by `make bench`), so
its import is typed only where it is installed; routes are added without decorators,
which would be untyped where it is not. Annotations are evaluated at definition (no
`from __future__ import annotations`): FastAPI reads the route's dependency from them,
and that dependency is local to create_app.
"""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException  # type: ignore[import-not-found, unused-ignore]
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DATABASE_URL_VARIABLE = "MEDSTATION_BENCH_REFERENCE_DATABASE_URL"
TABLE = "patients"
# Connections for 64 concurrent requests on one event loop; the pool is never what waits.
POOL_SIZE = 20
POOL_OVERFLOW = 44


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = TABLE

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    date_of_birth: Mapped[date]
    sex: Mapped[str]
    mrn: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PatientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    date_of_birth: date
    sex: str
    mrn: str | None
    created_at: datetime
    updated_at: datetime


def create_app() -> Any:
    engine = create_async_engine(
        os.environ[DATABASE_URL_VARIABLE], pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as opened:
            yield opened

    async def get_patient(
        patient_id: uuid.UUID, db: Annotated[AsyncSession, Depends(session)]
    ) -> PatientOut:
        patient = await db.get(Patient, patient_id)
        if patient is None:
            raise HTTPException(status_code=404, detail="patient not found")
        return PatientOut.model_validate(patient)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.add_api_route(
        "/patients/{patient_id}", get_patient, methods=["GET"], response_model=PatientOut
    )
    return app
