"""Helpers over Directory aggregates inside a unit of work."""

from __future__ import annotations

from domain.directory import Directory
from domain.services.unit_of_work import UnitOfWork


async def add_member(uow: UnitOfWork, name: str, member_id: str) -> None:
    """Add a member without reading the directory (``UnitOfWork.add_to_directory``)."""
    await uow.add_to_directory(name, member_id)


async def list_members(uow: UnitOfWork, name: str) -> list[str]:
    directory = await uow.get(Directory, Directory.stream_id(name))
    return list(directory.members) if directory else []
