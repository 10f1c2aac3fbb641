"""redis_store: the bot's shared state in Redis, for the scale-out mode.

:class:`RedisStore` satisfies :class:`stylebot.store.base.StateStore`, with the
same dataclasses as the SQLite ``Store``, so the chat handlers and
``run_job`` work unchanged on it: the web process and every RQ worker
(on any machine) see one dialog, one job table and one queue order.

On top of that it keeps what a fleet of processes needs and one SQLite file
never did: update de-duplication for the webhook, a lease per running job
(renewed by the worker that runs it, so a worker that died is noticed), the
cancel signal for a job that runs on another machine, and full-quality
results (workers' disks are not the web process's disk).

Schema (``P`` is the key prefix, ``stylebot`` by default):

=============================  ==============================================
``P:seq``                      counter: a job's place in line (``Job.seq``)
``P:job:<id>``                 hash: one field per ``Job`` field, JSON values
                               (``status`` is stored as the bare word)
``P:queued``                   sorted set: queued job ids by ``seq``
``P:running``                  sorted set: running job ids by lease expiry
``P:owners``                   hash: running job id -> "host:pid" of its worker
``P:user:<uid>:jobs``          sorted set: all of a user's job ids by ``seq``
``P:user:<uid>:active``        sorted set: queued + running job ids by ``seq``
``P:dialog:<chat>:<uid>``      hash: step, content_file_id, style_file_id (a mix), updated_at (one per chat)
``P:user:<uid>:chats``         set: chats where the user has a dialog (for /forget)
``P:settings:<uid>``           hash: size, strength, keep_colors, speed ("" or absent: no choice)
``P:styles:<uid>``             sorted set: style file ids by last use
``P:thumbs:<uid>``             hash: style file id -> thumbnail file id
``P:album:<chat>:<group>``     hash: message id -> JSON item; expires in 1 h
``P:user:<uid>:albums``        set: the user's "<chat>:<group>" albums (for /forget)
``P:user:<uid>:album_items``   zset: "<chat>:<group>|<message>" by arrival, for the per-user cap; 1 h
``P:rate_salt``                string: random salt of the rate-limit keys
``P:rate:<hmac>``              sorted set: job creation times of one user, keyed by
                               HMAC(salt, user id), so it outlives /forget
                               without naming the user; expires in 1 h
``P:salt:<uid>``               string: the user's random salt (hex) for log pseudonyms
                               (``logs.who``); deleted by /forget
``P:update:<update_id>``       string: the webhook saw this update (1 day)
``P:cancel:<id>``              string: the user cancelled this running job
``P:result:<id>``              bytes: the full-quality PNG (24 h)
=============================  ==============================================

Every job state change runs as one Lua script, so the indexes above always
agree with the job's ``status`` whatever process dies when. Times inside the
scripts come from the Redis server's clock, so leases do not depend on the
workers' clocks agreeing. The scripts build key names from the prefix, which
is fine for one Redis server (what Heroku Redis and ``redis-server`` are);
Redis Cluster is not supported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Container, Iterable, Mapping
from dataclasses import fields
from typing import Any

try:
    import redis
except ModuleNotFoundError:  # the default install has no Redis client: say what to do
    raise SystemExit(
        "error: the scale-out mode needs `pip install -r requirements-scale.txt` (redis is not installed)"
    ) from None

from stylebot.config import REDIS_TLS_VERIFY
from stylebot.jobs.job import Job, JobStatus
from stylebot.jobs.quota import job_cost
from stylebot.store import redis_scripts as scripts
from stylebot.store.base import STEP_CONTENT, AlbumItem, Dialog, StyleRef, UserSettings
from stylebot.store.caps import MAX_ALBUM_ITEMS_PER_USER, MAX_DIALOGS_PER_USER, oldest_beyond

#: Finished jobs are kept this long (result buttons, rate limits), then expire.
JOB_TTL = 30 * 24 * 3600
#: Telegram re-sends an unacknowledged update for up to a day.
UPDATE_TTL = 24 * 3600
#: Album items, as in ``storage.Store`` (one hour).
ALBUM_TTL = 3600
#: A cancel request outlives any job's step by far.
CANCEL_TTL = 3600
#: Rate-limit events are counted over one hour.
RATE_TTL = 3600

_JOB_FIELDS = [f.name for f in fields(Job)]


#: ``STYLEBOT_REDIS_TLS_VERIFY=0`` turns certificate and host name checks off for ``rediss://`` (Heroku Redis).
TLS_VERIFY_ENV = REDIS_TLS_VERIFY


def tls_verify(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``rediss://`` checks certificates and host names: yes unless ``STYLEBOT_REDIS_TLS_VERIFY=0``."""
    value = environ.get(TLS_VERIFY_ENV, "1").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on", ""):
        return True
    raise SystemExit(
        f"error: {TLS_VERIFY_ENV} must be 1 (check certificates, the default) or 0 (do not), not {value!r}"
    )


def connect(url: str, decode: bool = True, verify: bool | None = None) -> redis.Redis:
    """A client for ``url`` (``redis://`` or ``rediss://``, as Heroku Redis gives).

    ``rediss://`` verifies the server's certificate and host name by default (``verify``,
    else :func:`tls_verify`). Heroku Redis serves TLS with a self-signed certificate, so
    there the operator opts out, explicitly, with ``STYLEBOT_REDIS_TLS_VERIFY=0``
    (app.json sets it; deploy/heroku.md says why).
    """
    options: dict[str, Any] = {"decode_responses": decode, "health_check_interval": 30}
    if url.startswith("rediss://"):
        if verify if verify is not None else tls_verify():
            options.update(ssl_cert_reqs="required", ssl_check_hostname=True)
        else:
            options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    return redis.Redis.from_url(url, **options)


def _encode(value: Any) -> str:
    if isinstance(value, JobStatus):
        return value.value
    return json.dumps(value)


def _decode_job(raw: dict[str, str]) -> Job | None:
    if not raw or "status" not in raw:
        return None
    values = {name: json.loads(raw[name]) for name in _JOB_FIELDS if name in raw and name != "status"}
    values["status"] = JobStatus(raw["status"])
    values["keep_colors"] = bool(values.get("keep_colors", False))
    return Job(**values)


class RedisStore:
    """:class:`~stylebot.store.base.StateStore` on Redis, plus the scale-out extras.

    Thread safety: a ``redis.Redis`` client is a thread-safe connection pool,
    and every read-modify-write is one Lua script or one ``MULTI``, so handler
    threads, worker threads and other machines never see half a change.
    """

    def __init__(self, url: str, prefix: str = "stylebot", client: redis.Redis | None = None) -> None:
        self.url = url
        self.prefix = prefix
        # Any: redis' annotations type every reply as ``bytes | str``; this client decodes, so they are str.
        self.r: Any = client if client is not None else connect(url)
        self._raw: Any = None  # bytes client for PNG results (replies are bytes), made on first use
        self._salt: bytes | None = None  # rate-limit salt, read (or made) on first use
        self._scripts: dict[str, Any] = {
            name: self.r.register_script(source)
            for name, source in {
                "claim": scripts.CLAIM,
                "claim_next": scripts.CLAIM_NEXT,
                "set_status": scripts.SET_STATUS,
                "requeue": scripts.REQUEUE,
                "cancel_if_queued": scripts.CANCEL_IF_QUEUED,
                "reap": scripts.REAP,
                "recover": scripts.RECOVER,
                "renew": scripts.RENEW,
                "set_field": scripts.SET_FIELD,
            }.items()
        }

    # --- plumbing ------------------------------------------------------
    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def _run(self, script: str, *args: object) -> Any:
        return self._scripts[script](args=[self.prefix, JOB_TTL, *args])

    def _rate_key(self, user_id: int) -> str:
        """``P:rate:<HMAC(salt, user id)>``: the salt is made once per Redis (``SET NX``), shared by all."""
        if self._salt is None:
            self.r.set(self.key("rate_salt"), os.urandom(32).hex(), nx=True)
            self._salt = bytes.fromhex(self.r.get(self.key("rate_salt")))
        return self.key("rate", hmac.new(self._salt, str(int(user_id)).encode(), hashlib.sha256).hexdigest())

    def _jobs(self, ids: Iterable[str]) -> list[Job]:
        ids = list(ids)
        if not ids:
            return []
        with self.r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.key("job", job_id))
            rows = pipe.execute()
        return [job for job in map(_decode_job, rows) if job is not None]

    def close(self) -> None:
        self.r.close()
        if self._raw is not None:
            self._raw.close()

    def ping(self) -> bool:
        return bool(self.r.ping())

    # --- jobs ----------------------------------------------------------
    def create_job(self, job: Job) -> Job:
        """Store ``job`` and put it in line (one ``MULTI``: all of it or none)."""
        job.seq = int(self.r.incr(self.key("seq")))
        mapping = {name: _encode(getattr(job, name)) for name in _JOB_FIELDS}
        rate = self._rate_key(job.user_id)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.zadd(rate, {f"{os.urandom(8).hex()}:{int(job.size)}": job.created_at})  # the size: work
            pipe.zremrangebyscore(rate, "-inf", time.time() - RATE_TTL)
            pipe.expire(rate, RATE_TTL)
            pipe.hset(self.key("job", job.id), mapping=mapping)
            pipe.zadd(self.key("user", job.user_id, "jobs"), {job.id: job.seq})
            if job.status == JobStatus.QUEUED:
                pipe.zadd(self.key("queued"), {job.id: job.seq})
            if job.status.active:
                pipe.zadd(self.key("user", job.user_id, "active"), {job.id: job.seq})
            pipe.execute()
        return job

    def get_job(self, job_id: str) -> Job | None:
        return _decode_job(self.r.hgetall(self.key("job", job_id)))

    def active_job(self, user_id: int) -> Job | None:
        ids = self.r.zrange(self.key("user", user_id, "active"), 0, 0)
        return self.get_job(ids[0]) if ids else None

    def claim(self, job_id: str, owner: str = "", lease: float = 0) -> Job | None:
        """Mark ``job_id`` running if it is queued; ``None`` if anyone else got there first.

        This is the gate that makes duplicate RQ messages harmless: only one
        claim of a queued job succeeds. ``lease`` seconds (0: forever) is how
        long the job stays ours without :meth:`renew_lease`.
        """
        if not self._run("claim", job_id, lease, owner):
            return None
        return self.get_job(job_id)

    def claim_next(self, skip: set[str] | frozenset[str] = frozenset()) -> Job | None:
        """Atomically take the oldest queued job (not in ``skip``) and mark it running."""
        job_id = self._run("claim_next", 0, "", *sorted(skip))
        return self.get_job(job_id) if job_id else None

    def set_status(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        self._run("set_status", job_id, status.value, json.dumps(error))

    def requeue(self, job_id: str) -> None:
        """Put an interrupted job back, keeping its place (``seq``); the attempt is not counted."""
        self._run("requeue", job_id)

    def cancel_if_queued(self, job_id: str) -> bool:
        return bool(self._run("cancel_if_queued", job_id))

    def set_status_message(self, job_id: str, message_id: int | None) -> None:
        self._run("set_field", job_id, "status_message_id", json.dumps(message_id))

    def queued_jobs(self) -> list[Job]:
        return self._jobs(self.r.zrange(self.key("queued"), 0, -1))

    def position(self, job_id: str) -> int | None:
        rank = self.r.zrank(self.key("queued"), job_id)
        return None if rank is None else rank + 1

    def recover(self, delivered: Container[str] = frozenset()) -> list[Job]:
        """``Store.recover`` for parity: every running job goes back to the queue (one in ``delivered``: done).

        The scale-out mode never calls this (other machines' jobs are running
        fine); it relies on leases and :meth:`reap_expired` instead.
        """
        self._run("recover")
        waiting = []
        for job in self.queued_jobs():
            if job.id in delivered:
                self.set_status(job.id, JobStatus.DONE)
            else:
                waiting.append(job)
        return waiting

    def jobs_created_since(self, user_id: int, since: float) -> list[float]:
        """Creation times of the user's jobs since ``since``, from the hashed rate key (survives /forget)."""
        return [score for _, score in self.r.zrangebyscore(self._rate_key(user_id), since, "+inf", withscores=True)]

    def work_since(self, user_id: int, since: float, default_size: int) -> list[tuple[float, float]]:
        """``(created_at, cost)`` of the user's jobs since ``since`` (the quota), from the hashed rate key.

        Members are ``<random>:<size>``; one without a size (written before sizes were) costs 1.
        """
        spent = []
        for member, score in self.r.zrangebyscore(self._rate_key(user_id), since, "+inf", withscores=True):
            text = member.decode() if isinstance(member, bytes) else str(member)
            size = text.rpartition(":")[2] if ":" in text else ""
            spent.append((score, job_cost(int(size) if size.isdigit() else None, default_size)))
        return spent

    def last_job(self, user_id: int) -> Job | None:
        for job_id in self.r.zrevrange(self.key("user", user_id, "jobs"), 0, -1):
            job = self.get_job(job_id)
            if job is not None:
                return job
            self.r.zrem(self.key("user", user_id, "jobs"), job_id)  # expired: drop the index entry
        return None

    # --- leases, cancel signals, dispatch bookkeeping (scale-out only) ----
    def renew_lease(self, job_id: str, lease: float) -> bool:
        """Extend a running job's lease; ``False`` once it is no longer running."""
        return bool(self._run("renew", job_id, lease))

    def reap_expired(self) -> list[str]:
        """Jobs whose worker stopped renewing their lease: back to the queue, in their place.

        The attempt stays counted (a crash may be the job's fault), so a job
        that kills every worker is given up on after ``jobs.job.MAX_CRASHES`` (by ``run_job``).
        """
        return list(self._run("reap"))

    def owner(self, job_id: str) -> str | None:
        """ "host:pid" of the worker running ``job_id`` (for logs, and for tests that kill it)."""
        return self.r.hget(self.key("owners"), job_id)

    def running_ids(self) -> list[str]:
        return list(self.r.zrange(self.key("running"), 0, -1))

    def set_dispatch(self, job_id: str, token: str) -> None:
        """Remember the RQ job that will run ``job_id`` (the reconciler checks it is alive)."""
        self._run("set_field", job_id, "dispatch", json.dumps(token))

    def dispatch(self, job_id: str) -> str | None:
        raw = self.r.hget(self.key("job", job_id), "dispatch")
        return json.loads(raw) if raw else None

    def request_cancel(self, job_id: str) -> None:
        """Ask whichever worker runs ``job_id`` to stop it: a key to poll and a message to hear."""
        self.r.set(self.key("cancel", job_id), "1", ex=CANCEL_TTL)
        self.r.publish(self.key("cancel"), job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.r.exists(self.key("cancel", job_id)))

    def clear_cancel(self, job_id: str) -> None:
        self.r.delete(self.key("cancel", job_id))

    def seen_update(self, update_id: int) -> bool:
        """``True`` if this webhook update was seen before (Telegram re-sends on timeouts)."""
        fresh = self.r.set(self.key("update", update_id), "1", nx=True, ex=UPDATE_TTL)
        return not fresh

    # --- full-quality results -------------------------------------------
    def _bytes_client(self) -> Any:
        if self._raw is None:
            self._raw = connect(self.url, decode=False)
        return self._raw

    def save_result(self, job_id: str, data: bytes, ttl: int, kind: str = "png") -> None:
        """Keep a result file (``kind``: the PNG, or the timelapse ``gif``) for ``ttl`` seconds where the
        web process can read it."""
        self._bytes_client().set(self._result_key(job_id, kind), data, ex=ttl)

    def load_result(self, job_id: str, kind: str = "png") -> bytes | None:
        return self._bytes_client().get(self._result_key(job_id, kind))

    def _result_key(self, job_id: str, kind: str) -> str:
        return self.key("result", job_id) if kind == "png" else self.key("result", job_id, kind)

    # --- dialog --------------------------------------------------------
    def get_dialog(self, user_id: int, chat_id: int | None = None) -> Dialog:
        chat = user_id if chat_id is None else chat_id
        raw = self.r.hgetall(self.key("dialog", chat, user_id))
        if not raw:
            return Dialog(user_id, chat_id=chat)
        return Dialog(
            user_id,
            raw.get("step", STEP_CONTENT),
            raw.get("content_file_id") or None,
            chat,
            raw.get("style_file_id") or None,
        )

    def set_dialog(self, dialog: Dialog) -> None:
        key = self.key("dialog", dialog.chat_id, dialog.user_id)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            mapping = {"step": dialog.step, "updated_at": repr(time.time())}
            if dialog.content_file_id is not None:
                mapping["content_file_id"] = dialog.content_file_id
            if dialog.style_file_id is not None:
                mapping["style_file_id"] = dialog.style_file_id
            pipe.hset(key, mapping=mapping)
            pipe.sadd(self.key("user", dialog.user_id, "chats"), str(dialog.chat_id))
            pipe.execute()
        self._cap_dialogs(dialog.user_id)

    def _cap_dialogs(self, user_id: int) -> None:
        """At most ``MAX_DIALOGS_PER_USER`` dialogs per user, the oldest dropped (the rule in store/caps.py).

        Chats whose dialog is already gone (reset) leave the user's set here too.
        """
        chats_key = self.key("user", user_id, "chats")
        chats = sorted(self.r.smembers(chats_key))
        if len(chats) <= MAX_DIALOGS_PER_USER:
            return
        with self.r.pipeline(transaction=False) as pipe:
            for chat in chats:
                pipe.hget(self.key("dialog", chat, user_id), "updated_at")
            stamps = pipe.execute()
        gone = [chat for chat, at in zip(chats, stamps) if at is None]
        live = [(chat, float(at)) for chat, at in zip(chats, stamps) if at is not None]
        dropped = oldest_beyond(live, MAX_DIALOGS_PER_USER)
        with self.r.pipeline(transaction=True) as pipe:
            for chat in dropped:
                pipe.delete(self.key("dialog", chat, user_id))
            if dropped or gone:
                pipe.srem(chats_key, *dropped, *gone)
            pipe.execute()

    def reset_dialog(self, user_id: int, chat_id: int | None = None) -> None:
        chat = user_id if chat_id is None else chat_id
        self.r.delete(self.key("dialog", chat, user_id))

    # --- settings ------------------------------------------------------
    def get_settings(self, user_id: int) -> UserSettings:
        raw = self.r.hgetall(self.key("settings", user_id))
        if not raw:
            return UserSettings(user_id)
        return UserSettings(
            user_id,
            json.loads(raw.get("size", "null")),
            float(raw.get("strength", "1.0")),
            raw.get("keep_colors") == "1",
            raw.get("speed") or None,  # absent in hashes from before quick mode: no choice made
        )

    def save_settings(self, settings: UserSettings) -> None:
        self.r.hset(
            self.key("settings", settings.user_id),
            mapping={
                "size": json.dumps(settings.size),
                "strength": repr(float(settings.strength)),
                "keep_colors": "1" if settings.keep_colors else "0",
                "speed": settings.speed or "",
            },
        )

    # --- recent styles -------------------------------------------------
    def remember_style(self, user_id: int, file_id: str, thumb_file_id: str | None, keep: int = 5) -> None:
        styles, thumbs = self.key("styles", user_id), self.key("thumbs", user_id)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.zadd(styles, {file_id: time.time()})
            if thumb_file_id is not None:  # keep an older thumbnail rather than none (as COALESCE does)
                pipe.hset(thumbs, file_id, thumb_file_id)
            pipe.zrange(styles, 0, -keep - 1)
            *_, dropped = pipe.execute()
        if dropped:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.zrem(styles, *dropped)
                pipe.hdel(thumbs, *dropped)
                pipe.execute()

    def recent_styles(self, user_id: int, limit: int = 5) -> list[StyleRef]:
        ids = self.r.zrevrange(self.key("styles", user_id), 0, limit - 1)
        if not ids:
            return []
        thumbs = self.r.hmget(self.key("thumbs", user_id), ids)
        return [StyleRef(file_id, thumb) for file_id, thumb in zip(ids, thumbs)]

    # --- albums --------------------------------------------------------
    def add_album_item(
        self,
        group_id: str,
        user_id: int,
        message_id: int,
        file_id: str,
        thumb_file_id: str | None,
        chat_id: int | None = None,
    ) -> list[AlbumItem]:
        """Record one image of an album; return all seen so far, in message order.

        The album's images arrive as separate updates handled concurrently,
        possibly by different web processes: ``HSETNX`` and ``HGETALL`` run in
        one ``MULTI``, so exactly one of them sees the second item arrive.
        """
        album = f"{user_id if chat_id is None else chat_id}:{group_id}"
        key = self.key("album", album)
        item = json.dumps([file_id, thumb_file_id])
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, str(message_id), item)
            pipe.expire(key, ALBUM_TTL)
            pipe.sadd(self.key("user", user_id, "albums"), album)
            pipe.expire(self.key("user", user_id, "albums"), ALBUM_TTL)
            pipe.hgetall(key)
            *_, raw = pipe.execute()
        raw = self._cap_album_items(user_id, album, message_id, raw)
        items = []
        for mid, value in sorted(raw.items(), key=lambda kv: int(kv[0])):
            fid, thumb = json.loads(value)
            items.append(AlbumItem(int(mid), fid, thumb))
        return items

    def _cap_album_items(self, user_id: int, album: str, message_id: int, raw: dict[str, str]) -> dict[str, str]:
        """At most ``MAX_ALBUM_ITEMS_PER_USER`` album images per user, the oldest dropped (store/caps.py).

        ``P:user:<uid>:album_items`` scores each ``<album>|<message id>`` by its arrival, across albums;
        returns ``raw`` (this album's items) without what was dropped from it.
        """
        index = self.key("user", user_id, "album_items")
        with self.r.pipeline(transaction=True) as pipe:
            pipe.zadd(index, {f"{album}|{message_id}": time.time()}, nx=True)
            pipe.expire(index, ALBUM_TTL)
            pipe.zrange(index, 0, -1, withscores=True)
            *_, held = pipe.execute()
        dropped = oldest_beyond(((member, float(at)) for member, at in held), MAX_ALBUM_ITEMS_PER_USER)
        if not dropped:
            return raw
        with self.r.pipeline(transaction=True) as pipe:
            for member in dropped:
                where, _, mid = member.rpartition("|")
                pipe.hdel(self.key("album", where), mid)
            pipe.zrem(index, *dropped)
            pipe.execute()
        gone = set(dropped)
        return {mid: v for mid, v in raw.items() if f"{album}|{mid}" not in gone}

    # --- files the bot uploaded once (gallery images) ---------------------
    def uploaded_file_id(self, key: str, sha256: str) -> str | None:
        """The Telegram ``file_id`` of a file uploaded as ``key``, if its content is still ``sha256``."""
        found = self.r.hmget(self.key("upload", key), "sha256", "file_id")
        return found[1] if found[0] == sha256 else None

    def save_uploaded_file_id(self, key: str, sha256: str, file_id: str) -> None:
        self.r.hset(self.key("upload", key), mapping={"sha256": sha256, "file_id": file_id})

    # --- privacy -------------------------------------------------------
    def user_salt(self, user_id: int) -> bytes:
        """The user's random salt for log pseudonyms (``logs.who``), shared by every process; made on first use."""
        key = self.key("salt", user_id)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(key, os.urandom(16).hex(), nx=True)
            pipe.get(key)
            value = pipe.execute()[1]
        return bytes.fromhex(value.decode() if isinstance(value, bytes) else value)

    def forget_user(self, user_id: int) -> list[str]:
        """Delete every key about ``user_id`` (all chats); return the ids of the jobs deleted.

        The hashed rate key stays (timestamps only), so /forget does not reset the limit.
        """
        ids = list(self.r.zrange(self.key("user", user_id, "jobs"), 0, -1))
        albums = self.r.smembers(self.key("user", user_id, "albums"))
        chats = self.r.smembers(self.key("user", user_id, "chats")) | {str(user_id)}
        with self.r.pipeline(transaction=True) as pipe:
            for job_id in ids:
                pipe.delete(
                    self.key("job", job_id),
                    self.key("result", job_id),
                    self.key("result", job_id, "gif"),
                    self.key("cancel", job_id),
                )
                pipe.zrem(self.key("queued"), job_id)
                pipe.zrem(self.key("running"), job_id)
                pipe.hdel(self.key("owners"), job_id)
            for group in albums:
                pipe.delete(self.key("album", group))
            for chat in chats:
                pipe.delete(self.key("dialog", chat, user_id))
            for name in ("jobs", "active", "albums", "album_items", "chats"):
                pipe.delete(self.key("user", user_id, name))
            for name in ("settings", "styles", "thumbs", "salt"):
                pipe.delete(self.key(name, user_id))
            pipe.execute()
        return ids
