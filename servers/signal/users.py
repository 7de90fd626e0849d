"""The user service: registration, login and the friend graph, over a Store.

Synchronous and socket-free: each request gives an :class:`Outcome` (the
answer, the notifications for other users, and whose relations changed) that
the adapter applies to the signaling core.  The adapter runs it in a worker
thread because the store and the password hash block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .credentials import hash_password, verify_password
from .protocol import ErrorCode, Message
from .store import Store

__all__ = ["Outcome", "UserService"]

# A fixed hash to verify against when the user does not exist, so that a
# login for an unknown name costs the same time as a wrong password.
_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


@dataclass
class Outcome:
    payload: dict | None = None  # the ack payload, or None with an error
    error: tuple[int, str] | None = None
    notify: list[tuple[str, str, dict]] = field(default_factory=list)  # (user, type, payload)
    changed: set[str] = field(default_factory=set)  # users whose relations changed

    @classmethod
    def fail(cls, code: int, reason: str) -> "Outcome":
        return cls(error=(code, reason))


class UserService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, username: str, password_hash: str, now: float) -> Outcome:
        """Store a new user; the caller hashed the password (off the storage thread)."""
        if not self.store.create_user(username, password_hash, now):
            return Outcome.fail(ErrorCode.CONFLICT, "username taken")
        return Outcome({"user": username})

    def stored_hash(self, username: str) -> str:
        """The user's password hash, or a dummy one so that unknown users cost the same."""
        return self.store.password_hash(username) or _DUMMY_HASH

    @staticmethod
    def check_password(password: str, stored: str) -> bool:
        matches = verify_password(password, stored)  # always run: equal cost for unknown users
        return matches and stored is not _DUMMY_HASH

    def handle(self, user: str, message: Message, now: float) -> Outcome:
        """A friend/block request from ``user``."""
        if message.type == "call.history":
            return Outcome({"calls": self.store.call_history(user, message.payload.get("limit", 50))})
        if message.type == "recording.list":
            return Outcome({"recordings": self.store.recordings(user, message.payload.get("limit", 50))})
        if message.type == "friend.list":
            friends, _ = self.store.relations(user)
            return Outcome({"friends": sorted(friends), "requests": self.store.incoming_requests(user),
                            "blocked": self.store.blocked_by(user)})
        other = message.payload["username"]
        if other == user:
            return Outcome.fail(ErrorCode.BAD_REQUEST, "cannot do that to yourself")
        if not self.store.user_exists(other):
            return Outcome.fail(ErrorCode.NOT_FOUND, "no such user")
        return getattr(self, "_" + message.type.replace(".", "_"))(user, other, now)

    def _friend_request(self, user: str, other: str, now: float) -> Outcome:
        if self.store.are_friends(user, other):
            return Outcome.fail(ErrorCode.CONFLICT, "already friends")
        if self.store.blocks(user, other):
            return Outcome.fail(ErrorCode.CONFLICT, "unblock this user first")
        if self.store.blocks(other, user):
            return Outcome({"username": other, "state": "requested"})  # reveals nothing
        if self.store.has_request(other, user):
            return self._friend_accept(user, other, now)
        self.store.add_request(user, other, now)
        return Outcome({"username": other, "state": "requested"},
                       notify=[(other, "friend.requested", {"from": user})])

    def _friend_accept(self, user: str, other: str, now: float) -> Outcome:
        if not self.store.has_request(other, user):
            return Outcome.fail(ErrorCode.NOT_FOUND, "no such friend request")
        self.store.add_friendship(user, other)
        return Outcome({"username": other, "state": "friends"},
                       notify=[(other, "friend.accepted", {"by": user})], changed={user, other})

    def _friend_remove(self, user: str, other: str, now: float) -> Outcome:
        if not self.store.are_friends(user, other):
            return Outcome.fail(ErrorCode.NOT_FOUND, "not a friend")
        self.store.remove_friendship(user, other)
        return Outcome({"username": other, "state": "removed"},
                       notify=[(other, "friend.removed", {"by": user})], changed={user, other})

    def _block(self, user: str, other: str, now: float) -> Outcome:
        self.store.add_block(user, other)
        self.store.remove_friendship(user, other)
        self.store.delete_requests(user, other)
        return Outcome({"username": other, "state": "blocked"}, changed={user, other})

    def _unblock(self, user: str, other: str, now: float) -> Outcome:
        self.store.remove_block(user, other)
        return Outcome({"username": other, "state": "unblocked"}, changed={user})
