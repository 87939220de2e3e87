//! HTTP helpers shared by the test crates that read JSON answers.
//! Declared with `#[path]` by the crates that use it.

use serde::de::DeserializeOwned;

/// `GET url`, its answer read as JSON (panics on a transport or JSON error).
pub(crate) async fn get_json<T: DeserializeOwned>(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> T {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
