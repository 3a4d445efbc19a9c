//! Placeholder: the model bench lands with its component.
fn main() {}
