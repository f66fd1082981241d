import CRMWebhooks
import DealModel
import DealstreamTestSupport
import Foundation
import Testing

/// HubSpot signature v3 against a vector computed independently (Python's hmac), and the
/// shared-secret checks of Pipedrive and Salesforce.
struct SignatureTests {
    let secret = "7e2a3c1d-5b4f-4c9a-8e6d-2f1b0a9c8d7e"
    let body = Array(
        #"[{"eventId":1,"subscriptionType":"deal.creation","objectId":42,"occurredAt":1793610000000}]"#.utf8
    )
    let uri = "https://hooks.example.com/webhooks/hubspot?portal=62515"
    /// base64(HMAC-SHA256(secret, "POST" + uri + body + "1793610000000")), from Python.
    let expected = "jy6UKvmKInn2P3w90Me9YmnVN4SR/TKpBxhkaICFS08="

    @Test func hubSpotV3MatchesAnIndependentVector() throws {
        #expect(
            HubSpotSignature.sign(secret: secret, method: "POST", uri: uri, body: body, timestamp: "1793610000000")
                == expected
        )
        try HubSpotSignature.verify(
            secret: secret,
            method: "POST",
            uri: uri,
            body: body,
            timestamp: "1793610000000",
            signature: expected,
            nowMilliseconds: 1_793_610_060_000
        )
    }

    @Test func hubSpotV3RefusesWrongSecretBodyAndOldTimestamps() {
        #expect(throws: AuthenticationError.self) {
            try HubSpotSignature.verify(
                secret: secret + "x",
                method: "POST",
                uri: uri,
                body: body,
                timestamp: "1793610000000",
                signature: expected,
                nowMilliseconds: 1_793_610_060_000
            )
        }
        #expect(throws: AuthenticationError.self) {
            try HubSpotSignature.verify(
                secret: secret,
                method: "POST",
                uri: uri,
                body: body + [0x20],
                timestamp: "1793610000000",
                signature: expected,
                nowMilliseconds: 1_793_610_060_000
            )
        }
        // Six minutes later the same (valid) request is refused.
        #expect(throws: AuthenticationError(reason: "X-HubSpot-Request-Timestamp: older than 5 minutes")) {
            try HubSpotSignature.verify(
                secret: secret,
                method: "POST",
                uri: uri,
                body: body,
                timestamp: "1793610000000",
                signature: expected,
                nowMilliseconds: 1_793_610_360_001
            )
        }
        #expect(throws: AuthenticationError.self) {
            try HubSpotSignature.verify(
                secret: secret,
                method: "POST",
                uri: uri,
                body: body,
                timestamp: nil,
                signature: expected,
                nowMilliseconds: 1_793_610_060_000
            )
        }
    }

    @Test func hubSpotDecodesTheDocumentedCharactersOfTheURI() {
        #expect(
            HubSpotSignature.sign(
                secret: secret,
                method: "POST",
                uri: "https://hooks.example.com/webhooks/hubspot%3Fportal=62515",
                body: body,
                timestamp: "1793610000000"
            )
                == HubSpotSignature.sign(
                    secret: secret,
                    method: "POST",
                    uri: "https://hooks.example.com/webhooks/hubspot?portal=62515",
                    body: body,
                    timestamp: "1793610000000"
                )
        )
    }

    @Test func basicAndBearer() throws {
        // base64("user:pa:ss") = dXNlcjpwYTpzcw==
        try SharedSecret.verifyBasic(authorization: "Basic dXNlcjpwYTpzcw==", credentials: "user:pa:ss")
        #expect(throws: AuthenticationError.self) {
            try SharedSecret.verifyBasic(authorization: "Basic dXNlcjpwYTpzcx==", credentials: "user:pa:ss")
        }
        #expect(throws: AuthenticationError.self) {
            try SharedSecret.verifyBasic(authorization: nil, credentials: "user:pa:ss")
        }
        try SharedSecret.verifyBearer(authorization: "Bearer t0k3n", token: "t0k3n")
        #expect(throws: AuthenticationError.self) {
            try SharedSecret.verifyBearer(authorization: "Bearer t0k3", token: "t0k3n")
        }
    }
}

/// Mapping files: the examples in config/ are valid for the acceptance model, and every
/// mistake is an error naming its key.
struct MappingTests {
    let model: Model

    init() throws { model = try Model.parse(Array(try FixtureFiles.modelJSON.utf8)) }

    @Test(arguments: Vendor.allCases)
    func examplesAreValidForTheAcceptanceModel(_ vendor: Vendor) throws {
        var mapping = try FixtureFiles.mapping(vendor)
        try mapping.validate(against: model)
        #expect(mapping.knownCurrencies?.contains("EUR") == true)
    }

    private func error(_ json: String, validate: Bool = false) -> PayloadError? {
        do {
            var m = try Mapping.parse(Array(json.utf8))
            if validate { try m.validate(against: model) }
            return nil
        } catch { return error }
    }

    @Test func errorsNameTheField() {
        let ok = #""pipelines":{"123":{"pipeline":"default","stages":{"7":"lead"}}}"#
        #expect(error(#"{\#(ok)}"#)?.description == "mapping.source: missing")
        #expect(error(#"{"source":"s",\#(ok),"colour":1}"#)?.description == "mapping.colour: unknown key")
        #expect(
            error(#"{"source":"s","pipelines":{"123":{"pipeline":"default","stages":{"7":"x"}}}}"#, validate: true)?
                .description
                == #"mapping.pipelines.123.stages.7: unknown stage "x" in the model"#
        )
        #expect(
            error(#"{"source":"s","pipelines":{"9":{"pipeline":"nope","stages":{"7":"lead"}}}}"#, validate: true)?
                .description
                == #"mapping.pipelines.9.pipeline: unknown pipeline "nope" in the model"#
        )
        #expect(
            error(#"{"source":"s",\#(ok),"default_currency":"XYZ"}"#, validate: true)?.description
                == #"mapping.default_currency: no rate for "XYZ" in the model"#
        )
        #expect(
            error(#"{"source":"s",\#(ok),"owners":{"5":{"team":"x"}}}"#)?.description
                == "mapping.owners.5.owner: missing"
        )
        #expect(
            error(
                #"{"source":"s","pipelines":{"1":{"pipeline":"default","stages":{"7":"lead"},"won_stages":["w"],"lost_stages":["w"]}}}"#
            )?
            .description == #"mapping.pipelines.1.lost_stages: stage "w" is also a won stage"#
        )
    }
}

/// What the translators refuse or warn about, with the field named.
struct PayloadTests {
    @Test func badPayloadsNameTheField() throws {
        let hubspot = try FixtureFiles.mapping(.hubspot)
        #expect(throws: PayloadError(field: "body", reason: "expected a JSON array of events, got an object")) {
            try HubSpotWebhook.translate(Array("{}".utf8), mapping: hubspot)
        }
        #expect(throws: PayloadError(field: "[0].occurredAt", reason: "missing")) {
            try HubSpotWebhook.translate(
                Array(#"[{"subscriptionType":"deal.creation","objectId":1,"eventId":2}]"#.utf8),
                mapping: hubspot
            )
        }
        let pipedrive = try FixtureFiles.mapping(.pipedrive)
        #expect(throws: PayloadError(field: "current.value", reason: "expected a number, got \"lots\"")) {
            try PipedriveWebhook.translate(
                Array(
                    #"{"meta":{"action":"updated","object":"deal","id":1,"timestamp":5},"current":{"value":"lots"}}"#
                        .utf8
                ),
                mapping: pipedrive
            )
        }
    }

    @Test func hubSpotGenericWebhooksForDealsAreRead() throws {
        let body = Array(
            #"[{"eventId":7,"subscriptionId":1,"portalId":62515,"appId":1,"occurredAt":1793610000000,"subscriptionType":"object.propertyChange","attemptNumber":0,"objectId":5,"objectTypeId":"0-3","propertyName":"amount","propertyValue":"10"},{"eventId":8,"subscriptionId":1,"portalId":62515,"appId":1,"occurredAt":1793610000000,"subscriptionType":"object.creation","attemptNumber":0,"objectId":6,"objectTypeId":"0-1"}]"#
                .utf8
        )
        let t = try HubSpotWebhook.translate(body, mapping: try FixtureFiles.mapping(.hubspot))
        #expect(
            t.changes == [
                DealChange(
                    recordID: "5",
                    version: 1_793_610_000_000,
                    occurredAt: "2026-11-02T09:00:00Z",
                    action: .upsert([.amount: "10.0"])
                )
            ]
        )
        #expect(t.ignored == 1)
    }

    @Test func unknownVendorStageIsRefusedNamingIt() throws {
        let mapping = try FixtureFiles.mapping(.pipedrive)
        let body = Array(
            #"{"meta":{"action":"added","object":"deal","id":9,"timestamp":5},"current":{"id":9,"stage_id":77,"pipeline_id":1,"status":"open","value":1,"add_time":"2026-11-03 10:00:00"}}"#
                .utf8
        )
        #expect(
            throws: PayloadError(
                field: "deal 9.stage",
                reason: #"vendor stage "77" of pipeline "1" is not in the mapping"#
            )
        ) {
            _ = try translateSequence(.pipedrive, bodies: [body], mapping: mapping)
        }
    }

    @Test func aCurrencyWithoutRateIsRefusedWhenTheModelIsKnown() throws {
        var mapping = try FixtureFiles.mapping(.pipedrive)
        try mapping.validate(against: try Model.parse(Array(try FixtureFiles.modelJSON.utf8)))
        let body = Array(
            #"{"meta":{"action":"added","object":"deal","id":9,"timestamp":5},"current":{"id":9,"stage_id":1,"pipeline_id":1,"status":"open","value":1,"currency":"XYZ","add_time":"2026-11-03 10:00:00"}}"#
                .utf8
        )
        #expect(throws: PayloadError(field: "deal 9.currency", reason: #"no rate for "XYZ" in the model"#)) {
            _ = try translateSequence(.pipedrive, bodies: [body], mapping: mapping)
        }
    }

    @Test func salesforceGapEventsWarnWithAResyncHint() throws {
        let t = try SalesforceChangeEvent.translate(
            try FixtureFiles.file(.salesforce, "08-delete-and-gap.json"),
            mapping: try FixtureFiles.mapping(.salesforce)
        )
        #expect(t.changes.count == 1)
        #expect(t.warnings.count == 1)
        #expect(t.warnings.first?.contains("GAP_UPDATE for Opportunity 006B000000Opp002") == true)
        #expect(t.warnings.first?.contains("resync") == true)
    }

    @Test func hubSpotDealIsHeldBackUntilTheRequiredPropertiesArrive() throws {
        let mapping = try FixtureFiles.mapping(.hubspot)
        let assembler = DealAssembler(mapping: mapping)
        var state = DealState()
        let changes = try HubSpotWebhook.translate(
            try FixtureFiles.file(.hubspot, "fetch-webhook.json"),
            mapping: mapping
        ).changes
        var last: DealAssembler.Outcome = .nothing
        for change in changes { last = try assembler.apply(change, to: &state) }
        #expect(last == .heldBack(missing: ["amount", "created_at"]))
        let fetched = try HubSpotWebhook.translateDeal(
            try FixtureFiles.file(.hubspot, "fetch-response-9077.json"),
            mapping: mapping
        )
        guard case .event(let event) = try assembler.apply(fetched, to: &state) else {
            Issue.record("no event after the fetch")
            return
        }
        #expect(
            String(decoding: event, as: UTF8.self)
                == (try FixtureFiles.expected(.hubspot, "fetch-expected.ndjson")).first
        )
    }
}

/// Versions: deletion, late changes after it, restore, and re-sent retries.
struct AssemblerVersionTests {
    let mapping: Mapping
    init() throws { mapping = try FixtureFiles.mapping(.hubspot) }

    private func change(_ version: UInt64, _ action: DealChange.Action) -> DealChange {
        DealChange(recordID: "1", version: version, occurredAt: nil, action: action)
    }

    private func version(_ outcome: DealAssembler.Outcome) throws -> Int64? {
        guard case .event(let bytes) = outcome else { return nil }
        return try JSONParser.parse(bytes)["version"].flatMap { if case .int(let v) = $0 { v } else { nil } }
    }

    @Test func deletionCutsAndRestoreStartsAfterIt() throws {
        let assembler = DealAssembler(mapping: mapping)
        var state = DealState()
        let full: [DealField: String?] = [
            .pipeline: "default", .stage: "qualifiedtobuy", .amount: "5", .createdAt: "2026-11-02T09:00:00Z",
        ]
        #expect(try version(assembler.apply(change(10, .upsert(full)), to: &state)) == 10_000)
        #expect(try version(assembler.apply(change(20, .delete), to: &state)) == 20_999)
        // A change from before the deletion, delivered after it: nothing is sent.
        #expect(try assembler.apply(change(15, .upsert([.amount: "7"])), to: &state) == .nothing)
        // The deletion again (a retry): nothing new.
        #expect(try assembler.apply(change(20, .delete), to: &state) == .nothing)
        // Restored later: the deal is back, above the deletion, with what was known.
        let restored = try assembler.apply(change(30, .restore([:])), to: &state)
        #expect(try version(restored) == 30_000)
        guard case .event(let bytes) = restored else { return }
        #expect(try JSONParser.parse(bytes)["deal"]?["amount"]?.numberValue == 7)
    }
}
