//! Placeholder: the template bench lands with its component.
fn main() {}
