import SwitchyardDashboard
import Testing

@Suite("The dashboard's login")
struct DashboardLoginTests {
  static func basic(_ credentials: String) -> String {
    "Basic " + base64(Array(credentials.utf8))
  }

  static func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    var text = ""
    var index = 0
    while index < bytes.count {
      let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
      let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
      for position in 0..<4 {
        text.append(position <= chunk.count ? alphabet[(value >> (18 - 6 * position)) & 63] : "=")
      }
      index += 3
    }
    return text
  }

  @Test func theRightUserAndPasswordAreAdmittedAndNothingElse() throws {
    let login = try DashboardLogin(user: "admin", password: "s3cret:with colon")
    #expect(login.admits(authorization: Self.basic("admin:s3cret:with colon")))
    #expect(login.admits(authorization: "basic  " + Self.base64(Array("admin:s3cret:with colon".utf8))))
    #expect(!login.admits(authorization: nil))
    #expect(!login.admits(authorization: Self.basic("admin:s3cret:with colo")))
    #expect(!login.admits(authorization: Self.basic("admin:s3cret:with colonX")))
    #expect(!login.admits(authorization: Self.basic("Admin:s3cret:with colon")))
    #expect(!login.admits(authorization: Self.basic("")))
    #expect(!login.admits(authorization: "Bearer " + Self.base64(Array("admin:s3cret:with colon".utf8))))
    #expect(!login.admits(authorization: "Basic !!!"))
    #expect(!login.admits(authorization: "Basic"))
    #expect(!login.admits(authorization: "Basic YWRtaW4=="))
  }

  @Test func badUsersAndEmptyPasswordsAreRefused() {
    #expect(throws: DashboardLoginError.self) { try DashboardLogin(user: "a:b", password: "x") }
    #expect(throws: DashboardLoginError.self) { try DashboardLogin(user: "", password: "x") }
    #expect(throws: DashboardLoginError.self) { try DashboardLogin(user: "admin", password: "") }
    #expect(throws: DashboardLoginError.self) { try DashboardLogin(user: "<b>", password: "x") }
  }
}
