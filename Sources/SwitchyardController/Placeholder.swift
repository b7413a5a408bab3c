/// Placeholder.
enum ControllerPlaceholder {}
