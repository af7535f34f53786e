import GRDB

extension SQLiteResultStore {
    /// The schema's migrations, in GRDB's `grdb_migrations` table. A later
    /// layout adds a migration after the last; never edit one that shipped.
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("qtasks_results_v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE qtasks_tasks (
                        uuid       TEXT NOT NULL PRIMARY KEY,
                        task_name  TEXT NOT NULL,
                        queue      TEXT NOT NULL,
                        status     TEXT NOT NULL,
                        finished   INTEGER NOT NULL,
                        updated_at REAL NOT NULL,
                        expires_at REAL NOT NULL,
                        record     TEXT NOT NULL
                    );
                    -- Listing, newest first (and the queue and time filters,
                    -- and status 'success'). The other indexes leave out
                    -- uuid, which breaks ties only: smaller entries, and
                    -- SQLite sorts the ties.
                    CREATE INDEX qtasks_tasks_by_update ON qtasks_tasks (updated_at, uuid);
                    -- The other statuses, a few rows among the successes
                    -- (a query names the condition to use it).
                    CREATE INDEX qtasks_tasks_by_status ON qtasks_tasks (status, updated_at)
                        WHERE status <> 'success';
                    CREATE INDEX qtasks_tasks_by_task_name ON qtasks_tasks (task_name, updated_at);
                    -- The bound: counting the finished records and finding
                    -- the oldest. Partial: unfinished rows are not in it.
                    CREATE INDEX qtasks_tasks_finished ON qtasks_tasks (updated_at) WHERE finished = 1;
                    -- Deleting expired rows without reading the table.
                    CREATE INDEX qtasks_tasks_by_expiry ON qtasks_tasks (expires_at);

                    CREATE TABLE qtasks_workers (
                        worker_id  TEXT NOT NULL PRIMARY KEY,
                        expires_at REAL NOT NULL,
                        heartbeat  TEXT NOT NULL
                    );
                    """)
        }
        // Workflows (docs/workflows.md): records, joins with one row per
        // member (a settle touches two small rows, whatever the group's
        // size), and step ends.
        migrator.registerMigration("qtasks_workflows_v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE qtasks_workflows (
                        id         TEXT NOT NULL PRIMARY KEY,
                        status     TEXT NOT NULL,
                        updated_at REAL NOT NULL,
                        expires_at REAL NOT NULL,
                        record     TEXT NOT NULL
                    );
                    CREATE INDEX qtasks_workflows_by_expiry ON qtasks_workflows (expires_at);
                    CREATE INDEX qtasks_workflows_by_update ON qtasks_workflows (updated_at, id);
                    -- head: the join without its members (JSON); counters:
                    -- JoinLedger.Counters (JSON); initial: the members the
                    -- opening started (JSON array).
                    CREATE TABLE qtasks_joins (
                        id         TEXT NOT NULL PRIMARY KEY,
                        expires_at REAL NOT NULL,
                        head       TEXT NOT NULL,
                        counters   TEXT NOT NULL,
                        initial    TEXT NOT NULL
                    );
                    CREATE INDEX qtasks_joins_by_expiry ON qtasks_joins (expires_at);
                    CREATE TABLE qtasks_join_members (
                        join_id TEXT NOT NULL,
                        idx     INTEGER NOT NULL,
                        step    TEXT NOT NULL,
                        outcome TEXT,
                        answer  TEXT,
                        PRIMARY KEY (join_id, idx)
                    ) WITHOUT ROWID;
                    -- result NULL: a delivery of the step is running.
                    CREATE TABLE qtasks_steps (
                        uuid       TEXT NOT NULL PRIMARY KEY,
                        result     TEXT,
                        runner     TEXT,
                        expires_at REAL NOT NULL
                    );
                    CREATE INDEX qtasks_steps_by_expiry ON qtasks_steps (expires_at);
                    """)
        }
        return migrator
    }()

    /// Runs the migrations that are not applied yet.
    ///
    /// GRDB reads the list of applied migrations before it takes the write
    /// lock, so two processes opening a new file together may both start
    /// the first one; the second then fails (its `CREATE TABLE` finds the
    /// table). That failure is harmless, the other process did the work:
    /// when the migrations are complete after it, opening goes on.
    static func migrate(_ pool: DatabasePool) throws {
        do {
            try migrator.migrate(pool)
        } catch {
            let complete = (try? pool.read { db in try migrator.hasCompletedMigrations(db) }) ?? false
            if !complete { throw error }
        }
    }
}
