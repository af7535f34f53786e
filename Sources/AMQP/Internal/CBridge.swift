import CRabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory that rabbitmq-c borrows during one call.
///
/// `amqp_bytes_t` and tables only point at memory; the C client never copies
/// it before the call that encodes it. Everything handed to C for one call is
/// allocated here and freed together after that call returns, so no Swift
/// temporary can die under rabbitmq-c (the cause of "Malformed UTF-8 in
/// shortstr" connection closes).
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { free(pointer) }
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        var copy = string
        return copy.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        let count = buffer.count
        guard count > 0, let source = buffer.baseAddress else { return amqp_bytes_t(len: 0, bytes: nil) }
        let pointer = malloc(count)!
        allocations.append(pointer)
        pointer.copyMemory(from: source, byteCount: count)
        return amqp_bytes_t(len: count, bytes: pointer)
    }

    func bytes(_ array: [UInt8]) -> amqp_bytes_t {
        array.withUnsafeBytes { bytes($0) }
    }

    /// A NUL-terminated copy, for the few C functions that take `char *`.
    func cString(_ string: String) -> UnsafePointer<CChar> {
        let pointer = strdup(string)!
        allocations.append(UnsafeMutableRawPointer(pointer))
        return UnsafePointer(pointer)
    }

    func table(_ table: AMQPTable?) -> amqp_table_t {
        guard let table, !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(amqp_table_entry_t.self, count: table.count)
        // Sorted so the same table always encodes to the same bytes.
        for (index, (key, value)) in table.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: fieldValue(value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(count, MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    private func fieldValue(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .bool(let v):
            field.kind = FieldKind.boolean
            field.value.boolean = v ? 1 : 0
        case .int8(let v):
            field.kind = FieldKind.i8
            field.value.i8 = v
        case .uint8(let v):
            field.kind = FieldKind.u8
            field.value.u8 = v
        case .int16(let v):
            field.kind = FieldKind.i16
            field.value.i16 = v
        case .uint16(let v):
            field.kind = FieldKind.u16
            field.value.u16 = v
        case .int32(let v):
            field.kind = FieldKind.i32
            field.value.i32 = v
        case .uint32(let v):
            field.kind = FieldKind.u32
            field.value.u32 = v
        case .int64(let v):
            field.kind = FieldKind.i64
            field.value.i64 = v
        case .uint64(let v):
            field.kind = FieldKind.u64
            field.value.u64 = v
        case .float(let v):
            field.kind = FieldKind.f32
            field.value.f32 = v
        case .double(let v):
            field.kind = FieldKind.f64
            field.value.f64 = v
        case .decimal(let scale, let v):
            field.kind = FieldKind.decimal
            field.value.decimal = amqp_decimal_t(decimals: scale, value: v)
        case .string(let v):
            field.kind = FieldKind.utf8
            field.value.bytes = bytes(v)
        case .bytes(let v):
            field.kind = FieldKind.bytes
            field.value.bytes = bytes(v)
        case .array(let values):
            field.kind = FieldKind.array
            let entries = allocate(amqp_field_value_t.self, count: max(values.count, 1))
            for (index, element) in values.enumerated() { entries[index] = fieldValue(element) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
        case .table(let nested):
            field.kind = FieldKind.table
            field.value.table = table(nested)
        case .timestamp(let v):
            field.kind = FieldKind.timestamp
            field.value.u64 = v
        case .void:
            field.kind = FieldKind.void
        }
        return field
    }

    func properties(_ properties: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        if let v = properties.contentType { c.content_type = bytes(v); flags |= PropertyFlag.contentType }
        if let v = properties.contentEncoding { c.content_encoding = bytes(v); flags |= PropertyFlag.contentEncoding }
        if let v = properties.headers { c.headers = table(v); flags |= PropertyFlag.headers }
        if let v = properties.deliveryMode { c.delivery_mode = v; flags |= PropertyFlag.deliveryMode }
        if let v = properties.priority { c.priority = v; flags |= PropertyFlag.priority }
        if let v = properties.correlationID { c.correlation_id = bytes(v); flags |= PropertyFlag.correlationID }
        if let v = properties.replyTo { c.reply_to = bytes(v); flags |= PropertyFlag.replyTo }
        if let v = properties.expiration { c.expiration = bytes(v); flags |= PropertyFlag.expiration }
        if let v = properties.messageID { c.message_id = bytes(v); flags |= PropertyFlag.messageID }
        if let v = properties.timestamp { c.timestamp = v; flags |= PropertyFlag.timestamp }
        if let v = properties.type { c.type = bytes(v); flags |= PropertyFlag.type }
        if let v = properties.userID { c.user_id = bytes(v); flags |= PropertyFlag.userID }
        if let v = properties.appID { c.app_id = bytes(v); flags |= PropertyFlag.appID }
        c._flags = flags
        return c
    }
}

/// Copies out of rabbitmq-c's memory, which belongs to the connection's
/// buffers and is reused once released.
enum CDecode {
    static func bytes(_ value: amqp_bytes_t) -> [UInt8] {
        guard value.len > 0, let pointer = value.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: value.len))
    }

    /// Decodes as UTF-8, replacing invalid sequences (for names and texts the
    /// broker sends; message bodies stay bytes).
    static func string(_ value: amqp_bytes_t) -> String {
        guard value.len > 0, let pointer = value.bytes else { return "" }
        let buffer = UnsafeRawBufferPointer(start: pointer, count: value.len)
        return String(decoding: buffer, as: UTF8.self)
    }

    private static func strictString(_ value: amqp_bytes_t) -> String? {
        guard value.len > 0, let pointer = value.bytes else { return "" }
        let buffer = UnsafeRawBufferPointer(start: pointer, count: value.len)
        return String(validating: buffer, as: UTF8.self)
    }

    static func table(_ table: amqp_table_t) -> AMQPTable {
        var result = AMQPTable(minimumCapacity: Int(table.num_entries))
        guard table.num_entries > 0, let entries = table.entries else { return result }
        for index in 0..<Int(table.num_entries) {
            let entry = entries[index]
            result[string(entry.key)] = fieldValue(entry.value)
        }
        return result
    }

    static func fieldValue(_ field: amqp_field_value_t) -> AMQPFieldValue {
        switch field.kind {
        case FieldKind.boolean: return .bool(field.value.boolean != 0)
        case FieldKind.i8: return .int8(field.value.i8)
        case FieldKind.u8: return .uint8(field.value.u8)
        case FieldKind.i16: return .int16(field.value.i16)
        case FieldKind.u16: return .uint16(field.value.u16)
        case FieldKind.i32: return .int32(field.value.i32)
        case FieldKind.u32: return .uint32(field.value.u32)
        case FieldKind.i64: return .int64(field.value.i64)
        case FieldKind.u64: return .uint64(field.value.u64)
        case FieldKind.f32: return .float(field.value.f32)
        case FieldKind.f64: return .double(field.value.f64)
        case FieldKind.decimal: return .decimal(scale: field.value.decimal.decimals, value: field.value.decimal.value)
        case FieldKind.utf8:
            if let text = strictString(field.value.bytes) { return .string(text) }
            return .bytes(bytes(field.value.bytes))
        case FieldKind.bytes: return .bytes(bytes(field.value.bytes))
        case FieldKind.array:
            let array = field.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).map { fieldValue(entries[$0]) })
        case FieldKind.table: return .table(table(field.value.table))
        case FieldKind.timestamp: return .timestamp(field.value.u64)
        default: return .void
        }
    }

    static func properties(_ c: amqp_basic_properties_t) -> AMQPProperties {
        let flags = c._flags
        func has(_ flag: UInt32) -> Bool { flags & flag != 0 }
        var p = AMQPProperties()
        if has(PropertyFlag.contentType) { p.contentType = string(c.content_type) }
        if has(PropertyFlag.contentEncoding) { p.contentEncoding = string(c.content_encoding) }
        if has(PropertyFlag.headers) { p.headers = table(c.headers) }
        if has(PropertyFlag.deliveryMode) { p.deliveryMode = c.delivery_mode }
        if has(PropertyFlag.priority) { p.priority = c.priority }
        if has(PropertyFlag.correlationID) { p.correlationID = string(c.correlation_id) }
        if has(PropertyFlag.replyTo) { p.replyTo = string(c.reply_to) }
        if has(PropertyFlag.expiration) { p.expiration = string(c.expiration) }
        if has(PropertyFlag.messageID) { p.messageID = string(c.message_id) }
        if has(PropertyFlag.timestamp) { p.timestamp = c.timestamp }
        if has(PropertyFlag.type) { p.type = string(c.type) }
        if has(PropertyFlag.userID) { p.userID = string(c.user_id) }
        if has(PropertyFlag.appID) { p.appID = string(c.app_id) }
        return p
    }
}

/// `AMQP_FIELD_KIND_*`: the wire type letters of field values.
enum FieldKind {
    static let boolean = UInt8(ascii: "t")
    static let i8 = UInt8(ascii: "b")
    static let u8 = UInt8(ascii: "B")
    static let i16 = UInt8(ascii: "s")
    static let u16 = UInt8(ascii: "u")
    static let i32 = UInt8(ascii: "I")
    static let u32 = UInt8(ascii: "i")
    static let i64 = UInt8(ascii: "l")
    static let u64 = UInt8(ascii: "L")
    static let f32 = UInt8(ascii: "f")
    static let f64 = UInt8(ascii: "d")
    static let decimal = UInt8(ascii: "D")
    static let utf8 = UInt8(ascii: "S")
    static let array = UInt8(ascii: "A")
    static let timestamp = UInt8(ascii: "T")
    static let table = UInt8(ascii: "F")
    static let void = UInt8(ascii: "V")
    static let bytes = UInt8(ascii: "x")
}

/// `AMQP_BASIC_*_FLAG`: which optional properties are present.
enum PropertyFlag {
    static let contentType: UInt32 = 1 << 15
    static let contentEncoding: UInt32 = 1 << 14
    static let headers: UInt32 = 1 << 13
    static let deliveryMode: UInt32 = 1 << 12
    static let priority: UInt32 = 1 << 11
    static let correlationID: UInt32 = 1 << 10
    static let replyTo: UInt32 = 1 << 9
    static let expiration: UInt32 = 1 << 8
    static let messageID: UInt32 = 1 << 7
    static let timestamp: UInt32 = 1 << 6
    static let type: UInt32 = 1 << 5
    static let userID: UInt32 = 1 << 4
    static let appID: UInt32 = 1 << 3
}

/// AMQP 0-9-1 method ids (`AMQP_*_METHOD`); the C macros carry casts that
/// Swift does not import.
enum MethodID {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOK: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicGetOK: amqp_method_number_t = 0x003C_0047
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

enum FrameType {
    static let method: UInt8 = 1
    static let header: UInt8 = 2
    static let body: UInt8 = 3
    static let heartbeat: UInt8 = 8
}

/// The AMQP `shortstr` limit: rabbitmq-c asserts on longer names.
let shortStringLimit = 255

func validateShortString(_ value: String, _ what: String) throws {
    if value.utf8.count > shortStringLimit {
        throw AMQPError(.invalidArgument, "\(what) is \(value.utf8.count) bytes; AMQP allows at most 255")
    }
}

func validateTable(_ table: AMQPTable?, _ what: String) throws {
    guard let table else { return }
    for (key, value) in table {
        try validateShortString(key, "\(what) key '\(key.prefix(32))…'")
        try validateFieldValue(value, "\(what) '\(key.prefix(32))'")
    }
}

/// RabbitMQ cannot decode an infinite or NaN float: it closes the whole
/// connection (`541 INTERNAL_ERROR`). Refused here instead, with a clear
/// error, before anything is sent.
private func validateFieldValue(_ value: AMQPFieldValue, _ what: String) throws {
    switch value {
    case .double(let number) where !number.isFinite:
        throw AMQPError(.invalidArgument, "\(what) is \(number); AMQP tables carry finite numbers only")
    case .float(let number) where !number.isFinite:
        throw AMQPError(.invalidArgument, "\(what) is \(number); AMQP tables carry finite numbers only")
    case .table(let nested):
        try validateTable(nested, what)
    case .array(let elements):
        for element in elements { try validateFieldValue(element, what) }
    default:
        break
    }
}

func validateProperties(_ p: AMQPProperties) throws {
    let fields: [(String?, String)] = [
        (p.contentType, "content type"), (p.contentEncoding, "content encoding"),
        (p.correlationID, "correlation id"), (p.replyTo, "reply-to"), (p.expiration, "expiration"),
        (p.messageID, "message id"), (p.type, "type"), (p.userID, "user id"), (p.appID, "app id"),
    ]
    for case (let value?, let name) in fields { try validateShortString(value, name) }
    try validateTable(p.headers, "header")
    if let expiration = p.expiration, UInt32(expiration) == nil {
        throw AMQPError(.invalidArgument, "expiration must be a whole number of milliseconds, not '\(expiration)'")
    }
}
