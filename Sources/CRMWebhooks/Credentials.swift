/// The shared-secret checks of Pipedrive (HTTP Basic) and the Salesforce relay (a bearer token).
///
/// Why: both vendors prove who they are only by a header that must equal a configured
/// secret; compared in constant time, answered 401 otherwise.
public enum SharedSecret {
    /// `Authorization: Basic base64(user:password)` for `credentials` = `user:password`.
    public static func verifyBasic(authorization: String?, credentials: String) throws(AuthenticationError) {
        guard let authorization, authorization.hasPrefix("Basic ") else {
            throw AuthenticationError(reason: "Authorization: missing HTTP Basic credentials")
        }
        let expected = "Basic " + Base64.encode(Array(credentials.utf8))
        guard constantTimeEqual(Array(authorization.utf8), Array(expected.utf8)) else {
            throw AuthenticationError(reason: "Authorization: wrong user or password")
        }
    }

    /// `Authorization: Bearer <token>`.
    public static func verifyBearer(authorization: String?, token: String) throws(AuthenticationError) {
        guard let authorization, authorization.hasPrefix("Bearer ") else {
            throw AuthenticationError(reason: "Authorization: missing bearer token")
        }
        guard constantTimeEqual(Array(authorization.utf8), Array(("Bearer " + token).utf8)) else {
            throw AuthenticationError(reason: "Authorization: wrong bearer token")
        }
    }
}

/// The CRMs a connector can receive from, with what each one needs.
public enum Vendor: String, CaseIterable, Sendable {
    case hubspot, pipedrive, salesforce

    /// The environment variable (or key of the mapping's secrets file) holding the secret.
    public var secretName: String {
        switch self {
        case .hubspot: "DEALSTREAM_HUBSPOT_CLIENT_SECRET"
        case .pipedrive: "DEALSTREAM_PIPEDRIVE_BASIC_AUTH"
        case .salesforce: "DEALSTREAM_SALESFORCE_TOKEN"
        }
    }

    /// Translates a request body of this vendor.
    public func translate(_ body: [UInt8], mapping: Mapping) throws(PayloadError) -> Translation {
        switch self {
        case .hubspot: try HubSpotWebhook.translate(body, mapping: mapping)
        case .pipedrive: try PipedriveWebhook.translate(body, mapping: mapping)
        case .salesforce: try SalesforceChangeEvent.translate(body, mapping: mapping)
        }
    }
}
