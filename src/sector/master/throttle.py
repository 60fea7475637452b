"""Failed logins slow the guesser down, and only the guesser.

Each failed login counts against the address it came from, the user name it
tried (whether that user exists or not: the throttle must not tell), and the
pair. Before a password is checked, :meth:`LoginThrottle.admit` decides how
long the attempt must wait, from the counts of its *guards*:

* the **address**: one that has failed more than :data:`FREE` times waits
  :data:`BASE` seconds, doubling with every further failure up to
  :data:`MAX_DELAY`, between one attempt and the next. Attempts still being
  checked count as failures until they are known not to be, and concurrent
  attempts queue one behind the other, so a burst of connections gains
  nothing;
* the **user**, for an address that has already failed for that user: a
  guesser spread over many addresses is slowed per user once each address has
  tried;
* neither applies to an address from which the user logged in successfully
  within :data:`TRUST_TIME` - the issue's requirement that an attacker's
  guessing must not lock the real user out - unless the pair itself keeps
  failing (someone else behind the same address).

An attempt that would have to wait longer than :data:`MAX_QUEUE` is refused
at once (the master answers "too many failed logins"), so waiting attempts do
not pile up. Counts decay with a half-life of :data:`HALF_LIFE`, so an
address or a user is forgiven in time. Time comes from an injected clock
(:mod:`sector.clock`): the tests drive it; only the master's ``asyncio.sleep``
of the delay it is told takes real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..clock import Clock

#: Failures an address (or user) may have before attempts are delayed.
FREE = 10
#: The first delay, doubled for every failure past FREE...
BASE = 0.5
#: ... up to this many seconds between two attempts.
MAX_DELAY = 30.0
#: An attempt that would wait longer than this is refused straight away.
MAX_QUEUE = 10.0
#: Seconds for a failure count to halve.
HALF_LIFE = 300.0
#: Seconds a successful login keeps its address trusted for that user.
TRUST_TIME = 86400.0
#: Records kept at most per table (addresses, users, pairs, trusted pairs).
MAX_RECORDS = 100_000


@dataclass
class _Record:
    failures: float = 0.0
    at: float = 0.0  # when ``failures`` was last brought up to date
    next: float = 0.0  # the earliest start of the next attempt
    pending: int = 0  # attempts admitted and not yet decided

    def decayed(self, now: float) -> float:
        if now > self.at:
            self.failures *= 0.5 ** ((now - self.at) / HALF_LIFE)
            self.at = now
        return self.failures


@dataclass
class Attempt:
    """One admitted login attempt: how long it waits, and the guards it counts against."""

    user: str
    address: str
    wait: float
    guards: list[_Record] = field(default_factory=list)
    #: Whether the attempt comes with failures (or other attempts in flight) behind it:
    #: its password is checked apart from the others', so guessing cannot delay them.
    suspect: bool = False


def delay_after(failures: float) -> float:
    """Seconds between two attempts of someone with ``failures`` recent failures."""
    excess = round(failures) - FREE  # round: seconds of decay must not forgive a failure
    return 0.0 if excess < 0 else min(MAX_DELAY, BASE * 2**excess)


class LoginThrottle:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._addresses: dict[str, _Record] = {}
        self._users: dict[str, _Record] = {}
        self._pairs: dict[tuple[str, str], _Record] = {}
        self._trusted: dict[tuple[str, str], float] = {}  # pair -> last success

    def admit(self, user: str, address: str) -> Attempt | None:
        """The attempt, with the seconds it must wait before its password is checked;
        None: refuse it now (it would wait more than :data:`MAX_QUEUE`). Every
        admitted attempt ends with :meth:`failed`, :meth:`succeeded` or :meth:`ended`."""
        now = self.clock.monotonic()
        pair = self._pairs.get((user, address))
        pair_failures = pair.decayed(now) if pair is not None else 0.0
        guards = []
        if self._is_trusted(user, address, now):
            if pair is not None and pair_failures >= FREE:
                guards.append(pair)
        else:
            guards.append(self._record(self._addresses, address, now))
            if pair_failures >= 0.5:  # failed here for this user within a half-life
                guards.append(self._record(self._users, user, now))
        start = max([now, *(guard.next for guard in guards)])
        if start - now > MAX_QUEUE:
            return None
        suspect = any(guard.decayed(now) >= 0.5 or guard.pending for guard in guards)
        for guard in guards:
            guard.next = start + delay_after(guard.decayed(now) + guard.pending)
            guard.pending += 1
        return Attempt(user, address, start - now, guards, suspect)

    def failed(self, attempt: Attempt) -> None:
        """A wrong password (or an unknown user): count it everywhere it may matter."""
        self.ended(attempt)
        now = self.clock.monotonic()
        user, address = attempt.user, attempt.address
        for table, key in (
            (self._addresses, address),
            (self._users, user),
            (self._pairs, (user, address)),
        ):
            record = self._record(table, key, now)  # type: ignore[arg-type]
            record.failures = record.decayed(now) + 1

    def succeeded(self, attempt: Attempt) -> None:
        """The user logged in: its address is trusted for it, the pair forgiven (the
        address and the user keep their counts: a guesser cannot launder them by
        logging in to an account of its own)."""
        self.ended(attempt)
        key = (attempt.user, attempt.address)
        self._pairs.pop(key, None)
        if key not in self._trusted and len(self._trusted) >= MAX_RECORDS:
            oldest = sorted(self._trusted, key=self._trusted.__getitem__)
            for stale in oldest[: len(oldest) // 2]:
                del self._trusted[stale]
        self._trusted[key] = self.clock.monotonic()

    def ended(self, attempt: Attempt) -> None:
        """The attempt is decided (any other way: refused by an ACL, the master busy)."""
        for guard in attempt.guards:
            guard.pending = max(0, guard.pending - 1)
        attempt.guards = []

    def failures(self, address: str) -> float:
        """The decayed count of failures from ``address`` (for logs and tests)."""
        record = self._addresses.get(address)
        return record.decayed(self.clock.monotonic()) if record else 0.0

    def _is_trusted(self, user: str, address: str, now: float) -> bool:
        since = self._trusted.get((user, address))
        return since is not None and now - since <= TRUST_TIME

    def _record(self, table: dict, key: object, now: float) -> _Record:
        record = table.get(key)
        if record is None:
            if len(table) >= MAX_RECORDS:
                _forget_the_least(table, now)
            record = table[key] = _Record(at=now, next=now)
        return record


def _forget_the_least(table: dict, now: float) -> None:
    """Drop the half of ``table`` with the fewest recent failures (none in flight):
    memory stays bounded however many names or addresses a guesser makes up."""
    ranked = sorted(table, key=lambda key: table[key].decayed(now))
    for key in ranked[: len(ranked) // 2]:
        if not table[key].pending:
            del table[key]
