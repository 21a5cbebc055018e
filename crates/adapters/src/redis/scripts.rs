//! Lua scripts: each runs atomically inside Redis, so check-and-set spans no round trip and
//! stays one-time across every instance sharing the server.

use std::sync::LazyLock;

use redis::Script;

/// Stores a token in its family unless the family is revoked.
/// KEYS: record, family set, tombstone. ARGV: value, ttl ms, member digest, "string" | "hash".
pub static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{JOIN_FAMILY}
        if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        if ARGV[4] == 'hash' then
          redis.call('HSET', KEYS[1], 'grant', ARGV[1])
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        else
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        end
        join(KEYS[2], ARGV[2], ARGV[3])
        return 1
        "#
    ))
});

/// Stores a client unless `max` other unexpired clients are registered; 1 stored, 0 full. The
/// sorted set of live client ids, scored by their ends, is what is counted.
/// KEYS: record, live set. ARGV: value, ttl ms, client id, end ms, now ms, max.
pub static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
        if redis.call('ZSCORE', KEYS[2], ARGV[3]) == false and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
          return 0
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
        if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
        return 1
        "#,
    )
});

/// Replaces a live client's record with a later-ending one, and its score in the live set; a
/// client that is gone stays gone. 1 prolonged, 0 not.
/// KEYS: record, live set. ARGV: value, ttl ms, client id, end ms.
pub static PROLONG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local left = redis.call('PTTL', KEYS[1])
        if left <= 0 or left >= tonumber(ARGV[2]) then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX')
        redis.call('ZADD', KEYS[2], 'XX', ARGV[4], ARGV[3])
        if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
        return 1
        "#,
    )
});

/// Marks a code redeemed; returns {redemptions, grant, issued} or nil.
/// KEYS: code.
pub static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
        local n = redis.call('HINCRBY', KEYS[1], 'redemptions', 1)
        return {n, redis.call('HGET', KEYS[1], 'grant'), redis.call('HGET', KEYS[1], 'issued') or '0'}
        "#,
    )
});

/// Adds a member to a family set, keeping the set at least as long as the member. Shared by
/// the scripts below: (set, ttl ms, member digest).
const JOIN_FAMILY: &str = r#"
        local function join(set, ttl, member)
          redis.call('SADD', set, member)
          if redis.call('PTTL', set) < tonumber(ttl) then redis.call('PEXPIRE', set, ttl) end
        end
"#;

/// Rotates a refresh token: {1, ''} when this call won, {2, rotated} when it was rotated
/// before, {0, ''} when unknown or revoked. HSETNX on the `rotated` field is the one-time switch.
/// The winner stores the successor and its access token in the same step.
/// KEYS: presented, successor, refresh family set, tombstone, access token, access family set.
/// ARGV: rotated value, successor grant, ttl ms, successor digest, access record, access ttl
/// ms, access digest.
pub static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{JOIN_FAMILY}
        if redis.call('EXISTS', KEYS[4]) == 1 then return {{0, ''}} end
        if redis.call('EXISTS', KEYS[1]) == 0 then return {{0, ''}} end
        if redis.call('HSETNX', KEYS[1], 'rotated', ARGV[1]) == 0 then
          return {{2, redis.call('HGET', KEYS[1], 'rotated')}}
        end
        redis.call('HSET', KEYS[2], 'grant', ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        join(KEYS[3], ARGV[3], ARGV[4])
        redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[6])
        join(KEYS[6], ARGV[6], ARGV[7])
        return {{1, ''}}
        "#
    ))
});

/// Stores what a redeemed code is exchanged for, unless its family is revoked (0), and marks
/// the code issued if it is still there (1).
/// KEYS: code, tombstone, access token, access family set, refresh token, refresh family set.
/// ARGV: access record, access ttl ms, access digest, refresh grant ('' for none), refresh ttl
/// ms, refresh digest.
pub static ISSUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{JOIN_FAMILY}
        if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
        join(KEYS[4], ARGV[2], ARGV[3])
        if ARGV[4] ~= '' then
          redis.call('HSET', KEYS[5], 'grant', ARGV[4])
          redis.call('PEXPIRE', KEYS[5], ARGV[5])
          join(KEYS[6], ARGV[5], ARGV[6])
        end
        if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'issued', '1') end
        return 1
        "#
    ))
});

/// Revokes a family: writes its tombstone and deletes every member.
/// KEYS: family set, tombstone. ARGV: ttl ms, member key prefix.
pub static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], '1', 'PX', ARGV[1]) end
        local members = redis.call('SMEMBERS', KEYS[1])
        for _, digest in ipairs(members) do redis.call('DEL', ARGV[2] .. digest) end
        redis.call('DEL', KEYS[1])
        return #members
        "#,
    )
});
