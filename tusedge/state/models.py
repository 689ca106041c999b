"""SQLAlchemy 2 typed models of the state database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class UploadRow(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "offset" is an SQL keyword; the column gets a plain name.
    offset: Mapped[int] = mapped_column("upload_offset", BigInteger, default=0)
    length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    meta: Mapped[str | None] = mapped_column("metadata", Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    concat: Mapped[str | None] = mapped_column(String(8), nullable=True)
    parts: Mapped[str | None] = mapped_column(Text, nullable=True)  # space-separated ids of a final's parts
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure: Mapped[str | None] = mapped_column(String(32), nullable=True)  # a protocol.upload.Failure

    __table_args__ = (Index("ix_uploads_status_expires", "status", "expires_at"),)


class HookEventRow(Base):
    """A post-* hook event waiting to be delivered (the outbox): written in the same process step as the
    change it reports, deleted once the hook answered 2xx."""

    __tablename__ = "hook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(Text)  # the JSON body
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # next try, or end of a deliverer's claim
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_hook_events_due", "due_at"),)
