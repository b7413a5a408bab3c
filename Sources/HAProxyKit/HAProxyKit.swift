/// HAProxy at the edge: Runtime API, master CLI, the master-worker process and config installation.
public enum HAProxyKit {}
