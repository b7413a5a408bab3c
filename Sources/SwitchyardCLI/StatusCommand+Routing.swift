import SwitchyardModel

extension StatusCommand {
  /// How a node serves each service (mode, port, balance, instances), its routes and their problems, from
  /// its `/state`; nothing for what a controller that predates routes does not report. Everything read
  /// from `/state` is escaped.
  static func routingLines(_ state: NodeSnapshot) -> [String] {
    func safe(_ text: String) -> String { RegistrationError.escape(text, limit: 200) }
    var lines: [String] = []
    if state.services.contains(where: { $0.mode != nil }) {
      var rows = [["SERVICE", "MODE", "PORT", "BALANCE", "INSTANCES"]]
      for service in state.services {
        let instances = service.servers.filter(\.registered).count
        rows.append([
          safe(service.name), safe(service.mode ?? "-"), service.port.map(String.init) ?? "-",
          safe(service.balance ?? "-"), service.lingering == true ? "\(instances) (backend leaving)" : "\(instances)",
        ])
      }
      lines += alignedColumns(rows, indent: "  ")
    }
    if let routes = state.routes {
      let count = state.routeCount ?? routes.count
      if routes.isEmpty {
        lines.append("  routes: none")
      } else {
        lines.append("  routes: \(count)" + (count > routes.count ? " (the first \(routes.count) by name)" : ""))
        var rows = [["ROUTE", "HOSTS", "PREFIX", "SERVICE", "TARGET"]]
        for route in routes {
          rows.append([
            safe(route.name), route.hosts.isEmpty ? "*" : safe(route.hosts.joined(separator: ",")),
            safe(route.pathPrefix) + (route.stripPrefix ? " (strip)" : ""), "-> " + safe(route.service),
            safe(route.target),
          ])
        }
        lines += alignedColumns(rows, indent: "    ")
      }
    }
    for problem in state.routeProblems ?? [] { lines.append("  route problem: \(safe(problem))") }
    return lines
  }
}
