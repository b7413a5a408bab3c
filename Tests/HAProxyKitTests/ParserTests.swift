import Testing

@testable import HAProxyKit

/// The reply parsers against replies captured from HAProxy 2.6.12; no I/O.
@Suite("Reply parsers")
struct ParserTests {
  static let serversState = """
    1
    # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
    srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
    bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
    srv_agent_addr srv_agent_port
    3 be 1 s1 127.0.0.1 2 8 1 1 0 6 3 4 2 0 0 0 - 18081 - 0 0 - - 0
    3 be 3 s4 - 0 1 1 1 9 1 0 0 0 0 0 0 localhost 18081 - 0 0 - - 0
    3 be 2 s2 ::1 2 0 100 100 0 1 0 0 6 0 0 0 - 18082 - 0 0 - - 0

    """

  @Test func serversStateRows() throws {
    let rows = try ServerState.parse(Self.serversState)
    #expect(rows.count == 3)
    let s1 = rows[0]
    #expect(s1.backend == "be" && s1.server == "s1" && s1.id == 1)
    #expect(rows.map(\.id) == [1, 3, 2])
    #expect(s1.address == "127.0.0.1" && s1.port == 18081)
    #expect(s1.operationalState == .running)
    #expect(s1.adminFlags == .forcedDrain)
    #expect(s1.isDrain && !s1.isMaint)
    #expect(s1.userWeight == 1)
    #expect(s1.checkHealth == 4 && !s1.isCheckEnabled)
    #expect(s1.fields["srv_check_status"] == "6")
    let s4 = rows[1]
    #expect(s4.address == nil && s4.fqdn == "localhost")
    #expect(s4.operationalState == .stopped && s4.isMaint && !s4.isDrain)
    #expect(s4.adminFlags.contains(.forcedMaint))
    let s2 = rows[2]
    #expect(s2.address == "::1" && s2.port == 18082 && s2.userWeight == 100 && s2.isCheckEnabled)
    #expect(s2.adminFlags.isEmpty && s2.fqdn == nil)
    #expect(rows.map(\.backendID) == [3, 3, 3])
    #expect(rows.map(\.usesTLS) == [false, false, false])
  }

  @Test("be_id and srv_use_ssl are parsed with the row; a reply without them leaves them nil")
  func serversStateBackendIDAndTLS() throws {
    let columns =
      "be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_check_health"
      + " srv_check_state srv_port"
    let tls = try ServerState.parse("1\n# be_id \(columns) srv_use_ssl\n7 be 1 s1 127.0.0.1 2 0 100 0 6 443 1\n")
    #expect(tls.first?.backendID == 7)
    #expect(tls.first?.usesTLS == true)
    #expect(tls.first?.fields["srv_use_ssl"] == "1")
    let plain = try ServerState.parse("1\n# \(columns)\nbe 1 s1 127.0.0.1 2 0 100 0 6 80\n")
    #expect(plain.first?.backendID == nil)
    #expect(plain.first?.usesTLS == nil)
  }

  @Test func serversStateAdminFlags() throws {
    let flags = ServerState.AdminFlags(rawValue: 0x01 | 0x04 | 0x40)
    #expect(flags == [.forcedMaint, .configMaint, .hostnameMaint])
    #expect(ServerState.AdminFlags(rawValue: 0x10) == .inheritedDrain)
    #expect(ServerState.AdminFlags(rawValue: 0x22) == [.inheritedMaint, .resolutionMaint])
  }

  @Test func serversStateErrors() {
    #expect(throws: HAProxyError.self) { try ServerState.parse("Can't find backend.\n\n") }
    #expect(throws: HAProxyError.self) { try ServerState.parse("1\n# be_id be_name\n3\n") }
    #expect(throws: HAProxyError.self) { try ServerState.parse("2\n# be_id be_name\n") }
  }

  @Test func serversStateOfEmptyBackend() throws {
    #expect(try ServerState.parse("1\n# be_id be_name srv_id srv_name\n\n").isEmpty)
  }

  static let showStat = """
    # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,\
    act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,\
    check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,
    fe,FRONTEND,,,3,5,9979,42,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,40,0,1,1,0,,0,
    be,s1,0,0,2,3,,30,0,0,,0,,0,0,0,0,DRAIN,1,1,0,,,0,,,1,3,1,,0,,2,0,,0,L7OK,200,1,0,30,0,0,0,0,,,
    be,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,"no check",1,1,0,,,0,,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,2,0,,,
    be,BACKEND,0,0,2,3,998,30,0,0,0,0,,0,0,0,0,UP,1,1,0,,1,9,4,,1,3,0,,0,,1,0,,0,,,,0,30,0,0,2,0,,,

    """

  @Test func statRows() throws {
    let rows = try StatRow.parse(Self.showStat)
    #expect(rows.count == 4)
    #expect(rows[0].isFrontend && rows[0].currentSessions == 3 && rows[0].totalSessions == 42)
    let s1 = rows[1]
    #expect(s1.isServer && s1.proxyName == "be" && s1.serviceName == "s1")
    #expect(s1.currentSessions == 2 && s1.status == "DRAIN" && s1.weight == 1 && s1.totalSessions == 30)
    #expect(s1.http2xxResponses == 30 && s1.http5xxResponses == 0)
    #expect(s1["check_status"] == "L7OK" && s1["qlimit"] == nil)
    #expect(rows[2].status == "no check" && rows[2].http5xxResponses == 2)
    #expect(rows[3].isBackend && rows[3].status == "UP")
  }

  @Test func csvQuoting() {
    #expect(StatRow.csvFields("a,\"b,c\",\"say \"\"hi\"\"\",,") == ["a", "b,c", "say \"hi\"", "", ""])
  }

  @Test func statNeedsHeader() {
    #expect(throws: HAProxyError.self) { try StatRow.parse("Unknown command.\n") }
  }

  static let serversConn = """
    # bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim \
    idle_cur idle_per_thr[2]
    be/s1 3/1 127.0.0.1 18081 - 5000 1 1 1 0 2 -1 2 1 1
    be/s2 3/2 127.0.0.1 18082 - 0 0 0 0 0 0 0 0
    be/s4 3/3 - 18081 - 0 0 0 0 0 0 0 0

    """

  @Test func serverConnections() throws {
    let rows = try ServerConnections.parse(Self.serversConn)
    #expect(rows.count == 3)
    #expect(rows[0].backend == "be" && rows[0].server == "s1" && rows[0].used == 1 && rows[0].idle == 2)
    #expect(!rows[0].isIdle)
    #expect(rows[1].server == "s2" && rows[1].isIdle)
    #expect(rows[2].fields["addr"] == "-")
    #expect(throws: HAProxyError.self) { try ServerConnections.parse("Can't find backend.\n\n") }
  }

  static let showProc = """
    #<PID>          <type>          <reloads>       <uptime>        <version>      
    2570            master          3 [failed: 1]   0d00h00m24s     2.6.12-1+deb12u4
    # workers
    2931            worker          0               0d00h00m00s     2.6.12-1+deb12u4
    # old workers
    2864            worker          2               0d00h00m08s     2.6.12-1+deb12u4
    # programs

    """

  @Test func processList() throws {
    let list = try ProcessList.parse(Self.showProc)
    #expect(list.masterPID == 2570 && list.reloads == 3 && list.failedReloads == 1)
    #expect(list.master.type == "master" && list.master.uptime == "0d00h00m24s")
    #expect(list.workers.map(\.pid) == [2931])
    #expect(list.workers.first?.version == "2.6.12-1+deb12u4")
    #expect(list.oldWorkers.map(\.pid) == [2864] && list.oldWorkers.first?.reloads == 2)
    #expect(list.programs.isEmpty)
  }

  @Test func processListWithoutWorkers() throws {
    let list = try ProcessList.parse(
      "#<PID> <type> <reloads> <uptime> <version>\n1 master 0 [failed: 0] 0d00h00m01s 2.6.12\n# workers\n# programs\n")
    #expect(list.workers.isEmpty && list.reloads == 0)
    #expect(throws: HAProxyError.self) { try ProcessList.parse("Unknown command.\n") }
    #expect(throws: HAProxyError.self) { try ProcessList.parse("1 master 0 0d00h00m01s 2.6.12\n") }
  }

  @Test func alertLines() {
    let output = """
      [NOTICE]   (2566) : haproxy version is 2.6.12-1+deb12u4
      [ALERT]    (2566) : config : parsing [bad.cfg:2] : unknown keyword 'bogus' in 'global' section
      [ALERT]    (2566) : config : Fatal errors found in configuration.
      """
    #expect(ConfigInstaller.alertLines(in: output).count == 2)
  }
}

/// What may go into a CLI command; no I/O.
@Suite("Command validation")
struct CommandValidationTests {
  @Test(arguments: ["show stat; del server be/s1", "show stat\ndel server be/s1", "show stat\r", "a\u{0}b", "", "é"])
  func refusedCommands(_ command: String) {
    #expect(throws: HAProxyError.self) { try CommandValidation.checkCommand(command) }
  }

  @Test func acceptedCommand() throws {
    try CommandValidation.checkCommand("set server be/s1 addr 127.0.0.1 port 80")
  }

  @Test func names() throws {
    try CommandValidation.checkName("app-1.svc_x:8", "server")
    for bad in ["", "a b", "a/b", "a;b", "a#b", "a\nb"] {
      #expect(throws: HAProxyError.self) { try CommandValidation.checkName(bad, "server") }
    }
  }

  @Test func options() throws {
    for good in ["weight", "100", "inter", "2s", "check"] { try CommandValidation.checkOption(good) }
    for bad in ["", "a b", "x;y", "#", "a\tb", "ü"] {
      #expect(throws: HAProxyError.self) { try CommandValidation.checkOption(bad) }
    }
  }

  @Test func endpoints() throws {
    #expect(try CommandValidation.endpoint(address: "10.0.0.1", port: 80) == "10.0.0.1:80")
    #expect(try CommandValidation.endpoint(address: "::1", port: 8080) == "[::1]:8080")
    #expect(throws: HAProxyError.self) { try CommandValidation.endpoint(address: "localhost", port: 80) }
    #expect(throws: HAProxyError.self) { try CommandValidation.endpoint(address: "10.0.0.1", port: 0) }
    #expect(throws: HAProxyError.self) { try CommandValidation.endpoint(address: "10.0.0.1", port: 65_536) }
  }

  @Test(
    "a server named by id is written backend/#id, an added one gets `id n`, and ids HAProxy cannot hold are refused")
  func serverIDs() throws {
    #expect(
      try RuntimeAPI.Change.setServerState(backend: "be", server: "s1", state: .drain, id: 42).command
        == "set server be/#42 state drain")
    #expect(try RuntimeAPI.Change.deleteServer(backend: "be", server: "s1", id: 42).command == "del server be/#42")
    #expect(
      try RuntimeAPI.Change.setServerState(backend: "be", server: "s1", state: .drain).command
        == "set server be/s1 state drain")
    #expect(
      try RuntimeAPI.Change.addServer(
        backend: "be", server: "s1", address: "10.0.0.1", port: 80, options: ["check"], id: 42
      ).command == "add server be/s1 10.0.0.1:80 check id 42")
    for bad in [0, -1, Int(Int32.max) + 1] {
      #expect(throws: HAProxyError.self) { try RuntimeAPI.Change.enableHealth(backend: "be", server: "s1", id: bad) }
      #expect(throws: HAProxyError.self) {
        try RuntimeAPI.Change.addServer(backend: "be", server: "s1", address: "10.0.0.1", port: 80, id: bad)
      }
    }
  }
}
