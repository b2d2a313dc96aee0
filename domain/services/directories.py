"""Helpers over Directory aggregates inside a unit of work."""

from __future__ import annotations

from domain.directory import Directory
from domain.services.unit_of_work import UnitOfWork


async def add_member(uow: UnitOfWork, name: str, member_id: str) -> None:
    directory = await uow.get(Directory, Directory.stream_id(name))
    if directory is None:
        directory = Directory.start(name, now_ns=uow.now_ns)
        uow.add(directory)
    directory.add(member_id, now_ns=uow.now_ns)


async def list_members(uow: UnitOfWork, name: str) -> list[str]:
    directory = await uow.get(Directory, Directory.stream_id(name))
    return list(directory.members) if directory else []
