//! HTTP helpers shared by the test crates that read JSON answers.
//! Declared with `#[path]` by the crates that use it.

use serde::de::DeserializeOwned;

/// Sends `request` and reads its answer as JSON (panics on a transport or
/// JSON error).
pub(crate) async fn json_answer<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request.send().await.unwrap().json().await.unwrap()
}
