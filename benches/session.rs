//! Placeholder: the session bench lands with its component.
fn main() {}
