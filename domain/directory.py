"""Directories: append-only member lists (all nodes, all validators) for lookups and selection.

Adding a member commutes with any other add, so directories are appended without a version
check: concurrent registrations never conflict on them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from domain.events import FlopAggregate, ns_to_datetime


class Directory(FlopAggregate):
    """Stream ``directory:<name>``: the ids of every member, in order of joining."""

    STREAM_TYPE: ClassVar[str] = "directory"
    APPEND_WITHOUT_VERSION_CHECK: ClassVar[bool] = True

    class Started(FlopAggregate.Created):
        name: str

        def apply(self, directory: Directory) -> None:
            directory.name = self.name
            directory.members = []

    class MemberAdded(FlopAggregate.Event):
        member_id: str

        def apply(self, directory: Directory) -> None:
            directory.members.append(self.member_id)

    name: str
    members: list[str]

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @staticmethod
    def stream_id(name: str) -> str:
        return f"directory:{name}"

    @classmethod
    def start(cls, name: str, *, now_ns: int) -> Directory:
        return cls._create(
            cls.Started, id=cls.stream_id(name), name=name, timestamp=ns_to_datetime(now_ns)
        )

    def add(self, member_id: str, *, now_ns: int) -> None:
        self._trigger(self.MemberAdded, now_ns, member_id=member_id)

    @classmethod
    def member_added(cls, stream_id: str, member_id: str, *, now_ns: int) -> Directory.MemberAdded:
        """The event that adds ``member_id``, made without loading the directory (adds commute;
        the store numbers the event, so its version here is a placeholder)."""
        fields: dict[str, Any] = {
            "originator_id": stream_id,
            "originator_version": 0,
            "timestamp": ns_to_datetime(now_ns),
            "member_id": member_id,
        }
        return cls.MemberAdded(**fields)
