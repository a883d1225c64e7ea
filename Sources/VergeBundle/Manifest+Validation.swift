import VergeCore

extension Manifest {
    /// Checks every rule of `verge.json` on a manifest built in code; decoding already does this.
    public func validate() throws(VergeError) {
        if let problem = firstProblem() {
            throw VergeError(.invalidBundle, "\(Manifest.fileName): \(problem)")
        }
    }

    /// Decodes a manifest from a parsed JSON value: defaults applied, every rule checked.
    init(json: JSONValue) throws(VergeError) {
        guard case .object(let object) = json else {
            throw Self.invalid("must contain a JSON object, got \(json.summary)", prefix: " ")
        }
        let allowed = CodingKeys.allCases.map(\.rawValue)
        let unknown = object.keys.filter { !allowed.contains($0) }.sorted()
        if !unknown.isEmpty {
            let names = unknown.map { Quoted.single($0) }.joined(separator: ", ")
            let allowedNames = allowed.sorted().joined(separator: ", ")
            throw Self.invalid(
                "unknown \(unknown.count == 1 ? "key" : "keys") \(names) (allowed keys: \(allowedNames))")
        }
        let missing = [CodingKeys.name, .runtime, .entry].filter { object[$0.rawValue] == nil }
        if !missing.isEmpty {
            let names = missing.map { Quoted.single($0.rawValue) }.joined(separator: ", ")
            throw Self.invalid("missing required \(missing.count == 1 ? "key" : "keys") \(names)")
        }

        let name = try Self.string(object, .name)
        let runtimeName = try Self.string(object, .runtime)
        guard let runtime = Runtime(rawValue: runtimeName) else {
            let choices = Runtime.allCases.map { Quoted.json($0.rawValue) }.joined(separator: " or ")
            throw Self.invalid("runtime must be \(choices), got \(Quoted.json(runtimeName))")
        }
        let entry = try Self.string(object, .entry)
        if runtime != .python, object[CodingKeys.handler.rawValue] != nil {
            throw Self.invalid("handler applies only to runtime python; remove it for runtime \(runtime.rawValue)")
        }
        var network = Network.none
        if let value = object[CodingKeys.network.rawValue] {
            let choices = Network.allCases.map { Quoted.json($0.rawValue) }.joined(separator: " or ")
            guard case .string(let text) = value else {
                throw Self.invalid("network must be \(choices), got \(value.summary)")
            }
            guard let chosen = Network(rawValue: text) else {
                throw Self.invalid("network must be \(choices), got \(Quoted.json(text))")
            }
            network = chosen
        }
        var regions: [String] = []
        if let value = object[CodingKeys.regions.rawValue] {
            guard case .array(let items) = value else {
                throw Self.invalid("regions must be an array of region names, got \(value.summary)")
            }
            for item in items {
                guard case .string(let text) = item else {
                    throw Self.invalid("regions must hold region names (strings), got \(item.summary)")
                }
                regions.append(text)
            }
        }
        var env: [String: String] = [:]
        if let value = object[CodingKeys.env.rawValue] {
            guard case .object(let variables) = value else {
                throw Self.invalid("env must be an object mapping variable names to strings, got \(value.summary)")
            }
            for (key, value) in variables.sorted(by: { $0.key < $1.key }) {
                guard case .string(let text) = value else {
                    throw Self.invalid("env value of \(Quoted.single(key)) must be a string, got \(value.summary)")
                }
                env[key] = text
            }
        }
        var idempotentMethods: [String] = []
        if let value = object[CodingKeys.idempotentMethods.rawValue] {
            guard case .array(let items) = value else {
                throw Self.invalid("idempotent_methods must be an array of method names, got \(value.summary)")
            }
            for item in items {
                guard case .string(let method) = item else {
                    throw Self.invalid("idempotent_methods must hold method names, got \(item.summary)")
                }
                idempotentMethods.append(method)
            }
        }
        self.init(
            name: name,
            runtime: runtime,
            entry: entry,
            handler: try Self.optionalString(object, .handler) ?? Self.defaultHandler,
            memoryMB: try Self.optionalInteger(object, .memoryMB) ?? Self.defaultMemoryMB,
            timeoutMs: try Self.optionalInteger(object, .timeoutMs) ?? Self.defaultTimeoutMs,
            maxWorkers: try Self.optionalInteger(object, .maxWorkers) ?? Self.defaultMaxWorkers,
            idleTimeoutSeconds: try Self.optionalInteger(object, .idleTimeoutSeconds, nullAllowed: true),
            minInstances: try Self.optionalInteger(object, .minInstances) ?? 0,
            prewarm: try Self.optionalBool(object, .prewarm) ?? false,
            env: env,
            limits: try object[CodingKeys.limits.rawValue].map { value throws(VergeError) in
                try ManifestLimits(json: value)
            } ?? ManifestLimits(),
            network: network,
            regions: regions,
            idempotentMethods: idempotentMethods
        )
        try validate()
    }

    // MARK: Rules

    static let memoryRange = 16...10_240
    static let timeoutRange = 1...900_000
    static let workersRange = 1...256
    static let idleTimeoutRange = 1...86_400
    static let maxEnvCount = 64
    static let maxEnvValueBytes = 4096
    static let reservedEnvPrefix = "VERGE_"

    /// Methods a manifest may mark idempotent (GET, HEAD and OPTIONS always are).
    static let markableMethods = ["POST", "PUT", "PATCH", "DELETE"]

    /// The first broken rule, as a sentence without the file name, or `nil`.
    func firstProblem() -> String? {
        for method in idempotentMethods where !Self.markableMethods.contains(method) {
            return "idempotent_methods may name \(Self.markableMethods.joined(separator: ", ")), got "
                + Quoted.json(method)
        }
        if Set(idempotentMethods).count != idempotentMethods.count {
            return "idempotent_methods names a method twice"
        }
        if !FunctionName.isValid(name) {
            return "name must be 1–63 characters of a-z, 0-9 and '-', starting with a letter, "
                + "got \(Quoted.json(name))"
        }
        switch runtime {
        case .python:
            if let problem = Self.pythonEntryProblem(entry) {
                return "entry \(Quoted.json(entry)) \(problem). For runtime python, entry is the relative path of "
                    + "the handler's .py file inside the bundle, like \"main.py\""
            }
            if !Self.isPythonIdentifier(handler) {
                return
                    "handler must be a Python identifier (1–100 letters, digits and '_', not starting with a digit), "
                    + "got \(Quoted.json(handler))"
            }
            if Self.pythonKeywords.contains(handler) {
                return "handler cannot be the Python keyword \(Quoted.json(handler))"
            }
        case .swift:
            if !Self.isExecutableName(entry) {
                return "entry must be the executable product's name for runtime swift (1–100 characters of A-Z, a-z, "
                    + "0-9, '_' and '-'), got \(Quoted.json(entry))"
            }
            if handler != Self.defaultHandler {
                return "handler applies only to runtime python; remove it for runtime \(runtime.rawValue)"
            }
        }
        if let problem = Self.rangeProblem(CodingKeys.memoryMB, memoryMB, Self.memoryRange) { return problem }
        if let problem = Self.rangeProblem(CodingKeys.timeoutMs, timeoutMs, Self.timeoutRange) { return problem }
        if let problem = Self.rangeProblem(CodingKeys.maxWorkers, maxWorkers, Self.workersRange) { return problem }
        if let idleTimeoutSeconds,
            let problem = Self.rangeProblem(CodingKeys.idleTimeoutSeconds, idleTimeoutSeconds, Self.idleTimeoutRange)
        {
            return problem
        }
        if let problem = limits.firstProblem() { return problem }
        if let problem = Self.regionsProblem(regions) { return problem }
        if !(0...maxWorkers).contains(minInstances) {
            return "min_instances must be between 0 and max_workers (\(maxWorkers)), got \(minInstances)"
        }
        if env.count > Self.maxEnvCount {
            return "env has \(env.count) variables; at most \(Self.maxEnvCount) are allowed"
        }
        for (key, value) in env.sorted(by: { $0.key < $1.key }) {
            if !Self.isEnvName(key) {
                return "env name \(Quoted.single(key)) is invalid: names are 1–128 characters of A-Z, 0-9 and '_', "
                    + "not starting with a digit"
            }
            if key.hasPrefix(Self.reservedEnvPrefix) {
                return "env name \(Quoted.single(key)) is reserved: names starting with \(Self.reservedEnvPrefix) "
                    + "are set by Verge itself"
            }
            if value.utf8.count > Self.maxEnvValueBytes {
                return "env value of \(Quoted.single(key)) is \(value.utf8.count) bytes; the limit is "
                    + "\(Self.maxEnvValueBytes) bytes"
            }
            if value.utf8.contains(0) {
                return "env value of \(Quoted.single(key)) contains a NUL character"
            }
        }
        return nil
    }

    private static func rangeProblem(_ key: CodingKeys, _ value: Int, _ range: ClosedRange<Int>) -> String? {
        range.contains(value)
            ? nil : "\(key.rawValue) must be between \(range.lowerBound) and \(range.upperBound), got \(value)"
    }

    private static func pythonEntryProblem(_ entry: String) -> String? {
        if let problem = BundlePath.problem(entry, maxLength: 1024) { return problem }
        let fileName = entry.split(separator: "/").last ?? ""
        if !fileName.hasSuffix(".py") || fileName.utf8.count <= 3 { return "is not a .py file" }
        return nil
    }

    private static func isPythonIdentifier(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...100).contains(bytes.count), !isDigit(bytes[0]) else { return false }
        return bytes.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isExecutableName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...100).contains(bytes.count) else { return false }
        return bytes.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// `^[A-Z_][A-Z0-9_]{0,127}$`
    static func isEnvName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...128).contains(bytes.count), !isDigit(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || isDigit($0) || $0 == UInt8(ascii: "_")
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static let pythonKeywords: Set<String> = [
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    ]

    // MARK: Typed access to the JSON object

    static let maxRegions = 32

    /// Regions are host-name-shaped (`a-z`, `0-9`, `-`, starting with a letter), distinct, at most ``maxRegions``.
    static func regionsProblem(_ regions: [String]) -> String? {
        if regions.count > maxRegions { return "regions may name at most \(maxRegions) regions, got \(regions.count)" }
        var seen = Set<String>()
        for region in regions {
            guard HostName.isValid(region) else {
                return "regions entry \(Quoted.json(region)) is not a region name (1–63 characters of a-z, 0-9 and "
                    + "'-', starting with a letter)"
            }
            guard seen.insert(region).inserted else { return "regions names \(Quoted.json(region)) twice" }
        }
        return nil
    }

    private static func invalid(_ problem: String, prefix: String = ": ") -> VergeError {
        VergeError(.invalidBundle, "\(fileName)\(prefix)\(problem)")
    }

    private static func string(_ object: [String: JSONValue], _ key: CodingKeys) throws(VergeError) -> String {
        guard let value = try optionalString(object, key) else {
            throw invalid("missing required key \(Quoted.single(key.rawValue))")
        }
        return value
    }

    private static func optionalString(_ object: [String: JSONValue], _ key: CodingKeys) throws(VergeError) -> String? {
        guard let value = object[key.rawValue] else { return nil }
        guard case .string(let text) = value else {
            throw invalid("\(key.rawValue) must be a string, got \(value.summary)")
        }
        return text
    }

    private static func optionalBool(_ object: [String: JSONValue], _ key: CodingKeys) throws(VergeError) -> Bool? {
        switch object[key.rawValue] {
        case nil: return nil
        case .bool(let flag)?: return flag
        case let value?: throw invalid("\(key.rawValue) must be true or false, got \(value.summary)")
        }
    }

    private static func optionalInteger(
        _ object: [String: JSONValue],
        _ key: CodingKeys,
        nullAllowed: Bool = false
    ) throws(VergeError) -> Int? {
        switch object[key.rawValue] {
        case nil: return nil
        case .null? where nullAllowed: return nil
        case .integer(let number)?: return number
        case let value?: throw invalid("\(key.rawValue) must be an integer, got \(value.summary)")
        }
    }
}
