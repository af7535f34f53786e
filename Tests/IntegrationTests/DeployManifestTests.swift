import Foundation
import Testing

/// The deployment files in `deploy/` (systemd unit, Dockerfile, compose file,
/// Kubernetes manifests): each parses, runs `qtasks-example`, and passes it
/// only flags that `qtasks-example --help` lists; stop timeouts exceed the
/// worker's `--shutdown-grace`.
///
/// No broker needed. YAML is read by python3's PyYAML (converted to JSON);
/// the YAML tests are skipped, saying so, when it is missing. The systemd
/// unit is read by a small INI reader, and checked by `systemd-analyze
/// verify` too when that is installed.
@Suite("Deploy manifests")
struct DeployManifestTests {
    static let deploy = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy")

    /// python3 on PATH that can `import yaml`.
    static let python: String? = {
        guard let python = IntegrationEnvironment.onPath("python3"),
              let result = try? runSync(python, ["-c", "import yaml"]), result.status == 0
        else { return nil }
        return python
    }()

    static var yamlAvailable: Bool { python != nil }

    // MARK: - scripts

    /// Every shell script of deploy/ and .ci/ passes shellcheck (with the
    /// files they source): quoting, `set -e` and pipefail traps caught
    /// before they strand a node or a half-started cluster.
    @Test(.enabled(if: IntegrationEnvironment.onPath("shellcheck") != nil, "shellcheck is not installed (deploy/install-deps.sh installs it)"))
    func scriptsPassShellcheck() throws {
        let root = IntegrationEnvironment.repositoryRoot
        var scripts = try FileManager.default.contentsOfDirectory(atPath: Self.deploy.path)
            .filter { $0.hasSuffix(".sh") }.sorted().map { Self.deploy.appendingPathComponent($0).path }
        scripts.append(root.appendingPathComponent(".ci/run").path)
        #expect(scripts.count >= 6, "\(scripts)")
        let shellcheck = try #require(IntegrationEnvironment.onPath("shellcheck"))
        // From the repository root: the scripts' `# shellcheck source=deploy/lib/common.sh`
        // directives are relative to it.
        let result = try Self.runSync(shellcheck, ["-x"] + scripts, in: root)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    // MARK: - systemd

    @Test("systemd template unit: sections, graceful stop, flags of ExecStart")
    func systemdUnit() throws {
        let url = Self.deploy.appendingPathComponent("systemd/qtasks-worker@.service")
        let unit = try UnitFile(contentsOf: url)
        #expect(unit.sections.keys.sorted() == ["Install", "Service", "Unit"])
        let service = try #require(unit.sections["Service"])

        #expect(service["EnvironmentFile"] == ["/etc/qtasks/worker.env"])
        // The broker URL is a credential file, named by QTASKS_URL_FILE.
        #expect(service["LoadCredential"]?.contains("qtasks-url:/etc/qtasks/url") == true)
        #expect(service["Environment"]?.contains("QTASKS_URL_FILE=%d/qtasks-url") == true)
        // So are the State and result-store URLs.
        #expect(service["LoadCredential"]?.contains("qtasks-result-store:/etc/qtasks/result-store") == true)
        #expect(service["Environment"]?.contains("QTASKS_RESULT_STORE_FILE=%d/qtasks-result-store") == true)
        #expect(service["KillSignal"] == ["SIGTERM"])
        #expect(service["Restart"] == ["on-failure"])
        #expect(unit.sections["Install"]?["WantedBy"] == ["multi-user.target"])

        let execStart = try #require(service["ExecStart"]?.last)
        let words = execStart.split(separator: " ").map(String.init)
        #expect(words.first == "/usr/local/bin/qtasks-example", "ExecStart runs \(words.first ?? "nothing")")
        // `$VAR` words are expanded by systemd from the environment file.
        let arguments = Array(words.dropFirst()).filter { !$0.hasPrefix("$") }
        try Self.expectKnownFlags(arguments, in: "qtasks-worker@.service ExecStart")

        let timeout = try #require(Double(service["TimeoutStopSec"]?.last ?? ""), "TimeoutStopSec in seconds")
        #expect(timeout > Self.shutdownGrace(arguments), "TimeoutStopSec \(timeout) must exceed --shutdown-grace")
    }

    @Test(
        "systemd-analyze verify accepts the units",
        .enabled(if: IntegrationEnvironment.onPath("systemd-analyze") != nil, "systemd-analyze is not installed"),
        arguments: [
            ("qtasks-worker@.service", "qtasks-worker@1.service", "/usr/local/bin/qtasks-example"),
            ("qtasks-dashboard.service", "qtasks-dashboard.service", "/usr/local/bin/qtasks"),
        ])
    func systemdAnalyzeVerify(unit: String, instance: String, binary: String) throws {
        let source = try String(contentsOf: Self.deploy.appendingPathComponent("systemd/\(unit)"), encoding: .utf8)
        // The unit names the installed binary; verify checks it is executable,
        // so the copy names the one just built.
        let built = binary.hasSuffix("qtasks-example") ? IntegrationEnvironment.workerExecutable : IntegrationEnvironment.cliExecutable
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-unit-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent(unit)
        try source.replacingOccurrences(of: binary + " ", with: built + " ")
            .write(to: copy, atomically: true, encoding: .utf8)

        let analyze = try #require(IntegrationEnvironment.onPath("systemd-analyze"))
        let result = try Self.runSync(analyze, ["verify", "--man=no", directory.appendingPathComponent(instance).path])
        #expect(result.status == 0, "systemd-analyze verify: \(result.stderr)")
        // Unknown keys and bad values are only warnings ("..., ignoring").
        #expect(!result.stderr.contains("ignoring"), "systemd-analyze verify: \(result.stderr)")
    }

    // MARK: - Dockerfile and compose

    @Test("Dockerfile: two stages, the worker as ENTRYPOINT, runtime libraries")
    func dockerfile() throws {
        let text = try String(contentsOf: Self.deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let froms = text.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(froms.count == 2, "a build stage and a runtime stage")
        #expect(froms.first?.contains("swift:") == true)
        for package in ["librabbitmq4", "libhiredis", "libsqlite3-0"] {
            #expect(text.contains(package), "runtime package \(package)")
        }
        #expect(try Self.dockerEntrypoint() == ["/usr/local/bin/qtasks-example"])
        for path in ["Package.swift", "Package.resolved", "Sources", "Tests"] {
            #expect(
                FileManager.default.fileExists(
                    atPath: IntegrationEnvironment.repositoryRoot.appendingPathComponent(path).path),
                "COPY source \(path) exists")
        }
    }

    @Test(
        "docker-compose.yml: RabbitMQ, Redis (appendonly), replicated quorum-queue workers with known flags",
        .enabled(if: yamlAvailable, "python3 with PyYAML (import yaml) is needed to read the YAML files"))
    func compose() throws {
        let documents = try Self.yaml("docker-compose.yml")
        #expect(documents.count == 1)
        let compose = try #require(documents.first as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys) == ["rabbitmq", "redis", "worker", "dashboard"])

        let redis = try #require(services["redis"] as? [String: Any])
        let redisCommand = (redis["command"] as? [String]) ?? []
        #expect(redisCommand.joined(separator: " ").contains("--appendonly yes"))

        let worker = try #require(services["worker"] as? [String: Any])
        let build = try #require(worker["build"] as? [String: Any])
        #expect(build["dockerfile"] as? String == "deploy/Dockerfile")
        #expect(build["context"] as? String == "..")
        #expect((worker["deploy"] as? [String: Any])?["replicas"] as? Int ?? 0 > 1)

        // The image's ENTRYPOINT is the worker: `command` is its arguments.
        #expect(try Self.dockerEntrypoint() == ["/usr/local/bin/qtasks-example"])
        let arguments = try #require(worker["command"] as? [String], "command as a list of strings")
        try Self.expectKnownFlags(arguments, in: "docker-compose.yml worker command")
        #expect(Self.value(of: "--queue-type", in: arguments) == "quorum")

        let environment = try #require(worker["environment"] as? [String: Any])
        #expect((environment["QTASKS_URL"] as? String)?.contains("@rabbitmq:5672") == true)
        #expect((environment["QTASKS_STATE_URL"] as? String)?.hasPrefix("redis://redis:") == true)
        #expect((environment["QTASKS_RESULT_STORE"] as? String)?.hasPrefix("redis://redis:") == true)

        let grace = try #require(worker["stop_grace_period"] as? String)
        let seconds = try #require(Double(grace.hasSuffix("s") ? String(grace.dropLast()) : grace), "stop_grace_period \(grace) in seconds")
        #expect(seconds > Self.shutdownGrace(arguments), "stop_grace_period must exceed --shutdown-grace")
    }

    // MARK: - The dashboard

    @Test(
        "The dashboard's systemd unit and compose service: known flags, credentials from files or the environment, loopback exposure",
        .enabled(if: yamlAvailable, "python3 with PyYAML (import yaml) is needed to read the YAML files"))
    func dashboardManifests() throws {
        let help = try Self.runSync(IntegrationEnvironment.cliExecutable, ["dashboard", "--help"])
        #expect(help.status == 0, "\(help.stderr)")
        let regex = try NSRegularExpression(pattern: "--[a-z][a-z0-9-]*")
        let known = Set(
            regex.matches(in: help.stdout, range: NSRange(help.stdout.startIndex..., in: help.stdout)).compactMap {
                Range($0.range, in: help.stdout).map { String(help.stdout[$0]) }
            })
        #expect(known.contains("--auth-file") && known.contains("--result-store"), "\(known)")

        let unit = try UnitFile(contentsOf: Self.deploy.appendingPathComponent("systemd/qtasks-dashboard.service"))
        let service = try #require(unit.sections["Service"])
        #expect(service["LoadCredential"]?.contains("qtasks-dashboard-auth:/etc/qtasks/dashboard-auth") == true)
        #expect(service["Environment"]?.contains("QTASKS_DASHBOARD_AUTH_FILE=%d/qtasks-dashboard-auth") == true)
        let words = try #require(service["ExecStart"]?.last).split(separator: " ").map(String.init)
        #expect(Array(words.prefix(2)) == ["/usr/local/bin/qtasks", "dashboard"])
        let flags = words.dropFirst(2).filter { $0.hasPrefix("--") }
        #expect(!flags.isEmpty && flags.allSatisfy(known.contains), "\(flags)")
        #expect(Self.value(of: "--host", in: Array(words)) == "127.0.0.1")

        let compose = try #require(try Self.yaml("docker-compose.yml").first as? [String: Any])
        let dashboard = try #require((compose["services"] as? [String: Any])?["dashboard"] as? [String: Any])
        #expect(dashboard["entrypoint"] as? [String] == ["/usr/local/bin/qtasks", "dashboard"])
        let arguments = try #require(dashboard["command"] as? [String])
        #expect(arguments.filter { $0.hasPrefix("--") }.allSatisfy(known.contains), "\(arguments)")
        let environment = try #require(dashboard["environment"] as? [String: Any])
        // A non-loopback bind needs credentials; the port stays on the host's loopback.
        #expect(Self.value(of: "--host", in: arguments) == "0.0.0.0")
        #expect((environment["QTASKS_DASHBOARD_AUTH"] as? String)?.contains(":") == true)
        #expect((environment["QTASKS_RESULT_STORE"] as? String)?.hasPrefix("redis://redis:") == true)
        #expect((dashboard["ports"] as? [String])?.allSatisfy { $0.hasPrefix("127.0.0.1:") } == true)
        let dockerfile = try String(contentsOf: Self.deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("--product qtasks ") && dockerfile.contains("/staging/qtasks "), "the image has qtasks")
    }

    // MARK: - Kubernetes

    @Test(
        "Kubernetes: Deployment with known flags, Secret env, grace period; KEDA ScaledObject on queue length",
        .enabled(if: yamlAvailable, "python3 with PyYAML (import yaml) is needed to read the YAML files"))
    func kubernetes() throws {
        let directory = Self.deploy.appendingPathComponent("kubernetes")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var objects: [[String: Any]] = []
        for file in files {
            for document in try Self.yaml("kubernetes/\(file)") {
                let object = try #require(document as? [String: Any], "\(file): a mapping per document")
                #expect(object["apiVersion"] is String && object["kind"] is String, "\(file): apiVersion and kind")
                objects.append(object)
            }
        }
        func ofKind(_ kind: String) -> [[String: Any]] { objects.filter { $0["kind"] as? String == kind } }
        func name(_ object: [String: Any]) -> String? { (object["metadata"] as? [String: Any])?["name"] as? String }

        let deployment = try #require(ofKind("Deployment").first)
        let podSpec = try #require(
            ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((podSpec["containers"] as? [[String: Any]])?.first)
        #expect(container["command"] == nil, "the image's ENTRYPOINT (qtasks-example) runs")
        #expect(try Self.dockerEntrypoint() == ["/usr/local/bin/qtasks-example"])
        let arguments = try #require(container["args"] as? [String], "args as a list of strings")
        try Self.expectKnownFlags(arguments, in: "\(name(deployment) ?? "Deployment") args")

        let grace = try #require(podSpec["terminationGracePeriodSeconds"] as? Int)
        #expect(Double(grace) > Self.shutdownGrace(arguments), "terminationGracePeriodSeconds must exceed --shutdown-grace")
        #expect(container["resources"] is [String: Any])

        // The URL from a file of a mounted Secret (the example one), not
        // from the environment.
        let env = (container["env"] as? [[String: Any]]) ?? []
        #expect(!env.contains { $0["name"] as? String == "QTASKS_URL" }, "QTASKS_URL in the environment")
        let urlFile = try #require(
            env.first(where: { $0["name"] as? String == "QTASKS_URL_FILE" })?["value"] as? String, "QTASKS_URL_FILE")
        let mounts = (container["volumeMounts"] as? [[String: Any]]) ?? []
        let mount = try #require(
            mounts.first { urlFile.hasPrefix(((($0["mountPath"] as? String) ?? "?") + "/")) }, "a mount holding \(urlFile)")
        let volumes = (podSpec["volumes"] as? [[String: Any]]) ?? []
        let volume = try #require(volumes.first { $0["name"] as? String == mount["name"] as? String })
        let secretName = try #require((volume["secret"] as? [String: Any])?["secretName"] as? String, "a secret volume")
        let secretNames = ofKind("Secret").compactMap(name)
        #expect(secretNames.contains(secretName), "a Secret named \(secretName) among the manifests")
        let secret = try #require(ofKind("Secret").first { name($0) == secretName })
        let keys = ((secret["stringData"] as? [String: Any]) ?? (secret["data"] as? [String: Any]) ?? [:]).keys
        #expect(keys.contains(String(urlFile.split(separator: "/").last ?? "")), "the Secret has the file \(urlFile)")
        // The State and result-store URLs come from the same Secret.
        for variable in ["QTASKS_STATE_URL_FILE", "QTASKS_RESULT_STORE_FILE"] {
            let file = try #require(env.first(where: { $0["name"] as? String == variable })?["value"] as? String, "\(variable)")
            #expect(file.hasPrefix(((mount["mountPath"] as? String) ?? "?") + "/"), "\(variable) in the Secret's mount")
            #expect(keys.contains(String(file.split(separator: "/").last ?? "")), "the Secret has the file \(file)")
        }

        // KEDA: scales this Deployment on the queue's length, host from a TriggerAuthentication.
        let scaledObject = try #require(ofKind("ScaledObject").first)
        #expect((scaledObject["apiVersion"] as? String)?.hasPrefix("keda.sh/") == true)
        let spec = try #require(scaledObject["spec"] as? [String: Any])
        #expect((spec["scaleTargetRef"] as? [String: Any])?["name"] as? String == name(deployment))
        let trigger = try #require((spec["triggers"] as? [[String: Any]])?.first)
        #expect(trigger["type"] as? String == "rabbitmq")
        let metadata = try #require(trigger["metadata"] as? [String: Any])
        #expect(metadata["mode"] as? String == "QueueLength")
        #expect(metadata["value"] is String, "KEDA wants metadata values as strings")
        let queue = try #require(metadata["queueName"] as? String)
        let consumed = Self.values(of: "--queue", in: arguments)
        #expect((consumed.isEmpty ? ["default"] : consumed).contains(queue), "the scaled queue is one the workers consume")
        #expect(metadata["host"] == nil, "the host (with its password) comes from the TriggerAuthentication")

        let authenticationName = try #require((trigger["authenticationRef"] as? [String: Any])?["name"] as? String)
        let authentications = ofKind("TriggerAuthentication").filter { name($0) == authenticationName }
        let authentication = try #require(authentications.first, "TriggerAuthentication \(authenticationName)")
        let targets = ((authentication["spec"] as? [String: Any])?["secretTargetRef"] as? [[String: Any]]) ?? []
        let hostTargets = targets.filter { $0["parameter"] as? String == "host" }
        let host = try #require(hostTargets.first, "a secretTargetRef for host")
        #expect(host["name"] as? String == secretName)
        #expect(host["key"] as? String == "QTASKS_URL")
    }

    // MARK: - Package.swift

    /// The State products need only their own backend's library: a program
    /// that uses memory State alone (product `QTasksState`) builds without
    /// libhiredis-dev and without GRDB; `QTasksStateSQLite` needs GRDB but
    /// not hiredis, `QTasksStateRedis` hiredis but not GRDB. Read from
    /// `swift package dump-package` (the manifest as SwiftPM evaluates it),
    /// following target dependencies transitively.
    @Test(
        "Package.swift: each State product needs only its own backend's library",
        .enabled(if: IntegrationEnvironment.onPath("swift") != nil, "swift is not on PATH"))
    func stateProductsNeedOnlyTheirBackend() throws {
        let graph = try PackageGraph.dumped()

        #expect(graph.products["QTasksState"] == ["QTasksState"])
        #expect(graph.products["QTasksStateSQLite"] == ["QTasksStateSQLite"])
        #expect(graph.products["QTasksStateRedis"] == ["QTasksStateRedis"])
        #expect(graph.products["QTasksStateStores"] == ["QTasksStateStores"])

        // Memory State alone, and the scheduler (which takes any StateStore):
        // no C library at all, no GRDB.
        for target in ["QTasksState", "QTasksScheduler"] {
            let closure = try graph.closure(of: target)
            for heavy in ["CHiredis", "CRabbitMQ", "GRDB.swift/GRDB", "QTasksStateSQLite", "QTasksStateRedis"] {
                #expect(!closure.contains(heavy), "\(target) depends on \(heavy): \(closure.sorted())")
            }
        }
        let sqlite = try graph.closure(of: "QTasksStateSQLite")
        #expect(sqlite.contains("GRDB.swift/GRDB") && !sqlite.contains("CHiredis"), "\(sqlite.sorted())")
        let redis = try graph.closure(of: "QTasksStateRedis")
        #expect(redis.contains("CHiredis") && !redis.contains("GRDB.swift/GRDB"), "\(redis.sorted())")
        let stores = try graph.closure(of: "QTasksStateStores")
        #expect(stores.isSuperset(of: ["QTasksStateSQLite", "QTasksStateRedis", "CHiredis", "GRDB.swift/GRDB"]))
    }

    /// The sources agree with the manifest: SwiftPM lets a module import
    /// another it does not declare when that one happens to be built
    /// already, so a stray `import GRDB` in the memory backend would build
    /// here and fail for a user without the backends.
    @Test("Sources of QTasksState and QTasksScheduler import no backend module")
    func stateCoreImportsNoBackend() throws {
        let root = IntegrationEnvironment.repositoryRoot.appendingPathComponent("Sources")
        let forbidden = ["GRDB", "CHiredis", "QTasksStateSQLite", "QTasksStateRedis", "QTasksStateStores"]
        var checked = 0
        for module in ["QTasksState", "QTasksScheduler"] {
            let directory = root.appendingPathComponent(module)
            let files = try #require(FileManager.default.enumerator(atPath: directory.path))
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }
                    .map { $0.dropFirst("import ".count).trimmingCharacters(in: .whitespaces) }
                for imported in imports where forbidden.contains(imported) {
                    Issue.record("\(module)/\(file) imports \(imported)")
                }
                checked += 1
            }
        }
        #expect(checked >= 10, "found only \(checked) Swift files")
    }

    // MARK: - Helpers

    /// The long flags `qtasks-example --help` lists.
    static let helpFlags: Result<Set<String>, any Error> = Result {
        let result = try runSync(IntegrationEnvironment.workerExecutable, ["--help"])
        guard result.status == 0 else {
            throw ManifestError("qtasks-example --help exited \(result.status): \(result.stderr)")
        }
        let regex = try NSRegularExpression(pattern: "--[a-z][a-z0-9-]*")
        let text = result.stdout
        let flags = regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range, in: text).map { String(text[$0]) }
        }
        return Set(flags)
    }

    /// The worker's flags that take no value (`--publish-events`): in its
    /// help, an option line whose flag is not followed by `<value>`.
    static let booleanFlags: Set<String> = {
        guard let result = try? runSync(IntegrationEnvironment.workerExecutable, ["--help"]) else { return [] }
        var flags: Set<String> = []
        for line in result.stdout.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("-"), let range = trimmed.range(of: "--") else { continue }
            let rest = trimmed[range.lowerBound...]
            let flag = rest.prefix { $0 != " " && $0 != "," }
            if !rest.dropFirst(flag.count).hasPrefix(" <") { flags.insert(String(flag)) }
        }
        return flags
    }()

    /// Every `--flag` (or `--flag=value`) in `arguments` is one the worker has.
    static func expectKnownFlags(_ arguments: [String], in place: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let known = try helpFlags.get()
        #expect(known.contains("--shutdown-grace"), "qtasks-example --help lists its flags", sourceLocation: sourceLocation)
        let flags = arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) }
        #expect(!flags.isEmpty, "\(place): no flags found", sourceLocation: sourceLocation)
        for flag in flags {
            #expect(known.contains(flag), "\(place): \(flag) is not a flag of qtasks-example", sourceLocation: sourceLocation)
        }
        // Every other flag takes a value.
        #expect(booleanFlags.contains("--publish-events") && !booleanFlags.contains("--queue"), "\(booleanFlags)")
        for (index, argument) in arguments.enumerated()
        where argument.hasPrefix("--") && !argument.contains("=") && !booleanFlags.contains(argument) {
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            #expect(next != nil && !next!.hasPrefix("--"), "\(place): \(argument) has no value", sourceLocation: sourceLocation)
        }
    }

    static func values(of flag: String, in arguments: [String]) -> [String] {
        var values: [String] = []
        for (index, argument) in arguments.enumerated() {
            if argument == flag, index + 1 < arguments.count { values.append(arguments[index + 1]) }
            if argument.hasPrefix(flag + "=") { values.append(String(argument.dropFirst(flag.count + 1))) }
        }
        return values
    }

    static func value(of flag: String, in arguments: [String]) -> String? { values(of: flag, in: arguments).last }

    /// The worker's --shutdown-grace (its default is 30 s).
    static func shutdownGrace(_ arguments: [String]) -> Double {
        value(of: "--shutdown-grace", in: arguments).flatMap(Double.init) ?? 30
    }

    /// The exec-form ENTRYPOINT of deploy/Dockerfile.
    static func dockerEntrypoint() throws -> [String] {
        let text = try String(contentsOf: deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("ENTRYPOINT ") }
        guard lines.count == 1 else { throw ManifestError("deploy/Dockerfile: \(lines.count) ENTRYPOINT lines") }
        let json = Data(lines[0].dropFirst("ENTRYPOINT ".count).utf8)
        guard let words = try JSONSerialization.jsonObject(with: json) as? [String] else {
            throw ManifestError("deploy/Dockerfile: ENTRYPOINT is not in exec form")
        }
        return words
    }

    /// The documents of a YAML file under deploy/, as JSON objects.
    static func yaml(_ relativePath: String) throws -> [Any] {
        guard let python else { throw ManifestError("python3 with PyYAML is not available") }
        let script = """
            import json, sys, yaml
            with open(sys.argv[1]) as f:
                json.dump([d for d in yaml.safe_load_all(f) if d is not None], sys.stdout)
            """
        let path = deploy.appendingPathComponent(relativePath).path
        let result = try runSync(python, ["-c", script, path])
        guard result.status == 0 else { throw ManifestError("\(relativePath) does not parse: \(result.stderr)") }
        guard let documents = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [Any] else {
            throw ManifestError("\(relativePath): no documents")
        }
        return documents
    }

    /// Runs a short command to its end (these all take well under a second).
    static func runSync(
        _ executable: String, _ arguments: [String], in workingDirectory: URL? = nil
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        // Output to files: no pipe can fill up and block the child.
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-manifest-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stdoutURL = directory.appendingPathComponent("stdout")
        let stderrURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let stdout = try FileHandle(forWritingTo: stdoutURL)
        let stderr = try FileHandle(forWritingTo: stderrURL)
        defer {
            try? stdout.close()
            try? stderr.close()
        }
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: try Data(contentsOf: stdoutURL), as: UTF8.self),
            String(decoding: try Data(contentsOf: stderrURL), as: UTF8.self)
        )
    }
}

struct ManifestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A systemd unit file: sections of `Key=value` lines (a key may repeat;
/// `\` at the end of a line continues it; `#` and `;` start comments).
struct UnitFile {
    var sections: [String: [String: [String]]] = [:]

    init(contentsOf url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        var section: String?
        var pending = ""
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = pending + rawLine.trimmingCharacters(in: .whitespaces)
            pending = ""
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasSuffix("\\") {
                line.removeLast()
                pending = line + " "
                continue
            }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ManifestError("\(url.lastPathComponent):\(number + 1): bad section header \(line)")
                }
                let name = String(line.dropFirst().dropLast())
                guard sections[name] == nil else {
                    throw ManifestError("\(url.lastPathComponent):\(number + 1): section [\(name)] twice")
                }
                sections[name] = [:]
                section = name
                continue
            }
            guard let section, let equals = line.firstIndex(of: "=") else {
                throw ManifestError("\(url.lastPathComponent):\(number + 1): not Key=value in a section: \(line)")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw ManifestError("\(url.lastPathComponent):\(number + 1): bad key '\(key)'")
            }
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[section, default: [:]][key, default: []].append(value)
        }
        guard pending.isEmpty else { throw ManifestError("\(url.lastPathComponent): ends inside a continued line") }
    }
}

/// The package's targets and products as `swift package dump-package` prints
/// them.
struct PackageGraph {
    /// Each target's direct dependencies: local target names, and
    /// `package/product` for products of other packages.
    var targets: [String: [String]]
    /// Each product's targets.
    var products: [String: [String]]

    /// Runs `swift package dump-package` at the repository root. It reads
    /// the manifest only (no resolution, no build), in a scratch directory
    /// of its own: `swift test` holds the lock on `.build` while it runs.
    static func dumped() throws -> PackageGraph {
        guard let swift = IntegrationEnvironment.onPath("swift") else { throw ManifestError("swift is not on PATH") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-dump-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try DeployManifestTests.runSync(
            swift, ["package", "--scratch-path", scratch.path, "dump-package"], in: IntegrationEnvironment.repositoryRoot)
        guard result.status == 0 else { throw ManifestError("swift package dump-package failed: \(result.stderr)") }
        guard let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
              let targetList = json["targets"] as? [[String: Any]], let productList = json["products"] as? [[String: Any]]
        else { throw ManifestError("dump-package printed no targets or products") }
        var targets: [String: [String]] = [:]
        for target in targetList {
            guard let name = target["name"] as? String else { continue }
            let dependencies = (target["dependencies"] as? [[String: Any]]) ?? []
            targets[name] = dependencies.compactMap { dependency in
                // {"byName": [name, condition]}, {"target": [name, condition]},
                // {"product": [name, package, aliases, condition]}.
                if let byName = (dependency["byName"] ?? dependency["target"]) as? [Any] { return byName.first as? String }
                if let product = dependency["product"] as? [Any], let name = product.first as? String {
                    return "\(product.count > 1 ? (product[1] as? String) ?? "" : "")/\(name)"
                }
                return nil
            }
        }
        var products: [String: [String]] = [:]
        for product in productList {
            if let name = product["name"] as? String { products[name] = product["targets"] as? [String] ?? [] }
        }
        return PackageGraph(targets: targets, products: products)
    }

    /// Everything `target` depends on, directly or not.
    func closure(of target: String) throws -> Set<String> {
        guard targets[target] != nil else { throw ManifestError("no target \(target) in Package.swift") }
        var seen: Set<String> = []
        var pending = targets[target] ?? []
        while let next = pending.popLast() {
            guard seen.insert(next).inserted else { continue }
            pending += targets[next] ?? []
        }
        return seen
    }
}
