extension Manifest {
    /// Why `name` cannot be an environment variable a user gives a function (in `env` or as a secret), or `nil`.
    /// The same rule as the manifest's `env`: 1–128 characters of A-Z, 0-9 and `_`, not starting with a digit, and
    /// not `VERGE_*`, which Verge sets itself. The sentence never quotes more than the name.
    package static func environmentNameProblem(_ name: String) -> String? {
        guard isEnvName(name) else {
            return "'\(name.prefix(128))' is not a valid variable name: names are 1–128 characters of A-Z, 0-9 and "
                + "'_', not starting with a digit"
        }
        guard !name.hasPrefix(reservedEnvPrefix) else {
            return "'\(name)' is reserved: names starting with \(reservedEnvPrefix) are set by Verge itself"
        }
        return nil
    }

    /// Longest value of one variable, in bytes.
    package static var maxEnvironmentValueBytes: Int { maxEnvValueBytes }

    /// Most variables a function may be given in one place (its `env`, or its secrets).
    package static var maxEnvironmentCount: Int { maxEnvCount }
}
