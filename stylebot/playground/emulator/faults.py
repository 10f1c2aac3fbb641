"""Fault injection: Telegram's errors, stalled and cut transfers, and users who block the bot.

Why: the bot is only trustworthy if its retries, timeouts and 403 handling are exercised over real HTTP;
a test arms a fault here and the HTTP layer or the method dispatcher springs it on the next request.
"""

from __future__ import annotations

from collections import deque

from stylebot.playground.emulator.methods import _CANONICAL
from stylebot.playground.emulator.models import DEFAULT_DESCRIPTIONS, ApiError, _Fault, _TransferFault
from stylebot.playground.emulator.state import EmulatorState


class FaultInjection(EmulatorState):
    """``fail_next``, ``stall_next``, ``drop_next``, ``redirect_next``, ``hostile_file_path``, ``block_user``:
    what the next requests will meet."""

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error instead of doing them."""
        if method.lower() not in _CANONICAL:
            raise ValueError(f"{method!r} is not a method this emulator serves")  # a typo would never fire
        parameters = None
        if error_code == 429:
            retry_after = 1 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        if retry_after is not None:
            parameters = {"retry_after": retry_after}
        error = ApiError(error_code, description or DEFAULT_DESCRIPTIONS.get(error_code, "Error"), parameters)
        with self._lock:
            self._faults.setdefault(method.lower(), deque()).append(_Fault(error, times))

    def stall_next(
        self, target: str, seconds: float, times: int = 1, after: int | None = None, file_id: str | None = None
    ) -> None:
        """The next ``times`` requests to ``target`` wait ``seconds`` before answering.

        ``target`` is ``"file"`` (a download) or a method name. With ``after``, the headers and that many
        body bytes go out first and the stall is mid-body. ``file_id`` limits a ``"file"`` fault to that
        file's downloads (others pass untouched). A stall ends early when the emulator closes. A stalled
        method call still takes effect; only its answer is late, as when Telegram's reply is lost.
        """
        self._add_transfer_fault(target, _TransferFault("stall", times, seconds, after, file_id))

    def hostile_file_path(self, file_path: str, times: int = 1, file_id: str | None = None) -> None:
        """The next ``times`` getFile answers (for ``file_id`` only, if given) give ``file_path``
        (``../logOut``, ``https://elsewhere/``, ...) instead of the file's own: a hostile or broken server."""
        with self._lock:
            self._file_path_faults.append([file_path, times, file_id])

    def redirect_next(self, target: str, location: str, times: int = 1, file_id: str | None = None) -> None:
        """The next ``times`` requests to ``target`` (``"file"`` or a method) are answered 302 to ``location``."""
        self._add_transfer_fault(target, _TransferFault("redirect", times, file_id=file_id, location=location))

    def requests_seen(self) -> list[str]:
        """Every request target the server received, in order and as sent (``/bot<token>/getMe``,
        ``/file/bot<token>/photos/file_1.jpg``): calls the method log cannot name (unknown paths) included."""
        with self._lock:
            return list(self._requests)

    def drop_next(self, target: str, times: int = 1, after: int | None = None, file_id: str | None = None) -> None:
        """The next ``times`` requests to ``target`` get the headers (with the full Content-Length) and
        ``after`` bytes of the body (half by default), then the connection is closed: a transfer cut short."""
        self._add_transfer_fault(target, _TransferFault("drop", times, 0.0, after, file_id))

    def answer_next(
        self, target: str, status: int, location: str | None = None, times: int = 1, file_id: str | None = None
    ) -> None:
        """The next ``times`` requests to ``target`` get a bare HTTP ``status`` instead of their answer, as a
        broken proxy or server in front of the Bot API would send: a 5xx page, or a 3xx to ``location``.
        A method call so answered is not done."""
        self._add_transfer_fault(
            target, _TransferFault("answer", times, file_id=file_id, status=status, location=location)
        )

    def _add_transfer_fault(self, target: str, fault: _TransferFault) -> None:
        key = target.lower()
        if key != "file" and key not in _CANONICAL:
            raise ValueError(f"{target!r} is neither 'file' nor a method this emulator serves")
        if fault.file_id is not None and key != "file":
            raise ValueError("file_id only applies to the 'file' target")
        with self._lock:
            self._transfer_faults.setdefault(key, deque()).append(fault)

    def downloads(self, file_id: str | None = None) -> list[str]:
        """How each file download went, in order: ``"ok"``, ``"stall"`` or ``"drop"`` (the fault it met)."""
        with self._lock:
            return [outcome for fid, outcome in self._downloads if file_id is None or fid == file_id]

    def _take_transfer_fault(self, target: str, file_path: str | None = None) -> _TransferFault | None:
        """The first pending fault for this request (matching its file, if the fault names one), used up."""
        with self._lock:
            file_id = self._paths.get(file_path or "")
            taken = None
            for fault in self._transfer_faults.get(target.lower(), ()):
                if fault.file_id is None or fault.file_id == file_id:
                    taken = fault
                    fault.times -= 1
                    if fault.times <= 0:
                        self._transfer_faults[target.lower()].remove(fault)
                    break
            if file_path is not None and file_id is not None:
                self._downloads.append((file_id, taken.kind if taken else "ok"))
            return taken

    def block_user(self, chat_id: int) -> None:
        """The user blocks the bot: any send or edit to the chat gets 403 from now on."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock_user(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.discard(chat_id)

    def _maybe_fail(self, name: str) -> None:
        faults = self._faults.get(name.lower())
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.popleft()
            raise fault.error
