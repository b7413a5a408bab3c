/// Placeholder.
enum ReconcilePlaceholder {}
