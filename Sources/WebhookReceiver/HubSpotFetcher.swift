import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fetches a deal's properties from HubSpot's CRM API
/// (`GET {base}/crm/v3/objects/deals/{id}?properties=…`, bearer token).
///
/// Why: a deal whose required properties have not all arrived by webhook (HubSpot sends
/// nothing but the id on `deal.creation`) would otherwise be held back until they do.
/// The base URL is configurable so tests run against a local server.
public struct HubSpotFetcher: Sendable {
    public var baseURL: String
    public var accessToken: String?
    public var properties: [String]
    public var timeout: Double

    public init(baseURL: String, accessToken: String?, properties: [String], timeout: Double = 5) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.accessToken = accessToken
        self.properties = properties
        self.timeout = timeout
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The response body for deal `id` (HubSpot's documented shape), or a failure naming the status.
    public func fetchDeal(id: String) async throws -> [UInt8] {
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id
        let query = properties.joined(separator: ",")
        guard let url = URL(string: "\(baseURL)/crm/v3/objects/deals/\(escaped)?properties=\(query)&archived=false")
        else {
            throw Failure(description: "api_base_url: not a URL: \(baseURL)")
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        if let accessToken { request.setValue("Bearer \(accessToken)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else { throw Failure(description: "GET \(url.path): HTTP \(status)") }
        return Array(data)
    }
}
