/// The business model the metrics need: reporting currency, exchange rates, pipelines.
///
/// Loaded once from the model file (METRICS.md §5) and shared read-only by validation
/// and every metric. Pipelines keep the file's order of stages: index 0 first.
public struct Model: Sendable, Equatable {
    /// One pipeline: its open stages in order and the stage that makes a lead qualified.
    public struct Pipeline: Sendable, Equatable {
        public var name: String
        public var stages: [String]
        public var qualifiedStage: String
        public var qualifiedIndex: Int { stages.firstIndex(of: qualifiedStage)! }
        public var lastIndex: Int { stages.count - 1 }
    }

    public var reportingCurrency: String
    public var fx: [String: Double]
    /// Pipelines in a stable order (sorted by name); events refer to them by index.
    public var pipelines: [Pipeline]
    private var pipelineIndexByName: [String: Int]

    public init(reportingCurrency: String, fx: [String: Double], pipelines: [Pipeline]) {
        self.reportingCurrency = reportingCurrency
        self.fx = fx
        self.pipelines = pipelines.sorted { $0.name < $1.name }
        var index: [String: Int] = [:]
        for (i, p) in self.pipelines.enumerated() { index[p.name] = i }
        self.pipelineIndexByName = index
    }

    public func pipelineIndex(named name: String) -> Int? { pipelineIndexByName[name] }

    /// Parses and checks a model file's bytes.
    public static func parse(_ bytes: [UInt8]) throws(ModelError) -> Model {
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch {
            throw ModelError(field: "(file)", reason: "not JSON: \(error)")
        }
        guard case .object = root else { throw ModelError(field: "(file)", reason: "not a JSON object") }
        let currency = root["reporting_currency"]?.stringValue ?? "USD"
        guard case .object(let fxMembers)? = root["fx"] else {
            throw ModelError(field: "fx", reason: "missing or not an object")
        }
        var fx: [String: Double] = [:]
        for (code, value) in fxMembers {
            guard case .some = value.numberValue, !isBool(value), let rate = value.numberValue, rate.isFinite, rate >= 0
            else {
                throw ModelError(field: "fx.\(code)", reason: "not a finite non-negative number")
            }
            fx[code] = rate
        }
        guard case .object(let pipelineMembers)? = root["pipelines"], !pipelineMembers.isEmpty else {
            throw ModelError(field: "pipelines", reason: "missing, empty or not an object")
        }
        var pipelines: [Pipeline] = []
        for (name, spec) in pipelineMembers {
            guard !name.isEmpty else { throw ModelError(field: "pipelines", reason: "a pipeline id is empty") }
            guard case .array(let stageValues)? = spec["stages"], !stageValues.isEmpty else {
                throw ModelError(field: "pipelines.\(name).stages", reason: "missing, empty or not an array")
            }
            var stages: [String] = []
            for s in stageValues {
                guard let stage = s.stringValue, !stage.isEmpty else {
                    throw ModelError(
                        field: "pipelines.\(name).stages",
                        reason: "every stage must be a non-empty string"
                    )
                }
                guard !stages.contains(stage) else {
                    throw ModelError(field: "pipelines.\(name).stages", reason: "stage \(stage) appears twice")
                }
                stages.append(stage)
            }
            guard let qualified = spec["qualified_stage"]?.stringValue, stages.contains(qualified) else {
                throw ModelError(
                    field: "pipelines.\(name).qualified_stage",
                    reason: "missing or not one of the pipeline's stages"
                )
            }
            pipelines.append(Pipeline(name: name, stages: stages, qualifiedStage: qualified))
        }
        return Model(reportingCurrency: currency, fx: fx, pipelines: pipelines)
    }

    private static func isBool(_ v: JSONValue) -> Bool {
        if case .bool = v { return true }
        return false
    }
}

/// A model file that cannot be used, with the field that is wrong.
public struct ModelError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public var description: String { "model: \(field): \(reason)" }
}
