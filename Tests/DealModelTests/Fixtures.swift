@testable import DealModel

/// The acceptance kit's model, inline, so the domain tests need no files.
let testModel: Model = {
    let json = #"""
        {"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.08,"JPY":0.0067},
         "pipelines":{"default":{"stages":["lead","qualified","proposal","negotiation"],"qualified_stage":"qualified"},
                      "renewals":{"stages":["review","quote"],"qualified_stage":"review"}}}
        """#
    return try! Model.parse(Array(json.utf8))
}()

/// A valid deal event as JSON text, with fields overridable.
func dealJSON(
    id: String = "d1",
    source: String = "crm",
    version: Int64 = 1,
    pipeline: String = "default",
    stage: String = "lead",
    status: String = "open",
    amount: String = "100",
    currency: String = "USD",
    created: String = "2026-06-01T09:00:00Z",
    closed: String? = nil,
    owner: String = "\"rep-1\"",
    extra: String = ""
) -> String {
    let closedField = closed.map { ",\"closed_at\":\"\($0)\"" } ?? ""
    return """
        {"kind":"deal","source":"\(source)","id":"\(id)","version":\(version),"occurred_at":"2026-06-01T09:00:00Z",\
        "deal":{"pipeline":"\(pipeline)","stage":"\(stage)","status":"\(status)","amount":\(amount),\
        "currency":"\(currency)","owner":\(owner),"team":"T","lead_source":"web","account":"acme",\
        "created_at":"\(created)"\(closedField)\(extra)}}
        """
}

func deleteJSON(id: String = "d1", source: String = "crm", version: Int64) -> String {
    #"{"kind":"deal_deleted","source":"\#(source)","id":"\#(id)","version":\#(version)}"#
}

func decode(_ text: String, model: Model = testModel) -> Result<Event, EventRejection> {
    EventDecoder(model: model).decode(json: Array(text.utf8))
}
