import SwitchyardModel
import Testing

/// A route's TLS options: parsed, checked, and written back the same.
@Suite struct RouteTLSOptionsTests {
  static func parse(_ json: String) throws -> Route {
    try Route.parse(key: Array("\(Route.root)r".utf8), value: Array(json.utf8))
  }

  @Test func optionsRoundTripAndDefaultToOff() throws {
    let json =
      #"{"acme":true,"hosts":["a.test"],"hsts_include_subdomains":true,"hsts_max_age":31536000,"redirect_https":true,"service":"api"}"#
    let route = try Self.parse(json)
    #expect(route.redirectHTTPS && route.acme && route.hstsIncludeSubdomains && route.hstsMaxAge == 31_536_000)
    #expect(String(decoding: route.encoded(), as: UTF8.self) == json)
    let plain = try Self.parse(#"{"service":"api"}"#)
    #expect(!plain.redirectHTTPS && !plain.acme && !plain.hstsIncludeSubdomains && plain.hstsMaxAge == nil)
    #expect(String(decoding: plain.encoded(), as: UTF8.self) == #"{"service":"api"}"#)
  }

  @Test(arguments: [
    (#"{"service":"api","hsts_max_age":-1}"#, "hsts_max_age"),
    (#"{"service":"api","hsts_max_age":63072001}"#, "hsts_max_age"),
    (#"{"service":"api","hsts_max_age":"1"}"#, "hsts_max_age"),
    (#"{"service":"api","hsts_include_subdomains":true}"#, "hsts_include_subdomains"),
    (#"{"service":"api","redirect_https":"yes"}"#, "redirect_https"),
    (#"{"service":"api","acme":true}"#, "acme"),
    (#"{"service":"api","acme":true,"hosts":["a.test","*.b.test"]}"#, "acme"),
    (#"{"service":"api","redirect_http":true}"#, "redirect_http"),
  ])
  func badOptionsAreRefusedNamingTheField(json: String, field: String) throws {
    do {
      _ = try Self.parse(json)
      Issue.record("accepted \(json)")
    } catch let error as RegistrationError {
      #expect(error.field == field, "\(error)")
    }
  }
}
