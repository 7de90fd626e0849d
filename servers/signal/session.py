"""One client session: its sequence numbers, replay buffer and rate limit.

A session outlives its WebSocket: when the socket drops, the session waits for
the resume window, keeps buffering what it is sent, and replays the messages
the client missed (by sequence number) when the client comes back with its
resume token.
"""

from __future__ import annotations

from collections import deque

__all__ = ["ReplayBuffer", "Session", "TokenBucket"]


class ReplayBuffer:
    """The last messages sent to a session, ``(seq, text)``, bounded in count AND bytes.

    A session that is not read (or whose client is gone) keeps receiving
    messages for its resume window; a count alone would let large messages
    hold ``count * max_message_bytes``.  The oldest go first.
    """

    __slots__ = ("_items", "max_items", "max_bytes", "size")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._items: deque[tuple[int, str]] = deque()
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size = 0  # bytes of text held (the texts are ASCII JSON)

    def append(self, item: tuple[int, str]) -> None:
        self._items.append(item)
        self.size += len(item[1])
        while self._items and (len(self._items) > self.max_items or self.size > self.max_bytes):
            self.size -= len(self._items.popleft()[1])

    def extend(self, items) -> None:
        for item in items:
            self.append(item)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> tuple[int, str]:
        return self._items[index]


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; refill by the time elapsed first."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Session:
    """State of one logged-in device; plain data driven by the core."""

    __slots__ = (
        "session_id",
        "user",
        "resume_token",
        "connected",
        "seq",
        "outbox",
        "expires_at",
        "bucket",
        "strikes",
        "strike_window_start",
        "close_requested",
        "calls",
        "rooms",
        "node",
        "remote_owned",
    )

    def __init__(
        self, session_id: str, user: str, resume_token: str, bucket: TokenBucket, replay: int, now: float,
        replay_bytes: int = 1 << 20,
    ) -> None:
        self.session_id = session_id
        self.user = user
        self.resume_token = resume_token
        self.connected = True
        self.seq = 0
        # (seq, text) of the last messages sent, for resume.
        self.outbox = ReplayBuffer(replay, replay_bytes)
        self.expires_at: float | None = None
        self.bucket = bucket
        self.strikes = 0
        self.strike_window_start = now
        self.close_requested = False  # the adapter was asked to close this connection
        self.calls: set[str] = set()  # 1-to-1 calls this session takes part in or rings for
        self.rooms: set[str] = set()  # group calls this session has joined
        # Multi-node: the node hosting a foreign session (None: this node), and
        # for a local session the calls and rooms owned by another node -> owner.
        self.node: str | None = None
        self.remote_owned: dict[str, str] = {}

    def missed(self, last_seq: int) -> tuple[list[str], bool]:
        """Messages after ``last_seq`` in order, and whether none were lost."""
        texts = [text for seq, text in self.outbox if seq > last_seq]
        oldest = self.outbox[0][0] if self.outbox else self.seq + 1
        complete = last_seq >= self.seq or oldest <= last_seq + 1
        return texts, complete
