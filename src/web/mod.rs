//! Web glue (features `axum` and `tower-sessions`): sessions over HTTP, and the crate's
//! errors as HTTP responses.
//!
//! * `model` (feature `axum`): every model conflict error becomes `409 Conflict` with a JSON body saying
//!   which version is current, a missing record `404 Not Found`, storage failures `503` or
//!   `500` (without the database's message).
//! * `axum` (feature `axum`): a layer (Django's `SessionMiddleware`) and an extractor for the native
//!   session handle.
//! * `tower` (feature `tower-sessions`): tower-sessions 0.15's `SessionStore` on our store.
//!
//! The session core does not depend on HTTP types: everything HTTP is here.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "axum")]
pub mod model;
#[cfg(feature = "tower-sessions")]
pub mod tower;
