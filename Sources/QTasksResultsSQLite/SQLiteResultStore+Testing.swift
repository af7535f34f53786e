import GRDB

extension SQLiteResultStore {
    /// Tests only: runs statements in a write transaction (corrupting a row,
    /// ageing one).
    func executeForTesting(_ sql: String, arguments: [String] = []) async throws {
        try await write("run test SQL in") { db in
            try db.execute(sql: sql, arguments: StatementArguments(arguments))
        }
    }

    /// Tests only: the first column of a query's rows, as text.
    func textsForTesting(_ sql: String) async throws -> [String?] {
        try await read("run test SQL in") { db in
            try Row.fetchAll(db, sql: sql).map { row -> String? in
                let value: DatabaseValue = row[0]
                switch value.storage {
                case .null: return nil
                case .int64(let number): return String(number)
                case .double(let number): return String(number)
                case .string(let text): return text
                case .blob(let data): return String(decoding: data, as: UTF8.self)
                }
            }
        }
    }
}
