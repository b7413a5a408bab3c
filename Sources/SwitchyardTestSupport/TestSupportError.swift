@_exported import SwitchyardLab
@_exported import SwitchyardProcess

/// A failure of the test harness (etcd would not start, a tool failed), kept apart from failures of the
/// code under test so that a red test says which of the two broke. The harness's processes, ports and
/// directories come from `SwitchyardProcess` and its etcd cluster and HTTP servers from `SwitchyardLab`,
/// which report this error as ``ProcessError``; test code imports only this module and sees both.
public typealias TestSupportError = ProcessError
