"""Who is here: sessions (local and foreign), their resume tokens, and users' relations.

The one owner of these tables; the core, its rooms and its replication read
and change them only through these methods.
"""

from __future__ import annotations

from .session import Session

__all__ = ["Directory"]


class Directory:
    """Sessions by id, by resume token and by user; friends, followers and blocks per user."""

    __slots__ = ("_sessions", "_by_resume", "_user_sessions", "_friends", "_blocked", "_followers")

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._by_resume: dict[str, str] = {}
        self._user_sessions: dict[str, set[str]] = {}
        self._friends: dict[str, set[str]] = {}
        self._blocked: dict[str, set[str]] = {}
        self._followers: dict[str, set[str]] = {}  # user -> users here whose friend lists name them

    # --- sessions ---------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def __getitem__(self, session_id: str) -> Session:
        return self._sessions[session_id]

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def all(self):
        return self._sessions.values()

    def add(self, session: Session) -> None:
        """Register a session (replacing one with the same id) under its user."""
        self._sessions[session.session_id] = session
        if session.resume_token:
            self._by_resume[session.resume_token] = session.session_id
        self._user_sessions.setdefault(session.user, set()).add(session.session_id)
        self._friends.setdefault(session.user, set())
        self._blocked.setdefault(session.user, set())

    def remove(self, session: Session) -> bool:
        """Forget a session; True if its user has no session left (their relations go too)."""
        self._sessions.pop(session.session_id, None)
        self.forget_resume(session)
        sids = self._user_sessions.get(session.user)
        if sids is None:
            return True
        sids.discard(session.session_id)
        if sids:
            return False
        del self._user_sessions[session.user]
        self.set_friends(session.user, set())
        self._friends.pop(session.user, None)
        self._blocked.pop(session.user, None)
        return True

    def by_resume(self, resume_token: str) -> Session | None:
        sid = self._by_resume.get(resume_token)
        return self._sessions.get(sid) if sid else None

    def forget_resume(self, session: Session) -> None:
        if self._by_resume.get(session.resume_token) == session.session_id:
            del self._by_resume[session.resume_token]

    def has_resume_token(self, resume_token: str) -> bool:
        return resume_token in self._by_resume

    def sessions_of(self, user: str) -> tuple[str, ...]:
        """Ids of every session of ``user`` (local and foreign), a snapshot."""
        return tuple(self._user_sessions.get(user, ()))

    def has_user(self, user: str) -> bool:
        return user in self._user_sessions

    def is_local_user(self, user: str) -> bool:
        return any(self._sessions[sid].node is None for sid in self._user_sessions.get(user, ()))

    # --- relations --------------------------------------------------------

    def friends_of(self, user: str) -> set[str]:
        return self._friends.get(user, set())

    def is_friend(self, user: str, other: str) -> bool:
        return other in self._friends.get(user, ())

    def followers_of(self, user: str) -> tuple[str, ...]:
        return tuple(self._followers.get(user, ()))

    def has_followers(self, user: str) -> bool:
        return bool(self._followers.get(user))

    def blocks(self, user: str, other: str) -> bool:
        return other in self._blocked.get(user, ())

    def set_blocked(self, user: str, blocked: set[str]) -> None:
        self._blocked[user] = set(blocked)

    def set_friends(self, user: str, friends: set[str]) -> None:
        """Replace a user's friend list, keeping the reverse index in step."""
        old = self._friends.get(user, set())
        for friend in old - friends:
            followers = self._followers.get(friend)
            if followers is not None:
                followers.discard(user)
                if not followers:
                    del self._followers[friend]
        for friend in friends - old:
            self._followers.setdefault(friend, set()).add(user)
        self._friends[user] = friends
