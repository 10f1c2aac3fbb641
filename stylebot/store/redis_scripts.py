"""redis_scripts: the Lua scripts that change a job's state in Redis, each atomically.

Every state change runs as one script so that the indexes always agree with the job's
``status`` whatever process dies when (see :mod:`stylebot.store.redis_store`).
"""

from __future__ import annotations

# Shared Lua: the one place that keeps the indexes in step with ``status``.
PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local P = ARGV[1]
local function jkey(id) return P .. ':job:' .. id end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function reindex(id, new, lease_until)
  local k = jkey(id)
  local seq = redis.call('HGET', k, 'seq')
  local user = redis.call('HGET', k, 'user_id')
  redis.call('HSET', k, 'status', new)
  if new == 'queued' then
    redis.call('ZADD', P .. ':queued', seq, id)
  else
    redis.call('ZREM', P .. ':queued', id)
  end
  if new == 'running' then
    redis.call('ZADD', P .. ':running', lease_until, id)
  else
    redis.call('ZREM', P .. ':running', id)
    redis.call('HDEL', P .. ':owners', id)
  end
  if new == 'queued' or new == 'running' then
    redis.call('ZADD', P .. ':user:' .. user .. ':active', seq, id)
    redis.call('PERSIST', k)
  else
    redis.call('ZREM', P .. ':user:' .. user .. ':active', id)
    redis.call('EXPIRE', k, tonumber(ARGV[2]))
  end
end
local function claim(id, lease, owner)
  local k = jkey(id)
  local t = now()
  local attempts = tonumber(redis.call('HGET', k, 'attempts') or '0') + 1
  local lease_until = '+inf'
  if lease > 0 then lease_until = tostring(t + lease) end
  reindex(id, 'running', lease_until)
  redis.call('HSET', k, 'started_at', tostring(t), 'attempts', tostring(attempts))
  if owner ~= '' then redis.call('HSET', P .. ':owners', id, owner) end
  return id
end
"""

# ARGV: prefix, job_ttl, id, lease (s, 0 = none), owner
CLAIM = (
    PRELUDE
    + """
if redis.call('HGET', jkey(ARGV[3]), 'status') ~= 'queued' then return false end
return claim(ARGV[3], tonumber(ARGV[4]), ARGV[5])
"""
)

# ARGV: prefix, job_ttl, lease, owner, skip ids...
CLAIM_NEXT = (
    PRELUDE
    + """
local skip = {}
for i = 5, #ARGV do skip[ARGV[i]] = true end
for _, id in ipairs(redis.call('ZRANGE', P .. ':queued', 0, -1)) do
  if not skip[id] then return claim(id, tonumber(ARGV[3]), ARGV[4]) end
end
return false
"""
)

# ARGV: prefix, job_ttl, id, status, error (JSON)
SET_STATUS = (
    PRELUDE
    + """
local k = jkey(ARGV[3])
if redis.call('EXISTS', k) == 0 then return 0 end
local finished = 'null'
if ARGV[4] ~= 'queued' and ARGV[4] ~= 'running' then finished = tostring(now()) end
local lease_until = '+inf'
if ARGV[4] == 'running' then lease_until = redis.call('ZSCORE', P .. ':running', ARGV[3]) or '+inf' end
reindex(ARGV[3], ARGV[4], lease_until)
redis.call('HSET', k, 'error', ARGV[5], 'finished_at', finished)
return 1
"""
)

# ARGV: prefix, job_ttl, id  (running -> queued, the attempt not counted)
REQUEUE = (
    PRELUDE
    + """
local k = jkey(ARGV[3])
if redis.call('HGET', k, 'status') ~= 'running' then return 0 end
reindex(ARGV[3], 'queued', 0)
local attempts = tonumber(redis.call('HGET', k, 'attempts') or '0') - 1
if attempts < 0 then attempts = 0 end
redis.call('HSET', k, 'started_at', 'null', 'attempts', tostring(attempts))
return 1
"""
)

# ARGV: prefix, job_ttl, id
CANCEL_IF_QUEUED = (
    PRELUDE
    + """
local k = jkey(ARGV[3])
if redis.call('HGET', k, 'status') ~= 'queued' then return 0 end
reindex(ARGV[3], 'cancelled', 0)
redis.call('HSET', k, 'finished_at', tostring(now()))
return 1
"""
)

# ARGV: prefix, job_ttl  -> ids whose lease ran out, now queued again
REAP = (
    PRELUDE
    + """
local expired = redis.call('ZRANGEBYSCORE', P .. ':running', '-inf', now())
for _, id in ipairs(expired) do
  reindex(id, 'queued', 0)
  redis.call('HSET', jkey(id), 'started_at', 'null')
end
return expired
"""
)

# ARGV: prefix, job_ttl  -> every running job goes back (``Store.recover``)
RECOVER = (
    PRELUDE
    + """
for _, id in ipairs(redis.call('ZRANGE', P .. ':running', 0, -1)) do
  reindex(id, 'queued', 0)
  redis.call('HSET', jkey(id), 'started_at', 'null')
end
return 1
"""
)

# ARGV: prefix, job_ttl, id, lease -> 1 while the job is still running (lease renewed)
RENEW = (
    PRELUDE
    + """
if redis.call('ZSCORE', P .. ':running', ARGV[3]) == false then return 0 end
redis.call('ZADD', P .. ':running', 'XX', now() + tonumber(ARGV[4]), ARGV[3])
return 1
"""
)


# ARGV: prefix, job_ttl, id, field, value -> set only on a job that exists (no stub of a forgotten job)
SET_FIELD = """
if redis.call('EXISTS', ARGV[1] .. ':job:' .. ARGV[3]) == 0 then return 0 end
redis.call('HSET', ARGV[1] .. ':job:' .. ARGV[3], ARGV[4], ARGV[5])
return 1
"""
