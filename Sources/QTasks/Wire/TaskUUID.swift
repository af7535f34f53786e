#if canImport(Glibc)
import Glibc
#endif

/// New task uuids: random (version 4) UUIDs in the lowercase text form
/// Python's `str(uuid.uuid4())` gives, which QTasks and Celery producers
/// send.
///
/// Made from `arc4random_buf` (glibc 2.36 and later: a ChaCha20 generator
/// seeded from the kernel's `getrandom`) rather than Foundation's `UUID()`,
/// which on Linux opens and reads `/dev/urandom` for every uuid: a
/// syscall pair per task that showed as a tenth of a batch send's CPU.
@usableFromInline
enum TaskUUID {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    @usableFromInline
    static func make() -> String {
        var bytes: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            arc4random_buf(buffer.baseAddress!, 16)
            buffer[6] = (buffer[6] & 0x0F) | 0x40  // version 4
            buffer[8] = (buffer[8] & 0x3F) | 0x80  // RFC 4122 variant
        }
        return withUnsafeBytes(of: &bytes) { buffer in
            String(unsafeUninitializedCapacity: 36) { text in
                var position = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = hexDigits[Int(buffer[index] >> 4)]
                    text[position + 1] = hexDigits[Int(buffer[index] & 0x0F)]
                    position += 2
                }
                return position
            }
        }
    }
}
