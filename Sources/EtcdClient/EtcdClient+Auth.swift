import Foundation
import GRPCCore

/// A key-range permission of an etcd role.
public struct Permission: Sendable, Hashable {
  /// What the permission allows on its range.
  public enum Kind: Sendable, Hashable {
    /// Range and watch.
    case read
    /// Put and delete.
    case write
    /// Both.
    case readWrite
  }

  /// What the permission allows.
  public var kind: Kind
  /// The keys it covers: one key (empty `rangeEnd`) or `[key, rangeEnd)`.
  public var range: KeyRange

  /// Creates a permission.
  public init(_ kind: Kind, _ range: KeyRange) {
    self.kind = kind
    self.range = range
  }

  init(_ proto: Etcdserverpb_AuthPermission) {
    let kind: Kind =
      switch proto.permType {
      case .read: .read
      case .write: .write
      default: .readWrite
      }
    self.init(kind, KeyRange(key: [UInt8](proto.key), rangeEnd: [UInt8](proto.rangeEnd)))
  }

  var proto: Etcdserverpb_AuthPermission {
    .with {
      $0.permType =
        switch kind {
        case .read: .read
        case .write: .write
        case .readWrite: .readwrite
        }
      $0.key = Data(range.key)
      $0.rangeEnd = Data(range.rangeEnd)
    }
  }
}

// Auth administration: users, roles and their permissions, and switching authentication on and off.
// These calls need the `root` role once authentication is enabled. Changes are not retried on another
// member after an unknown outcome (a second `addUser` would fail with "user name already exists").
extension EtcdClient {
  /// Enables authentication. etcd refuses unless the user `root` exists and has the role `root`.
  public func enableAuth() async throws {
    _ = try await authChange("Auth.AuthEnable") { member, metadata, options in
      try await member.auth.authEnable(Etcdserverpb_AuthEnableRequest(), metadata: metadata, options: options)
    }
  }

  /// Disables authentication.
  public func disableAuth() async throws {
    _ = try await authChange("Auth.AuthDisable") { member, metadata, options in
      try await member.auth.authDisable(Etcdserverpb_AuthDisableRequest(), metadata: metadata, options: options)
    }
  }

  /// Adds a user. Without a password the user can only authenticate with a TLS client certificate whose
  /// common name is its name.
  public func addUser(_ name: String, password: String?) async throws {
    let request = Etcdserverpb_AuthUserAddRequest.with {
      $0.name = name
      if let password { $0.password = password } else { $0.options.noPassword = true }
    }
    _ = try await authChange("Auth.UserAdd") { member, metadata, options in
      try await member.auth.userAdd(request, metadata: metadata, options: options)
    }
  }

  /// Sets a user's password.
  public func changePassword(of name: String, to password: String) async throws {
    let request = Etcdserverpb_AuthUserChangePasswordRequest.with {
      $0.name = name
      $0.password = password
    }
    _ = try await authChange("Auth.UserChangePassword") { member, metadata, options in
      try await member.auth.userChangePassword(request, metadata: metadata, options: options)
    }
  }

  /// Deletes a user.
  public func deleteUser(_ name: String) async throws {
    let request = Etcdserverpb_AuthUserDeleteRequest.with { $0.name = name }
    _ = try await authChange("Auth.UserDelete") { member, metadata, options in
      try await member.auth.userDelete(request, metadata: metadata, options: options)
    }
  }

  /// The names of all users.
  public func users() async throws -> [String] {
    try await unary("Auth.UserList") { member, metadata, options in
      try await member.auth.userList(Etcdserverpb_AuthUserListRequest(), metadata: metadata, options: options).users
    }
  }

  /// The roles granted to a user.
  public func roles(of user: String) async throws -> [String] {
    let request = Etcdserverpb_AuthUserGetRequest.with { $0.name = user }
    return try await unary("Auth.UserGet") { member, metadata, options in
      try await member.auth.userGet(request, metadata: metadata, options: options).roles
    }
  }

  /// Grants `role` to `user`.
  public func grantRole(_ role: String, to user: String) async throws {
    let request = Etcdserverpb_AuthUserGrantRoleRequest.with {
      $0.user = user
      $0.role = role
    }
    _ = try await authChange("Auth.UserGrantRole") { member, metadata, options in
      try await member.auth.userGrantRole(request, metadata: metadata, options: options)
    }
  }

  /// Revokes `role` from `user`.
  public func revokeRole(_ role: String, from user: String) async throws {
    let request = Etcdserverpb_AuthUserRevokeRoleRequest.with {
      $0.name = user
      $0.role = role
    }
    _ = try await authChange("Auth.UserRevokeRole") { member, metadata, options in
      try await member.auth.userRevokeRole(request, metadata: metadata, options: options)
    }
  }

  /// Adds a role without permissions.
  public func addRole(_ name: String) async throws {
    let request = Etcdserverpb_AuthRoleAddRequest.with { $0.name = name }
    _ = try await authChange("Auth.RoleAdd") { member, metadata, options in
      try await member.auth.roleAdd(request, metadata: metadata, options: options)
    }
  }

  /// Deletes a role.
  public func deleteRole(_ name: String) async throws {
    let request = Etcdserverpb_AuthRoleDeleteRequest.with { $0.role = name }
    _ = try await authChange("Auth.RoleDelete") { member, metadata, options in
      try await member.auth.roleDelete(request, metadata: metadata, options: options)
    }
  }

  /// The names of all roles.
  public func roles() async throws -> [String] {
    try await unary("Auth.RoleList") { member, metadata, options in
      try await member.auth.roleList(Etcdserverpb_AuthRoleListRequest(), metadata: metadata, options: options).roles
    }
  }

  /// A role's permissions.
  public func permissions(of role: String) async throws -> [Permission] {
    let request = Etcdserverpb_AuthRoleGetRequest.with { $0.role = role }
    return try await unary("Auth.RoleGet") { member, metadata, options in
      try await member.auth.roleGet(request, metadata: metadata, options: options).perm.map(Permission.init)
    }
  }

  /// Grants a permission to a role. Granting a range that the role already has replaces its kind.
  public func grant(_ permission: Permission, to role: String) async throws {
    let request = Etcdserverpb_AuthRoleGrantPermissionRequest.with {
      $0.name = role
      $0.perm = permission.proto
    }
    _ = try await authChange("Auth.RoleGrantPermission") { member, metadata, options in
      try await member.auth.roleGrantPermission(request, metadata: metadata, options: options)
    }
  }

  /// Revokes the permission on exactly `range` from a role.
  public func revokePermission(on range: KeyRange, from role: String) async throws {
    let request = Etcdserverpb_AuthRoleRevokePermissionRequest.with {
      $0.role = role
      $0.key = Data(range.key)
      $0.rangeEnd = Data(range.rangeEnd)
    }
    _ = try await authChange("Auth.RoleRevokePermission") { member, metadata, options in
      try await member.auth.roleRevokePermission(request, metadata: metadata, options: options)
    }
  }

  private func authChange<Result: Sendable>(
    _ name: String,
    _ body: @escaping @Sendable (MemberConnection, Metadata, CallOptions) async throws -> Result
  ) async throws -> Result {
    try await unary(name, policy: .mutation, body)
  }
}
