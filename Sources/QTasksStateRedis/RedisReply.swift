/// A Redis reply as a Swift value, copied out of hiredis' `redisReply`.
package enum RedisReply: Equatable, Sendable {
    /// A bulk string (binary safe).
    case string([UInt8])
    /// A simple string, such as `OK` or `QUEUED`.
    case status(String)
    case integer(Int64)
    /// A nil bulk string or nil array (for `EXEC`: the transaction was
    /// aborted because a watched key changed).
    case `nil`
    case array([RedisReply])
    /// An error reply, such as `WRONGTYPE Operation against a key holding the wrong kind of value`.
    case error(String)
}
